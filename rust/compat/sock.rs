// SPDX-License-Identifier: GPL-2.0

//! Sockets of the network stack, as seen by event notifications.
//!
//! C headers: [`include/net/sock.h`](srctree/include/net/sock.h) and
//! [`include/net/tcp.h`](srctree/include/net/tcp.h).
//!
//! Everything here reads socket state locklessly (`READ_ONCE`), as `->poll` does: values may be
//! stale by the time they are used, which event reporting tolerates.

use super::{
    errno,
    file::File,
    pinned::PinnedPages,
    poll::{EPOLLERR, EPOLLIN, EPOLLOUT, EPOLLRDHUP},
    slot::Slot,
    zerocopy::{ZeroCopy, ZeroCopyOwner},
};
use core::{marker::PhantomData, ptr::read_volatile, sync::atomic::AtomicI32};
use kernel::{bindings, error::code::*, prelude::*, types::Opaque};

/// `sk_state` of a listening TCP socket.
const TCP_LISTEN: u8 = 10;
/// `sk_state` of a closed (or never connected) TCP socket.
const TCP_CLOSE: u8 = 7;
/// `sk_state` of a connected socket (TCP, or a datagram socket with a default destination).
const TCP_ESTABLISHED: u8 = 1;
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

    /// Locks the socket like `lock_sock()`: the caller owns it until the guard is dropped
    /// (`release_sock()`, which also processes what softirq queued meanwhile). Process
    /// context; sleeps.
    pub(crate) fn lock(&self) -> SockGuard<'_> {
        // SAFETY: The socket is valid (type invariant); we are in process context.
        unsafe { bindings::lock_sock(self.as_ptr()) };
        // INVARIANT: Locked just above, released by `Drop`.
        SockGuard {
            locked: SockLocked {
                sk: self,
                _not_send: PhantomData,
            },
        }
    }

    /// Whether this is a TCP stream socket (IPv4 or IPv6).
    pub(crate) fn is_tcp_stream(&self) -> bool {
        self.is_tcp()
    }

    /// Whether this is a UDP datagram socket (IPv4 or IPv6).
    pub(crate) fn is_udp(&self) -> bool {
        // SAFETY: The socket is valid; type and protocol are fixed at creation.
        let (ty, proto) = unsafe { ((*self.as_ptr()).sk_type, (*self.as_ptr()).sk_protocol) };
        u32::from(ty) == bindings::sock_type_SOCK_DGRAM as u32
            && u32::from(proto) == bindings::IPPROTO_UDP as u32
    }

    /// Checks that the socket can be given data to send: `ENOTCONN` for a TCP socket that
    /// listens or was never connected, `EDESTADDRREQ` for a datagram socket without a default
    /// destination. Other failures (reset, shut down) are the send's own result.
    pub(crate) fn check_can_send(&self) -> Result {
        let state = self.state();
        if self.is_tcp() {
            if state == TCP_LISTEN || (state == TCP_CLOSE && self.error() == 0) {
                return Err(errno::enotconn());
            }
        } else if state != TCP_ESTABLISHED {
            return Err(errno::edestaddrreq());
        }
        Ok(())
    }

    /// Whether the socket cannot receive: it listens, or it is closed with nothing left to read
    /// and no error or end of stream to report (never connected).
    pub(crate) fn cannot_receive(&self) -> bool {
        let state = self.state();
        state == TCP_LISTEN
            || (state == TCP_CLOSE
                && self.receive_queue_empty()
                && self.error() == 0
                && !self.rcv_shutdown())
    }

    /// Whether the peer will send no more (`RCV_SHUTDOWN`: FIN received, or reset).
    pub(crate) fn rcv_shutdown(&self) -> bool {
        // SAFETY: The socket is valid (type invariant); read as `READ_ONCE`.
        unsafe { read_volatile(&(*self.as_ptr()).sk_shutdown) & RCV_SHUTDOWN != 0 }
    }

    /// Bytes of in-order data queued for reading (TCP).
    pub(crate) fn readable_bytes(&self) -> usize {
        if !self.is_tcp() {
            return 0;
        }
        // SAFETY: The socket is a valid TCP socket; `tcp_inq` only reads sequence numbers.
        let inq = unsafe { bindings::tcp_inq(self.as_ptr()) };
        usize::try_from(inq).unwrap_or(0)
    }

    /// Whether the receive queue is empty.
    pub(crate) fn receive_queue_empty(&self) -> bool {
        // SAFETY: The socket is valid (type invariant); read as `skb_queue_empty_lockless`.
        unsafe { read_volatile(&(*self.as_ptr()).sk_receive_queue.qlen) == 0 }
    }

    /// Takes the pending socket error (`sock_error()`): a negative errno, or 0.
    pub(crate) fn take_error(&self) -> i32 {
        // SAFETY: The socket is valid (type invariant); `sk_err` is an `int`, accessed here as
        // the atomic `sock_error()` exchanges it with.
        let err = unsafe { AtomicI32::from_ptr(core::ptr::addr_of_mut!((*self.as_ptr()).sk_err)) };
        -err.swap(0, core::sync::atomic::Ordering::AcqRel)
    }

    /// Reads up to `count` bytes of in-order TCP data with `tcp_read_sock()`, passing each piece
    /// to `actor(skb, offset, len)`, which returns how many of the `len` bytes at `offset` of
    /// `skb` it used (fewer stops the read). Consumed data leave the receive queue and the
    /// window is updated. Returns the bytes used.
    pub(crate) fn read_tcp<F>(
        &self,
        locked: &SockLocked<'_>,
        count: usize,
        mut actor: F,
    ) -> Result<usize>
    where
        F: FnMut(&SkBuff, usize, usize) -> usize,
    {
        if !core::ptr::eq(locked.sk, self) || !self.is_tcp() {
            return Err(EINVAL);
        }
        let mut desc = bindings::read_descriptor_t {
            written: 0,
            count,
            arg: bindings::read_descriptor_t__bindgen_ty_1 {
                data: (&mut actor as *mut F).cast(),
            },
            error: 0,
        };
        // SAFETY: The socket is a locked TCP socket (`locked` proves the lock); `desc` and the
        // actor it points to live across the call, and `read_actor::<F>` expects exactly them.
        let ret =
            unsafe { bindings::tcp_read_sock(self.as_ptr(), &mut desc, Some(read_actor::<F>)) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(ret as usize)
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
            return u32::try_from(self.readable_bytes()).unwrap_or(u32::MAX);
        }
        // SAFETY: The socket is valid (type invariant); read as `skb_queue_len_lockless`.
        let queued = unsafe { read_volatile(&(*self.as_ptr()).sk_receive_queue.qlen) };
        if queued > 0 {
            return queued;
        }
        // UDP moves datagrams to a private reader queue; its receive memory still counts them.
        // SAFETY: The socket is valid; `sk_rmem_alloc_get` is an atomic read.
        let charged = unsafe { bindings::sk_rmem_alloc_get(self.as_ptr()) } > 0;
        u32::from(charged)
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

/// The `struct socket` behind a socket file; `ENOTSOCK` for other files. Valid while `file` is.
pub(super) fn socket_of(file: &File) -> Result<*mut bindings::socket> {
    // SAFETY: `file` is valid (type invariant of `File`); `sock_from_file` checks its type.
    let socket = unsafe { bindings::sock_from_file(file.as_ptr()) };
    if socket.is_null() {
        return Err(errno::enotsock());
    }
    Ok(socket)
}

/// Points the iterator of `msg` at `len` bytes of the calling process's memory at `addr`, to be
/// read from (`ITER_SOURCE`) or written into (`ITER_DEST`, copies that may fault). `EFAULT` if
/// the range is not user memory.
fn user_iter(msg: &mut bindings::msghdr, direction: u32, addr: usize, len: usize) -> Result {
    // SAFETY: `import_ubuf` checks that the range is user memory of the caller and only
    // describes it in the iterator, which `msg` owns.
    let ret = unsafe {
        bindings::import_ubuf(
            direction as i32,
            addr as *mut core::ffi::c_void,
            len,
            &mut msg.msg_iter,
        )
    };
    if ret < 0 {
        return Err(Error::from_errno(ret));
    }
    Ok(())
}

/// Where a send takes its bytes from.
pub(crate) enum SendFrom<'a, T: ZeroCopyOwner> {
    /// Kernel memory: the stack copies it.
    Kernel(&'a [u8]),
    /// Pinned user pages: attached to skbs without copying (`MSG_ZEROCOPY`), the notifier
    /// learning when the stack no longer uses them. The offset counts from the pinned range.
    Pages(&'a PinnedPages, &'a ZeroCopy<T>),
    /// The calling process's memory, `len` bytes at `addr`: the stack takes references to the
    /// pages it attaches to skbs (`MSG_ZEROCOPY`, as io_uring's `SEND_ZC` from user memory),
    /// the notifier learning when it no longer uses them. The caller's context only.
    User(usize, usize, &'a ZeroCopy<T>),
}

// Copies share the same borrows: no `T: Clone` bound, unlike a derived impl.
impl<T: ZeroCopyOwner> Clone for SendFrom<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ZeroCopyOwner> Copy for SendFrom<'_, T> {}

/// Sends the bytes of `from` after the first `offset` on the socket behind `file`, without
/// blocking (`MSG_DONTWAIT`) and without raising `SIGPIPE` (`MSG_NOSIGNAL`). Returns how many the
/// socket took (at least one); `EAGAIN` when its send buffer is full (the socket then reports
/// write space), or the send's error. Process context; takes and releases the socket lock.
pub(crate) fn send_nowait<T: ZeroCopyOwner>(
    file: &File,
    from: SendFrom<'_, T>,
    offset: usize,
) -> Result<usize> {
    let socket = socket_of(file)?;
    // SAFETY: All-zero is an empty message (no address, no control data, no notifier).
    let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
    let mut flags = bindings::MSG_DONTWAIT | bindings::MSG_NOSIGNAL;
    let segment;
    match from {
        SendFrom::Kernel(buf) => {
            let rest = buf.get(offset..).ok_or(EINVAL)?;
            segment = bindings::kvec {
                iov_base: rest.as_ptr() as *mut core::ffi::c_void,
                iov_len: rest.len(),
            };
            // SAFETY: `segment` describes `rest`, which outlives the send below; the iterator
            // is only read from (`ITER_SOURCE`).
            unsafe {
                bindings::iov_iter_kvec(
                    &mut msg.msg_iter,
                    bindings::ITER_SOURCE,
                    &segment,
                    1,
                    rest.len(),
                )
            };
        }
        SendFrom::Pages(pages, zc) => {
            let (segments, len) = pages.segments();
            if offset >= len {
                return Err(EINVAL);
            }
            // SAFETY: `segments` cover `len` bytes of pinned pages, which outlive the send; the
            // stack takes its own page references for what it keeps.
            unsafe {
                bindings::iov_iter_bvec(
                    &mut msg.msg_iter,
                    bindings::ITER_SOURCE,
                    segments.as_ptr(),
                    segments.len() as _,
                    len,
                );
                bindings::iov_iter_advance(&mut msg.msg_iter, offset);
            }
            msg.msg_ubuf = zc.as_ubuf();
            flags |= bindings::MSG_ZEROCOPY;
        }
        SendFrom::User(addr, len, zc) => {
            let start = addr.checked_add(offset).ok_or(EFAULT)?;
            let rest = len.checked_sub(offset).ok_or(EINVAL)?;
            // The stack reads it, taking page references for what it keeps.
            user_iter(&mut msg, bindings::ITER_SOURCE, start, rest)?;
            msg.msg_ubuf = zc.as_ubuf();
            flags |= bindings::MSG_ZEROCOPY;
        }
    }
    msg.msg_flags = flags;
    // SAFETY: `socket` belongs to `file`, which the caller keeps open; `msg` is a complete
    // message whose iterator and notifier outlive the call (the stack takes references to the
    // notifier for the skbs that keep the pages).
    let ret = unsafe { bindings::sock_sendmsg(socket, &mut msg) };
    if ret < 0 {
        return Err(Error::from_errno(ret));
    }
    if ret == 0 {
        return Err(EAGAIN);
    }
    Ok(ret as usize)
}

/// Receives into the user buffer of `len` bytes at `buf` from the socket behind `file` without
/// blocking, like `recv(MSG_DONTWAIT)` (with `MSG_WAITALL` if `wait_all`). Returns the bytes
/// received (0 at the end of the stream), `EAGAIN` when nothing is queued, `EFAULT` (nothing
/// taken from the socket) or the socket's error. Process context of the buffer's owner.
pub(crate) fn recv_nowait(file: &File, buf: usize, len: usize, wait_all: bool) -> Result<usize> {
    let socket = socket_of(file)?;
    // SAFETY: All-zero is an empty message.
    let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
    user_iter(&mut msg, bindings::ITER_DEST, buf, len)?;
    let mut flags = bindings::MSG_DONTWAIT;
    if wait_all {
        flags |= bindings::MSG_WAITALL;
    }
    // SAFETY: `socket` belongs to `file`, which the caller keeps open; `msg` is complete.
    let ret = unsafe { bindings::sock_recvmsg(socket, &mut msg, flags as i32) };
    if ret < 0 {
        return Err(Error::from_errno(ret));
    }
    Ok(ret as usize)
}

/// `tcp_read_sock()`'s actor: forwards a piece of an skb to the Rust actor in `desc`.
///
/// # Safety
///
/// `desc.arg.data` points to an `F` (set by [`Sock::read_tcp`]); `skb` is valid during the call.
unsafe extern "C" fn read_actor<F>(
    desc: *mut bindings::read_descriptor_t,
    skb: *mut bindings::sk_buff,
    offset: core::ffi::c_uint,
    len: usize,
) -> core::ffi::c_int
where
    F: FnMut(&SkBuff, usize, usize) -> usize,
{
    // SAFETY: `desc` is the descriptor `read_tcp` passed, with its actor (function safety).
    let (desc, actor) = unsafe { (&mut *desc, &mut *(*desc).arg.data.cast::<F>()) };
    let len = len.min(desc.count);
    // SAFETY: `skb` is valid during the call (function safety).
    let used = actor(unsafe { SkBuff::from_raw(skb) }, offset as usize, len).min(len);
    desc.count -= used;
    if used < len {
        // Stop the read: the buffer is full.
        desc.count = 0;
    }
    used as core::ffi::c_int
}

/// A socket buffer, borrowed.
///
/// # Invariants
///
/// The skb is valid for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct SkBuff(Opaque<bindings::sk_buff>);

impl SkBuff {
    /// Borrows an skb.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an skb that stays valid for `'a`.
    unsafe fn from_raw<'a>(ptr: *const bindings::sk_buff) -> &'a SkBuff {
        // SAFETY: `SkBuff` is transparent over `struct sk_buff`; validity per the caller.
        unsafe { &*ptr.cast() }
    }

    /// The raw pointer, for C functions that take a `struct sk_buff *`.
    pub(crate) fn as_ptr(&self) -> *mut bindings::sk_buff {
        self.0.get()
    }
}

/// Proof that a socket is locked: owned through [`Sock::lock`], or bh-locked by the receive
/// path around a hook.
///
/// # Invariants
///
/// `sk` is locked while this exists; neither `Send` nor `Sync` (the lock belongs to this
/// context).
pub(crate) struct SockLocked<'a> {
    sk: &'a Sock,
    _not_send: PhantomData<*mut ()>,
}

impl<'a> SockLocked<'a> {
    /// Asserts that `sk` is locked.
    ///
    /// # Safety
    ///
    /// `sk` must be locked (owned or bh-locked) by the caller's context for `'a`.
    pub(crate) unsafe fn assume(sk: &'a Sock) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            sk,
            _not_send: PhantomData,
        }
    }
}

