// SPDX-License-Identifier: GPL-2.0

//! The kevent ABI, taken from `include/uapi/linux/kevent.h` through bindgen.
//!
//! The header is the single source of truth: every constant here is the bindgen value, and the
//! Rust view of `struct ukevent` is checked against the C layout at build time.

use kernel::bindings;

/// `kevent_ctl()` commands.
pub(crate) const CTL_READY: u32 = bindings::KEVENT_CTL_READY;

/// Limits.
pub(crate) const MAX_RING_SIZE: u32 = bindings::KEVENT_MAX_RING_SIZE;
pub(crate) const MAX_CTL_BATCH: u32 = bindings::KEVENT_MAX_CTL_BATCH;

/// Flags of `struct kevent_wait_arg`.
pub(crate) const WAIT_TIMEOUT: u32 = bindings::KEVENT_WAIT_TIMEOUT;
pub(crate) const WAIT_MASK: u32 = bindings::KEVENT_WAIT_MASK;

/// Flags accepted by `kevent_init()`.
pub(crate) const O_CLOEXEC: u32 = bindings::O_CLOEXEC;
pub(crate) const O_NONBLOCK: u32 = bindings::O_NONBLOCK;

/// The wait argument of `kevent_get_events()` and `kevent_wait()`, after the hook layer copied
/// it in and installed its signal mask.
#[derive(Clone, Copy)]
pub(crate) struct WaitArg {
    /// Seconds of the timeout.
    pub(crate) tv_sec: i64,
    /// Nanoseconds of the timeout.
    pub(crate) tv_nsec: i64,
    /// `KEVENT_WAIT_*` flags.
    pub(crate) flags: u32,
}

impl WaitArg {
    /// Reads the kernel copy that the hook layer passes to the module.
    pub(crate) fn from_raw(arg: &bindings::kevent_wait_arg) -> Self {
        Self {
            tv_sec: arg.timeout.tv_sec,
            tv_nsec: arg.timeout.tv_nsec,
            flags: arg.flags,
        }
    }
}
