// SPDX-License-Identifier: GPL-2.0

//! The kevent ABI, taken from `include/uapi/linux/kevent.h` through bindgen.
//!
//! The header is the single source of truth: every constant here is the bindgen value, and the
//! Rust view of `struct ukevent` is checked against the C layout at build time.

use core::mem::{offset_of, size_of};
use kernel::{
    bindings,
    types::{AsBytes, FromBytes},
};

/// Event types.
pub(crate) const KEVENT_MAX: u32 = bindings::KEVENT_MAX;

/// `kevent_ctl()` commands.
pub(crate) const CTL_ADD: u32 = bindings::KEVENT_CTL_ADD;
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

/// One event as user space sees it (`struct ukevent`), 48 bytes.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Ukevent {
    /// Per-type identity (`id.raw_u64`).
    pub(crate) id: u64,
    /// Event type.
    pub(crate) type_: u32,
    /// Per-type event mask.
    pub(crate) event: u32,
    /// Request flags.
    pub(crate) req_flags: u32,
    /// Return flags, written by the kernel.
    pub(crate) ret_flags: u32,
    /// Type-specific result.
    pub(crate) ret_data: [u32; 2],
    /// Opaque user cookie.
    pub(crate) user: u64,
    /// Per-queue sequence number.
    pub(crate) seq: u64,
}

const _: () = {
    assert!(size_of::<Ukevent>() == 48);
    assert!(size_of::<Ukevent>() == size_of::<bindings::ukevent>());
    assert!(offset_of!(Ukevent, type_) == offset_of!(bindings::ukevent, type_));
    assert!(offset_of!(Ukevent, event) == offset_of!(bindings::ukevent, event));
    assert!(offset_of!(Ukevent, req_flags) == offset_of!(bindings::ukevent, req_flags));
    assert!(offset_of!(Ukevent, ret_flags) == offset_of!(bindings::ukevent, ret_flags));
    assert!(offset_of!(Ukevent, ret_data) == offset_of!(bindings::ukevent, ret_data));
    assert!(offset_of!(Ukevent, user) == offset_of!(bindings::ukevent, user));
    assert!(offset_of!(Ukevent, seq) == offset_of!(bindings::ukevent, seq));
};

// SAFETY: `Ukevent` is `repr(C)`, made of integers only and has no padding (48 bytes of
// naturally aligned fields, checked above), so every byte pattern is a valid value.
unsafe impl FromBytes for Ukevent {}

// SAFETY: `Ukevent` has no padding and no interior pointers, so all of its bytes are initialised
// and may be shown to user space.
unsafe impl AsBytes for Ukevent {}

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
