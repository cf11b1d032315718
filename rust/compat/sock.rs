// SPDX-License-Identifier: GPL-2.0

//! Sockets of the network stack, as seen by event notifications.
//!
//! C headers: [`include/net/sock.h`](srctree/include/net/sock.h) and
//! [`include/net/tcp.h`](srctree/include/net/tcp.h).
//!
//! Everything here reads socket state locklessly (`READ_ONCE`), as `->poll` does: values may be
//! stale by the time they are used, which event reporting tolerates.

use super::{
    file::File,
    poll::{EPOLLERR, EPOLLIN, EPOLLOUT, EPOLLRDHUP},
    slot::Slot,
};
use core::ptr::read_volatile;
use kernel::{bindings, types::Opaque};

/// `sk_state` of a listening TCP socket.
const TCP_LISTEN: u8 = 10;
/// `sk_shutdown` bit: no more data will be received.
const RCV_SHUTDOWN: u8 = 1;
/// What a socket hook reports (`KEVENT_SK_*`).
pub(crate) const SK_READABLE: u32 = bindings::KEVENT_SK_READABLE;
/// See [`SK_READABLE`].
pub(crate) const SK_WRITABLE: u32 = bindings::KEVENT_SK_WRITABLE;
/// See [`SK_READABLE`].
pub(crate) const SK_ERROR: u32 = bindings::KEVENT_SK_ERROR;

/// A socket (`struct sock`), borrowed.
///
/// # Invariants
///
/// The socket is valid for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct Sock(Opaque<bindings::sock>);

impl Sock {
    /// Borrows a socket.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a socket that stays valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::sock) -> &'a Sock {
        // SAFETY: `Sock` is transparent over `struct sock`; validity is guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// The socket behind a socket file, or `None` for other files.
    pub(crate) fn of_file(file: &File) -> Option<&Sock> {
        // SAFETY: `file` is valid; `sock_from_file` checks its type.
        let socket = unsafe { bindings::sock_from_file(file.as_ptr()) };
        if socket.is_null() {
            return None;
        }
        // SAFETY: A socket file owns its `struct socket`, whose `sk` is set at creation and lives
        // at least as long as the file.
        let sk = unsafe { (*socket).sk };
        if sk.is_null() {
            return None;
        }
        // SAFETY: See above: valid while `file` is.
        Some(unsafe { Self::from_raw(sk) })
    }

    fn as_ptr(&self) -> *mut bindings::sock {
        self.0.get()
    }

    /// The socket's kevent storage slot, valid while the socket lives.
    pub(crate) fn slot(&self) -> Slot {
        // SAFETY: The socket is valid (type invariant); its slot lives as long as it does.
        unsafe { Slot::from_raw(bindings::kevent_sock_slot(self.as_ptr())) }
    }

    fn state(&self) -> u8 {
        // SAFETY: The socket is valid (type invariant); the field is read as `READ_ONCE`.
        unsafe { read_volatile(&(*self.as_ptr()).__sk_common.skc_state) }
    }

    fn is_tcp(&self) -> bool {
        // SAFETY: The socket is valid; type and protocol are fixed at creation.
        let (ty, proto) = unsafe { ((*self.as_ptr()).sk_type, (*self.as_ptr()).sk_protocol) };
        u32::from(ty) == bindings::sock_type_SOCK_STREAM as u32
            && u32::from(proto) == bindings::IPPROTO_TCP as u32
    }

    /// The pending socket error as a negative errno, or 0.
    pub(crate) fn error(&self) -> i32 {
        // SAFETY: The socket is valid (type invariant); read as `READ_ONCE`.
        -unsafe { read_volatile(&(*self.as_ptr()).sk_err) }
    }

    /// Bytes readable (TCP), connections waiting (listeners) or queued messages (others; at
    /// least 1 when anything is queued).
    pub(crate) fn backlog(&self) -> u32 {
        if self.state() == TCP_LISTEN {
            // SAFETY: The socket is valid (type invariant); read as `READ_ONCE`.
            return unsafe { read_volatile(&(*self.as_ptr()).sk_ack_backlog) };
        }
        if self.is_tcp() {
            // SAFETY: The socket is a valid TCP socket; `tcp_inq` only reads sequence numbers.
            let inq = unsafe { bindings::tcp_inq(self.as_ptr()) };
            return u32::try_from(inq).unwrap_or(0);
        }
        // SAFETY: The socket is valid (type invariant); read as `skb_queue_len_lockless`.
        let queued = unsafe { read_volatile(&(*self.as_ptr()).sk_receive_queue.qlen) };
        // UDP moves datagrams to a private reader queue; its receive memory still counts them.
        // SAFETY: The socket is valid; `sk_rmem_alloc_get` is an atomic read.
        let charged = unsafe { bindings::sk_rmem_alloc_get(self.as_ptr()) } > 0;
        queued.max(u32::from(charged))
    }

    /// A poll mask from a hook's report and the socket's state, without calling `->poll`.
    pub(crate) fn revents_hint(&self, what: u32) -> u32 {
        let mut mask = 0;
        if what & SK_READABLE != 0 {
            mask |= EPOLLIN;
        }
        if what & SK_WRITABLE != 0 {
            mask |= EPOLLOUT;
        }
        // SAFETY: The socket is valid (type invariant); read as `READ_ONCE`.
        let shutdown = unsafe { read_volatile(&(*self.as_ptr()).sk_shutdown) };
        if shutdown & RCV_SHUTDOWN != 0 {
            mask |= EPOLLIN | EPOLLRDHUP;
        }
        if what & SK_ERROR != 0 || self.error() != 0 {
            mask |= EPOLLERR;
        }
        mask
    }
}
