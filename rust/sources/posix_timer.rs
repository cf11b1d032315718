// SPDX-License-Identifier: GPL-2.0

//! POSIX timers as event sources (`KEVENT_POSIX_TIMER`).
//!
//! `timer_create()` with `SIGEV_KEVENT` and a queue descriptor in `sigev_notify_thread_id`
//! creates a registration keyed by the timer id, with the timer's `sigev_value` as its cookie
//! ([`create`]); `KEVENT_CTL_ADD` cannot. The timer's slot holds a reference to the
//! registration; each expiry (hard-IRQ context) makes it ready, `ret_data[0]` counting the
//! expirations coalesced into one event (more than one means overruns). `timer_delete()`
//! removes the registration; closing the queue detaches the timer, which then expires silently.

use super::Source;
use crate::{
    compat::{
        posix_timer::PosixTimer,
        rcu,
        slot::Slot,
        uapi::{self, Ukevent},
    },
    ctl::{self, Outcome},
    queue::{Queue, Registrations},
    registration::Registration,
    storage,
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    error::code::*,
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// A POSIX timer's registration, which the timer's slot refers to.
pub(crate) type PosixTimerReg = Registration<PosixTimerWatch>;

/// What a POSIX timer registration keeps.
pub(crate) struct PosixTimerWatch {
    /// The timer's slot, which holds a reference to the registration while `attached`.
    timer: Slot,
    /// See `timer` (changed under the storage lock).
    attached: AtomicBool,
}

impl Source for PosixTimerWatch {
    fn add(_queue: &Arc<Queue>, _regs: &mut Registrations, _req: &Ukevent) -> Result<Outcome> {
        // Created by `timer_create()` only.
        Err(EINVAL)
    }

    fn disarm(reg: &PosixTimerReg) {
        let taken = storage::with_lock(|_| {
            if !reg.watch.attached.swap(false, Ordering::Relaxed) {
                return None;
            }
            // SAFETY: A POSIX timer's slot only ever holds a reference to its registration,
            // stored by `create`.
            unsafe { reg.watch.timer.take_arc::<PosixTimerReg>() }
        });
        if let Ok(Some(taken)) = taken {
            // The timer may be firing right now, under RCU, with the reference it read.
            rcu::synchronize();
            drop(taken);
        }
    }
}

/// `timer_create()` with `SIGEV_KEVENT` on queue `kfd`.
pub(super) fn create(timer: &PosixTimer, kfd: i32) -> Result {
    let queue = Queue::from_fd(kfd)?;
    let req = Ukevent {
        id: u64::from(timer.id() as u32),
        type_: uapi::TYPE_POSIX_TIMER,
        event: uapi::POSIX_TIMER_FIRED,
        user: timer.cookie(),
        ..Ukevent::default()
    };
    let mut regs = queue.registrations.lock();
    if regs.dead {
        return Err(EBADF);
    }
    let watch = PosixTimerWatch {
        timer: timer.slot(),
        attached: AtomicBool::new(false),
    };
    let outcome = ctl::register::<PosixTimerWatch>(&queue, &mut regs, &req, watch, |reg| {
        storage::with_lock(|_| {
            reg.watch.timer.store_arc(reg.clone());
            reg.watch.attached.store(true, Ordering::Relaxed);
            None
        })
    })?;
    match outcome {
        Outcome::Failed(e) => Err(e),
        Outcome::Quiet | Outcome::Done(_) => Ok(()),
    }
}

/// The timer expired.
pub(super) fn fire(reg: ArcBorrow<'_, PosixTimerReg>) {
    Registration::notify(reg, |st| {
        st.count(1);
        true
    });
}

/// The timer is being freed (it no longer runs): remove its registration.
pub(super) fn free(timer: &PosixTimer) {
    let slot = timer.slot();
    let reg = storage::with_lock(|_| {
        // SAFETY: A POSIX timer's slot only ever holds a reference stored by `create`.
        let reg = unsafe { slot.take_arc::<PosixTimerReg>() };
        if let Some(reg) = &reg {
            reg.watch.attached.store(false, Ordering::Relaxed);
        }
        reg
    });
    if let Ok(Some(reg)) = reg {
        reg.queue.forget(&*reg);
    }
}
