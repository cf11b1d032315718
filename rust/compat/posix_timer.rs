// SPDX-License-Identifier: GPL-2.0

//! POSIX timers created with `SIGEV_KEVENT`.
//!
//! C header: [`include/linux/posix-timers.h`](srctree/include/linux/posix-timers.h).

use super::slot::Slot;
use kernel::{bindings, types::Opaque};

/// A POSIX timer (`struct k_itimer`), borrowed from a hook.
///
/// # Invariants
///
/// The timer is valid for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct PosixTimer(Opaque<bindings::k_itimer>);

impl PosixTimer {
    /// Borrows a timer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a timer that stays valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::k_itimer) -> &'a PosixTimer {
        // SAFETY: Transparent wrapper; validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// The timer id that `timer_create()` returned.
    pub(crate) fn id(&self) -> i32 {
        // SAFETY: The timer is valid (type invariant); the id is fixed before the hooks run.
        unsafe { (*self.0.get()).it_id }
    }

    /// The `sigev_value` given to `timer_create()`, as a 64-bit cookie.
    pub(crate) fn cookie(&self) -> u64 {
        // SAFETY: The timer is valid; `sigq` is allocated and filled in by `timer_create()`
        // before the create hook runs, and the value union is read as its widest member.
        unsafe {
            let sigq = (*self.0.get()).sigq;
            if sigq.is_null() {
                return 0;
            }
            (*sigq)
                .info
                .__bindgen_anon_1
                ._sifields
                ._timer
                ._sigval
                .sival_ptr as u64
        }
    }

    /// The timer's kevent slot, valid while the timer lives.
    pub(crate) fn slot(&self) -> Slot {
        // SAFETY: The timer is valid (type invariant), and so is its slot.
        unsafe { Slot::from_raw(bindings::kevent_posix_timer_slot(self.0.get())) }
    }
}
