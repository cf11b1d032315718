// SPDX-License-Identifier: GPL-2.0

//! POSIX timers as event sources (`KEVENT_POSIX_TIMER`).
//!
//! `timer_create()` with `SIGEV_KEVENT` and a queue descriptor in `sigev_notify_thread_id`
//! creates a registration keyed by the timer id, with the timer's `sigev_value` as its cookie.
//! The timer's slot holds a reference to the registration; each expiry (hard-IRQ context) makes
//! it ready, `ret_data[0]` counting the expirations coalesced into one event (more than one
//! means overruns). `timer_delete()` removes the registration; closing the queue detaches the
//! timer, which then expires silently.

use crate::{
    compat::{file::queue_from_fd, posix_timer::PosixTimer, uapi, uapi::Ukevent},
    ctl::{self, Outcome},
    registration::{Registration, Source},
    storage,
};
use core::sync::atomic::Ordering;
use kernel::{error::code::*, prelude::*, sync::ArcBorrow};

/// `timer_create()` with `SIGEV_KEVENT` on queue `kfd`.
pub(crate) fn create(timer: &PosixTimer, kfd: i32) -> Result {
    let queue = queue_from_fd(kfd)?;
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
    let source = Source::PosixTimer {
        timer: timer.slot(),
    };
    match ctl::register(&queue, &mut regs, &req, source, None)? {
        Outcome::Failed(e) => Err(e),
        Outcome::Quiet | Outcome::Done(_) => Ok(()),
    }
}

/// The timer expired.
pub(crate) fn fire(reg: ArcBorrow<'_, Registration>) {
    Registration::fire(reg, |st| {
        st.ret_data[0] = st.ret_data[0].saturating_add(1);
        true
    });
}

/// The timer is being freed (it no longer runs): remove its registration.
pub(crate) fn free(timer: &PosixTimer) {
    let slot = timer.slot();
    let reg = storage::with_lock(|_| {
        // SAFETY: A POSIX timer's slot only ever holds a reference stored by `create`.
        let reg = unsafe { slot.take_arc::<Registration>() };
        if let Some(reg) = &reg {
            reg.attached.store(false, Ordering::Relaxed);
        }
        reg
    });
    if let Ok(Some(reg)) = reg {
        reg.queue.forget(&reg);
    }
}
