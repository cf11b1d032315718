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
pub(crate) const TYPE_TIMER: u32 = bindings::KEVENT_TIMER;
/// User-triggered events.
pub(crate) const TYPE_UNOTIFY: u32 = bindings::KEVENT_UNOTIFY;
/// Sockets.
pub(crate) const TYPE_SOCKET: u32 = bindings::KEVENT_SOCKET;
/// Any pollable file.
pub(crate) const TYPE_POLL: u32 = bindings::KEVENT_POLL;
/// Pipes and FIFOs.
pub(crate) const TYPE_PIPE: u32 = bindings::KEVENT_PIPE;
/// Signals.
pub(crate) const TYPE_SIGNAL: u32 = bindings::KEVENT_SIGNAL;
/// POSIX timers created with `SIGEV_KEVENT`.
pub(crate) const TYPE_POSIX_TIMER: u32 = bindings::KEVENT_POSIX_TIMER;
/// Network AIO requests.
pub(crate) const TYPE_NAIO: u32 = bindings::KEVENT_NAIO;
/// File AIO requests.
pub(crate) const TYPE_AIO: u32 = bindings::KEVENT_AIO;
/// File and directory events (fsnotify).
pub(crate) const TYPE_INODE: u32 = bindings::KEVENT_INODE;

/// Event masks.
pub(crate) const TIMER_FIRED: u32 = bindings::KEVENT_TIMER_FIRED;
/// Socket and pipe event masks.
pub(crate) const SOCKET_RECV: u32 = bindings::KEVENT_SOCKET_RECV;
/// See [`SOCKET_RECV`].
pub(crate) const SOCKET_ACCEPT: u32 = bindings::KEVENT_SOCKET_ACCEPT;
/// See [`SOCKET_RECV`].
pub(crate) const SOCKET_SEND: u32 = bindings::KEVENT_SOCKET_SEND;
/// Signal event mask.
pub(crate) const SIGNAL_DELIVERY: u32 = bindings::KEVENT_SIGNAL_DELIVERY;
/// POSIX timer event mask.
pub(crate) const POSIX_TIMER_FIRED: u32 = bindings::KEVENT_POSIX_TIMER_FIRED;
/// A file AIO request completed.
pub(crate) const AIO_DONE: u32 = bindings::KEVENT_AIO_DONE;
/// Every inode event (`KEVENT_INODE_*`).
pub(crate) const INODE_ALL: u32 = bindings::KEVENT_INODE_ALL;
/// `ret_data[0]` of an inode event: it concerned a directory.
pub(crate) const INODE_ISDIR: u32 = bindings::KEVENT_INODE_ISDIR;
/// The inode event bits (`KEVENT_INODE_*`), one per fsnotify event (`compat::fsnotify`).
pub(crate) const INODE_EVENTS: [u32; 8] = [
    bindings::KEVENT_INODE_CREATE,
    bindings::KEVENT_INODE_REMOVE,
    bindings::KEVENT_INODE_MODIFY,
    bindings::KEVENT_INODE_ATTRIB,
    bindings::KEVENT_INODE_MOVED_FROM,
    bindings::KEVENT_INODE_MOVED_TO,
    bindings::KEVENT_INODE_DELETE_SELF,
    bindings::KEVENT_INODE_MOVE_SELF,
];
/// Bit of a signal registration's id: consume the signal.
pub(crate) const SIGNAL_NOMASK: u64 = bindings::KEVENT_SIGNAL_NOMASK as u64;

/// Request flags.
pub(crate) const REQ_ONESHOT: u32 = bindings::KEVENT_REQ_ONESHOT;
/// Wake every waiter.
pub(crate) const REQ_WAKEUP_ALL: u32 = bindings::KEVENT_REQ_WAKEUP_ALL;
/// Request flags.
pub(crate) const REQ_ET: u32 = bindings::KEVENT_REQ_ET;
/// Keep and queue a registration that is ready at ADD.
pub(crate) const REQ_ALWAYS_QUEUE: u32 = bindings::KEVENT_REQ_ALWAYS_QUEUE;
/// Ready at ADD.
pub(crate) const REQ_READY: u32 = bindings::KEVENT_REQ_READY;
/// Disable after delivery.
pub(crate) const REQ_DISPATCH: u32 = bindings::KEVENT_REQ_DISPATCH;
/// Every valid request flag.
pub(crate) const REQ_MASK: u32 = bindings::KEVENT_REQ_MASK;

/// Return flags.
pub(crate) const RET_BROKEN: u32 = bindings::KEVENT_RET_BROKEN;
/// The entry is complete (failed, or ready at ADD).
pub(crate) const RET_DONE: u32 = bindings::KEVENT_RET_DONE;
/// Network AIO: the data were copied rather than sent from the user's pages.
pub(crate) const RET_COPIED: u32 = bindings::KEVENT_RET_COPIED;

