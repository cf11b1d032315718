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
    compat::{file::queue_from_fd, posix_timer::PosixTimer, uapi, uapi::Ukevent, user_gfp},
    registration::{Key, Registration, Source},
    storage,
};
use core::sync::atomic::Ordering;
use kernel::{error::code::*, prelude::*, rbtree::RBTreeNode, sync::ArcBorrow};

/// `timer_create()` with `SIGEV_KEVENT` on queue `kfd`.
pub(crate) fn create(timer: &PosixTimer, kfd: i32) -> Result {
    let queue = queue_from_fd(kfd)?;
    let key = Key {
        type_: uapi::TYPE_POSIX_TIMER,
        id: u64::from(timer.id() as u32),
    };
    let req = Ukevent {
        id: key.id,
        type_: key.type_,
        event: uapi::POSIX_TIMER_FIRED,
        user: timer.cookie(),
        ..Ukevent::default()
    };
    let mut regs = queue.registrations.lock();
    if regs.dead {
        return Err(EBADF);
    }
    if regs.tree.get(&key).is_some() {
        return Err(EEXIST);
    }
    queue.user.charge(1)?;
    let created = Registration::with_key(
        &queue,
        key,
        &req,
        Source::PosixTimer {
            timer: timer.slot(),
        },
    )
    .and_then(|reg| Ok((reg.clone(), RBTreeNode::new(key, reg, user_gfp())?)));
    let (reg, node) = match created {
        Ok(created) => created,
        Err(e) => {
            queue.user.uncharge(1);
            return Err(e);
        }
    };
    regs.tree.insert(node);
    storage::with_lock(|_| {
        timer.slot().store_arc(reg.clone());
        reg.attached.store(true, Ordering::Relaxed);
    })?;
    Ok(())
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