/// A value that is only used with its socket locked (like `LockedBy`, for the socket lock).
///
/// # Invariants
///
/// `value` is only accessed through [`SockCell::get_mut`], with `sk` locked by the caller's
/// context and exclusively borrowed proof of it.
pub(crate) struct SockCell<T> {
    sk: *const Sock,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: The value moves with the cell; `T: Send` suffices.
unsafe impl<T: Send> Send for SockCell<T> {}
// SAFETY: Shared cells only give access under the socket lock (type invariant), one context at a
// time, so `T: Send` suffices.
unsafe impl<T: Send> Sync for SockCell<T> {}

impl<T> SockCell<T> {
    /// A cell for `value`, protected by the lock of `sk`.
    pub(crate) fn new(sk: &Sock, value: T) -> Self {
        Self {
            sk,
            value: core::cell::UnsafeCell::new(value),
        }
    }

    /// The value, given the proof that its socket is locked; `None` for another socket's proof.
    pub(crate) fn get_mut<'a>(&'a self, locked: &'a mut SockLocked<'_>) -> Option<&'a mut T> {
        if !core::ptr::eq(self.sk, locked.sk) {
            return None;
        }
        // SAFETY: The socket is locked by this context and the proof is borrowed exclusively for
        // `'a`, so no other access to the value exists (type invariant).
        Some(unsafe { &mut *self.value.get() })
    }
}

/// A socket locked by [`Sock::lock`]; dropping it releases the socket.
pub(crate) struct SockGuard<'a> {
    locked: SockLocked<'a>,
}

impl<'a> core::ops::Deref for SockGuard<'a> {
    type Target = SockLocked<'a>;

    fn deref(&self) -> &SockLocked<'a> {
        &self.locked
    }
}

impl<'a> core::ops::DerefMut for SockGuard<'a> {
    fn deref_mut(&mut self) -> &mut SockLocked<'a> {
        &mut self.locked
    }
}

impl Drop for SockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: The socket was locked by `Sock::lock` in this context and is released once.
        unsafe { bindings::release_sock(self.locked.sk.as_ptr()) };
    }
}