/// `kevent_ctl()` commands.
pub(crate) const CTL_ADD: u32 = bindings::KEVENT_CTL_ADD;
/// Remove registrations.
pub(crate) const CTL_REMOVE: u32 = bindings::KEVENT_CTL_REMOVE;
/// Change registrations.
pub(crate) const CTL_MODIFY: u32 = bindings::KEVENT_CTL_MODIFY;
/// Mark registrations ready.
pub(crate) const CTL_READY: u32 = bindings::KEVENT_CTL_READY;
/// Hold the file AIO requests submitted from now on.
pub(crate) const CTL_PLUG: u32 = bindings::KEVENT_CTL_PLUG;
/// Start the held file AIO requests, as one batch.
pub(crate) const CTL_UNPLUG: u32 = bindings::KEVENT_CTL_UNPLUG;

/// Limits.
pub(crate) const MAX_RING_SIZE: u32 = bindings::KEVENT_MAX_RING_SIZE;
/// Entries in one `kevent_ctl()` call.
pub(crate) const MAX_CTL_BATCH: u32 = bindings::KEVENT_MAX_CTL_BATCH;
/// Longest chain of queues watching queues.
pub(crate) const MAX_NESTS: u32 = bindings::KEVENT_MAX_NESTS;
/// Shortest period of a periodic timer, in nanoseconds.
pub(crate) const TIMER_MIN_PERIOD_NS: i64 = bindings::KEVENT_TIMER_MIN_PERIOD_NS as i64;

/// Flags of `struct kevent_wait_arg`.
pub(crate) const WAIT_TIMEOUT: u32 = bindings::KEVENT_WAIT_TIMEOUT;
/// The timeout is absolute.
pub(crate) const WAIT_ABSTIME: u32 = bindings::KEVENT_WAIT_ABSTIME;
/// Every valid wait flag.
pub(crate) const WAIT_MASK: u32 = bindings::KEVENT_WAIT_MASK;

/// Flags accepted by `kevent_init()`.
pub(crate) const O_CLOEXEC: u32 = bindings::O_CLOEXEC;
/// Non-blocking queue descriptor.
pub(crate) const O_NONBLOCK: u32 = bindings::O_NONBLOCK;

/// Bytes of the ring header; the entries follow it.
pub(crate) const RING_HEADER_SIZE: usize = bindings::KEVENT_RING_HEADER_SIZE as usize;
/// Offset of `ring_kidx` in the ring header.
pub(crate) const RING_KIDX: usize = offset_of!(bindings::kevent_ring, ring_kidx);
/// Offset of `ring_uidx`.
pub(crate) const RING_UIDX: usize = offset_of!(bindings::kevent_ring, ring_uidx);
/// Offset of `ring_over`.
pub(crate) const RING_OVER: usize = offset_of!(bindings::kevent_ring, ring_over);
/// Offset of `ring_size`.
pub(crate) const RING_SIZE: usize = offset_of!(bindings::kevent_ring, ring_size);

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

/// Size of [`Ukevent`] in bytes.
pub(crate) const UKEVENT_SIZE: usize = size_of::<Ukevent>();

const _: () = {
    assert!(UKEVENT_SIZE == 48);
    assert!(UKEVENT_SIZE == size_of::<bindings::ukevent>());
    assert!(offset_of!(Ukevent, type_) == offset_of!(bindings::ukevent, type_));
    assert!(offset_of!(Ukevent, event) == offset_of!(bindings::ukevent, event));
    assert!(offset_of!(Ukevent, req_flags) == offset_of!(bindings::ukevent, req_flags));
    assert!(offset_of!(Ukevent, ret_flags) == offset_of!(bindings::ukevent, ret_flags));
    assert!(offset_of!(Ukevent, ret_data) == offset_of!(bindings::ukevent, ret_data));
    assert!(offset_of!(Ukevent, user) == offset_of!(bindings::ukevent, user));
    assert!(offset_of!(Ukevent, seq) == offset_of!(bindings::ukevent, seq));
    assert!(RING_HEADER_SIZE == size_of::<bindings::kevent_ring>());
};

// SAFETY: `Ukevent` is `repr(C)`, made of integers only and has no padding (48 bytes of
// naturally aligned fields, checked above), so every byte pattern is a valid value.
unsafe impl FromBytes for Ukevent {}

// SAFETY: `Ukevent` has no padding and no interior pointers, so all of its bytes are initialised
// and may be shown to user space.
unsafe impl AsBytes for Ukevent {}

impl Ukevent {
    /// The raw bytes, for copying into the ring.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Ukevent` is `AsBytes` (above): all of its `UKEVENT_SIZE` bytes are initialised.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast(), UKEVENT_SIZE) }
    }

    /// The raw bytes of consecutive events, for copying many to user space at once.
    pub(crate) fn slice_as_bytes(events: &[Ukevent]) -> &[u8] {
        // SAFETY: `Ukevent` is `AsBytes` with no padding between elements (its size is a
        // multiple of its alignment), so the slice's memory is `len * UKEVENT_SIZE` initialised
        // bytes.
        unsafe { core::slice::from_raw_parts(events.as_ptr().cast(), events.len() * UKEVENT_SIZE) }
    }

    /// `id.raw[0]`.
    pub(crate) fn id_lo(&self) -> u32 {
        self.id as u32
    }

    /// `id.raw[1]`.
    pub(crate) fn id_hi(&self) -> u32 {
        (self.id >> 32) as u32
    }
}

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
