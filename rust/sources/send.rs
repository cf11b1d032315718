// SPDX-License-Identifier: GPL-2.0

//! Network AIO sends (`KEVENT_NAIO`): `aio_send` on TCP and UDP sockets, `aio_sendfile` on TCP.
//!
//! A send is a request like a receive (see `naio.rs`): a registration keyed by its request id,
//! `ONESHOT`, whose one event is its completion (`ret_data[0]` bytes sent, `ret_data[1]` 0 or
//! −errno; `KEVENT_RET_COPIED` in `ret_flags` when the data were copied rather than sent from the
//! user's pages).
//!
//! Sends of at most [`COPY_MAX`] bytes are copied at submission, need no pinning, and complete
//! as soon as the socket has taken all of their bytes. Larger ones pin the user's pages
//! (read-only, charged to `RLIMIT_MEMLOCK`) and hand them to the stack without copying
//! (`MSG_ZEROCOPY` with the request's own `ubuf_info`, [`ZeroCopy`]); they complete when the
//! socket has taken every byte and the stack has released the last skb that referenced the
//! pages, so the buffer may be reused as soon as the event arrives. Local delivery (loopback,
//! veth) copies the pages of the skbs it receives: such sends complete once the peer has
//! acknowledged the data, flagged `KEVENT_RET_COPIED`. `aio_sendfile` requests send a file's
//! page-cache pages by reference (`compat::splice`); they are only ever sent by a worker, since
//! reading the file may wait for I/O, and complete when the socket has taken the last byte.
//!
//! Requests on one socket are sent in submission order: they wait on the socket's storage
//! ([`SocketStorage`], list `sends`) and only the first is ever being sent. Whoever finds the
//! first one `PENDING` claims it (`SENDING`) and sends without blocking: the submitting system
//! call at once, or a worker of [`WORKERS`] queued by the socket's write-space (or error) hook
//! after the send buffer was full. The claim and the hook's "try again" mark (`kick`) are changed
//! under the storage's lock, so write space reported while a send is in progress is never lost.
//! `KEVENT_CTL_REMOVE` cancels a request that has sent nothing yet (`-ECANCELED`); one that has
//! started completes normally (a stream cannot take back half a message).

use super::{
    naio,
    socket::{SocketLists, SocketStorage, ON_SOCKET},
    Cancel, Source,
};
use crate::{
    compat::{
        errno,
        file::{File, FileRef, OwnedFile},
        pinned::PinnedPages,
        slot::Slot,
        sock::{self, SendFrom, Sock, SK_READABLE},
        splice,
        uapi::{self, Ukevent},
        workqueue::ModuleWorkqueue,
        zerocopy::{ZeroCopy, ZeroCopyOwner},
    },
    ctl::Outcome,
    queue::{Queue, Registrations},
    registration::{Registration, Report},
    storage,
};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use kernel::{
    error::code::*,
    list::{
        impl_has_list_links, impl_list_arc_safe, impl_list_item, AtomicTracker, ListLinks,
        TryNewListArc,
    },
    new_mutex, new_work,
    page::PAGE_SIZE,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
    uaccess::{UserPtr, UserSlice},
    workqueue::{HasWork, Work, WorkItem},
};

/// A send request.
pub(crate) type SendReg = Registration<SendWatch>;

/// Sends of at most this many bytes are copied at submission instead of pinned: below about a
/// page, pinning and a completion notification cost more than the copy (io_uring's measured
/// crossover for `SEND_ZC` is about 3 KB).
pub(crate) const COPY_MAX: usize = 4096;

/// The workers that continue sends once their socket has room again.
pub(crate) static WORKERS: ModuleWorkqueue = ModuleWorkqueue::new();

/// [`SendWatch::state`]: waiting to be sent (or continued); nobody is sending it.
const PENDING: u8 = 0;
/// [`SendWatch::state`]: being sent by the context that claimed it.
const SENDING: u8 = 1;
/// [`SendWatch::state`]: every byte taken by the socket, failed, or cancelled.
const DONE: u8 = 2;

/// Where a send's bytes are.
enum Payload {
    /// A small send, copied at submission.
    Copied(KVec<u8>),
    /// A large send before it is armed: the caller's memory at `addr` (sent from directly by
    /// the submitting call, then `zc` is its notifier).
    User {
        addr: usize,
        zc: Option<ZeroCopy<SendReg>>,
    },
    /// The user's pages from byte `base` of the send on, and the notifier of the skbs that hold
    /// the request's pages (made at its first send, given up when the request has been sent).
    Pinned {
        pages: PinnedPages,
        base: usize,
        zc: Option<ZeroCopy<SendReg>>,
    },
    /// `aio_sendfile`: a file's pages, from offset `start`.
    File { file: OwnedFile, start: i64 },
}

/// What a send request keeps.
#[pin_data]
pub(crate) struct SendWatch {
    /// The socket's file, held while the request lives.
    file: OwnedFile,
    /// The socket's storage slot.
    sock: Slot,
    /// The length of the send.
    len: usize,
    /// An `aio_sendfile` request: sent by workers only (reading the file may block).
    from_file: bool,
    /// Whether it is attached to the socket's storage (changed under the storage lock).
    attached: AtomicBool,
    /// `PENDING`, `SENDING` or `DONE`; changed under the lock of the socket's storage lists.
    state: AtomicU8,
    /// The socket reported write space (or an error) while it was `SENDING`: try again.
    kick: AtomicBool,
    /// Bytes the socket has taken; changed only while `SENDING`.
    sent: AtomicUsize,
    /// The send's error (a negative errno) or 0.
    error: AtomicI32,
    /// The bytes to send; `None` once disarmed.
    #[pin]
    payload: Mutex<Option<Payload>>,
    #[pin]
    work: Work<SendReg>,
    #[pin]
    links: ListLinks<ON_SOCKET>,
    #[pin]
    tracker: AtomicTracker<ON_SOCKET>,
}

impl_list_arc_safe! {
    impl ListArcSafe<ON_SOCKET> for SendWatch { tracked_by tracker: AtomicTracker<ON_SOCKET>; }
    impl ListArcSafe<ON_SOCKET> for SendReg { tracked_by watch: SendWatch; }
}
impl_has_list_links! {
    impl HasListLinks<ON_SOCKET> for Registration<SendWatch> { self.watch.links }
}
impl_list_item! {
    impl ListItem<ON_SOCKET> for SendReg { using ListLinks; }
}

// SAFETY: `OFFSET` is the offset of the `Work<SendReg>` field (`watch.work`) within `SendReg`.
unsafe impl HasWork<SendReg> for SendReg {
    const OFFSET: usize = core::mem::offset_of!(SendReg, watch.work);
}

impl WorkItem for SendReg {
    type Pointer = Arc<SendReg>;

    /// Continues the sends of the request's socket after write space (or an error) was
    /// reported.
    fn run(this: Arc<SendReg>) {
        push(&this.watch.sock, false);
    }
}

impl ZeroCopyOwner for SendReg {
    fn released(this: Arc<Self>, copied: bool) {
        report(this.as_arc_borrow(), copied);
    }
}

impl Source for SendWatch {
    const REQUEST_KEYS: bool = true;

    fn add(_queue: &Arc<Queue>, _regs: &mut Registrations, _req: &Ukevent) -> Result<Outcome> {
        // Created by `aio_send` only.
        Err(EINVAL)
    }

    /// Cancels a request that has sent nothing (its event then says `-ECANCELED`); one that
    /// has started, or has finished, keeps its own completion.
    fn cancel(reg: &SendReg) -> Cancel {
        let w = &reg.watch;
        let cancelled = SocketStorage::with_current(&w.sock, |storage| {
            storage.with(|_| {
                let idle = w.state.load(Ordering::Relaxed) == PENDING
                    && w.sent.load(Ordering::Relaxed) == 0;
                if idle {
                    w.state.store(DONE, Ordering::Relaxed);
                }
                idle
            })
        });
        if cancelled != Some(true) {
            return Cancel::Keep;
        }
        w.error
            .store(errno::ecanceled().to_errno(), Ordering::Relaxed);
        storage_detach(reg);
        match finish(reg) {
            Some(copied) => Cancel::Complete(completion(w, copied)),
            None => Cancel::Keep,
        }
    }

    /// Takes the request off its socket and drops its bytes: the pages are unpinned (the skbs
    /// that still carry them hold page references of their own) and the request's reference to
    /// its notifier is given up.
    fn disarm(reg: &SendReg) {
        // Waits for a send in progress, which keeps the request first on its socket's list
        // (so that no later request is sent meanwhile); a pusher that finds it emptied ends it.
        let payload = reg.watch.payload.lock().take();
        storage_detach(reg);
        match payload {
            Some(Payload::Pinned { pages, zc, .. }) => {
                drop(zc);
                pages.release();
            }
            Some(Payload::User { zc, .. }) => drop(zc),
            _ => {}
        }
    }
}

/// Takes `reg` off its socket's list and storage. Idempotent.
fn storage_detach(reg: &SendReg) {
    naio::detach(&reg.watch.attached, &reg.watch.sock, reg, |l| &mut l.sends);
}

/// `aio_send(kfd, fd, buf, len, flags)` on `queue`. Returns the request id.
pub(crate) fn send(
    queue: &Arc<Queue>,
    fd: i32,
    buf: UserPtr,
    len: usize,
    flags: u32,
) -> Result<i64> {
    if flags != 0 || len == 0 || len > i32::MAX as usize {
        return Err(EINVAL);
    }
    let file = FileRef::fget(fd)?;
    let sk = Sock::of_file(&file).ok_or_else(errno::enotsock)?;
    if !sk.is_tcp_stream() && !sk.is_udp() {
        return Err(errno::eopnotsupp());
    }
    sk.check_can_send()?;
    let payload = if len <= COPY_MAX {
        let mut bytes = KVec::new();
        UserSlice::new(buf, len)
            .reader()
            .read_all(&mut bytes, crate::compat::user_gfp())?;
        Payload::Copied(bytes)
    } else {
        Payload::User {
            addr: buf,
            zc: None,
        }
    };
    submit(queue, &file, sk, len, payload, uapi::SOCKET_SEND)
}

/// `aio_sendfile(kfd, fd, in_fd, offset, count)` on `queue`: sends `count` bytes of `in_fd` from
/// the offset `*offset` (read at submission; the file position is neither used nor changed).
/// Returns the request id.
pub(crate) fn sendfile(
    queue: &Arc<Queue>,
    fd: i32,
    in_fd: i32,
    offset: UserPtr,
    count: usize,
) -> Result<i64> {
    if count == 0 || count > i32::MAX as usize || offset == 0 {
        return Err(EINVAL);
    }
    let file = FileRef::fget(fd)?;
    let sk = Sock::of_file(&file).ok_or_else(errno::enotsock)?;
    if !sk.is_tcp_stream() {
        return Err(errno::eopnotsupp());
    }
    sk.check_can_send()?;
    let input = FileRef::fget(in_fd)?;
    splice::check_can_splice_read(&input)?;
    let start = naio::read_offset(offset, count)?;
    let payload = Payload::File {
        file: OwnedFile::new(&input),
        start,
    };
    submit(queue, &file, sk, count, payload, uapi::SOCKET_SEND)
}

/// Registers a send request of `len` bytes from `payload` on socket `sk` (of `file`) and sends
/// what the socket takes at once (sends from a file are left to a worker). Returns its id.
fn submit(
    queue: &Arc<Queue>,
    file: &File,
    sk: &Sock,
    len: usize,
    payload: Payload,
    event: u32,
) -> Result<i64> {
    let from_file = matches!(payload, Payload::File { .. });
    let (owned, slot) = (OwnedFile::new(file), sk.slot());
    let watch = try_pin_init!(SendWatch {
        file: owned,
        sock: slot,
        len,
        from_file,
        attached: AtomicBool::new(false),
        state: AtomicU8::new(PENDING),
        kick: AtomicBool::new(false),
        sent: AtomicUsize::new(0),
        error: AtomicI32::new(0),
        payload <- new_mutex!(Some(payload), "SendWatch::payload"),
        work <- new_work!("SendWatch::work"),
        links <- ListLinks::new(),
        tracker <- AtomicTracker::new(),
    }? Error);
    let (id, reg) = naio::submit(queue, uapi::TYPE_NAIO, event, watch, |reg| {
        if send_at_once(sk, reg)? {
            // Done already: it never waits on the socket.
            return Ok(());
        }
        storage::with_lock(|locked| {
            SocketStorage::attach(locked, &reg.watch.sock, reg, |l| &mut l.sends)?;
            reg.watch.attached.store(true, Ordering::Relaxed);
            Ok(())
        })?
    })?;
    if reg.watch.state.load(Ordering::Relaxed) == DONE {
        if let Some(copied) = finish(&reg) {
            report(reg.as_arc_borrow(), copied);
        }
    } else {
        // Send what the socket takes now; the rest continues from its write-space hook.
        push(&sk.slot(), true);
    }
    Ok(id)
}

/// The fast path of a send on a socket with no send pending: sends what the socket takes at
/// once, before the request waits on the socket (a large send straight from the caller's memory,
/// without pinning it). A large send that must wait pins what is left. Returns true if the
/// request is finished (all sent, or failed; its state is then `DONE`), an error if it cannot be
/// armed (nothing was sent then). Runs when its registration can no longer fail otherwise, so
/// that no byte leaves for a request the caller is told failed.
fn send_at_once(sk: &Sock, reg: &Arc<SendReg>) -> Result<bool> {
    let w = &reg.watch;
    let mut payload = w.payload.lock();
    let idle =
        SocketStorage::with_current(&sk.slot(), |s| s.with(|l| l.sends.is_empty())) != Some(false);
    let (sent, finished) = match payload.as_mut() {
        Some(Payload::Copied(bytes)) if idle => send_all(w, SendFrom::Kernel(bytes)),
        Some(Payload::User { addr, zc }) => {
            let addr = *addr;
            if !idle {
                // Behind pending sends: in order, through the list, from pinned pages.
                let pages = PinnedPages::pin_for_read(addr, w.len, true)?;
                *zc = None;
                *payload = Some(Payload::Pinned {
                    pages,
                    base: 0,
                    zc: None,
                });
                return Ok(false);
            }
            // All or nothing: a bad page fails the call before any byte leaves. A stream could
            // take the pages before the bad one, so they are all checked first; a datagram
            // leaves whole or not at all, so the send itself is the check.
            let datagram = sk.is_udp();
            if !datagram {
                check_readable(addr, w.len)?;
            }
            let notifier = zc.insert(ZeroCopy::new(reg.clone(), &crate::THIS_MODULE, w.len)?);
            let (sent, finished) = send_all(w, SendFrom::User(addr, w.len, notifier));
            if datagram && sent == 0 && finished == Some(EFAULT.to_errno()) {
                // Nothing left: the call fails as the check would have, the notifier goes.
                drop(zc.take());
                return Err(EFAULT);
            }
            if finished.is_none() {
                // The notifier carries the charge of the whole send.
                match PinnedPages::pin_for_read(addr + sent, w.len - sent, false) {
                    Ok(pages) => {
                        let zc = zc.take();
                        *payload = Some(Payload::Pinned {
                            pages,
                            base: sent,
                            zc,
                        });
                    }
                    // Nothing left the caller's memory: the call fails, the notifier goes.
                    Err(e) if sent == 0 => {
                        drop(zc.take());
                        return Err(e);
                    }
                    // Bytes were sent: they are the request's, with the error.
                    Err(e) => {
                        w.sent.store(sent, Ordering::Relaxed);
                        w.error.store(e.to_errno(), Ordering::Relaxed);
                        w.state.store(DONE, Ordering::Relaxed);
                        return Ok(true);
                    }
                }
            }
            (sent, finished)
        }
        // Behind pending sends, or a file: through the list.
        _ => return Ok(false),
    };
    w.sent.store(sent, Ordering::Relaxed);
    let Some(error) = finished else {
        return Ok(false);
    };
    w.error.store(error, Ordering::Relaxed);
    w.state.store(DONE, Ordering::Relaxed);
    Ok(true)
}

/// Checks that every page of the caller's `len` bytes at `addr` can be read (`EFAULT`
/// otherwise).
fn check_readable(addr: usize, len: usize) -> Result {
    let end = addr.checked_add(len).ok_or(EFAULT)?;
    let mut at = addr;
    while at < end {
        let mut byte = [0u8; 1];
        UserSlice::new(at, 1).reader().read_slice(&mut byte)?;
        at = (at & !(PAGE_SIZE - 1)) + PAGE_SIZE;
    }
    Ok(())
}

/// Sends from `from` until the socket takes no more: returns the bytes sent and, if the send is
/// finished (all sent, or failed), its error (0 or a negative errno).
fn send_all(w: &SendWatch, from: SendFrom<'_, SendReg>) -> (usize, Option<i32>) {
    let mut sent = 0;
    loop {
        match sock::send_nowait(&w.file, from, sent) {
            Ok(n) => {
                sent += n;
                if sent >= w.len {
                    return (sent, Some(0));
                }
            }
            Err(e) if e.to_errno() == EAGAIN.to_errno() => return (sent, None),
            Err(e) => return (sent, Some(e.to_errno())),
        }
    }
}

/// What one turn of sending did.
enum Step {
    /// The request is done: every byte taken, or failed.
    Finished,
    /// The socket's send buffer is full.
    Blocked,
}

/// Sends the requests of a socket in order, as far as it takes them without blocking. Process
/// context. `inline`: called by a system call, which leaves sends from files to a worker.
fn push(slot: &Slot, inline: bool) {
    loop {
        let claimed = SocketStorage::with_current(slot, |s| s.with(|l| claim_first(l, inline)));
        let Some(reg) = claimed.flatten() else {
            return;
        };
        let step = send_some(&reg);
        if let Step::Finished = step {
            // Ended (its notifier given up) while still first on the list: a later request
            // cannot complete before it.
            if let Some(copied) = finish(&reg) {
                report(reg.as_arc_borrow(), copied);
            }
        }
        let again = SocketStorage::with_current(slot, |s| {
            s.with(|l| match step {
                Step::Finished => {
                    reg.watch.state.store(DONE, Ordering::Relaxed);
                    if let Some(head) = l.sends.cursor_front() {
                        if head.current().is(&*reg) {
                            drop(head.remove());
                        }
                    }
                    true
                }
                Step::Blocked => {
                    reg.watch.state.store(PENDING, Ordering::Relaxed);
                    // Write space reported while it was being sent: the socket may have room.
                    reg.watch.kick.swap(false, Ordering::Relaxed)
                }
            })
        });
        if again != Some(true) {
            return;
        }
    }
}

/// The first request of a socket, claimed for sending if nobody is sending it; finished
/// (cancelled) requests found first leave the list. `inline`: a send from a file is handed to a
/// worker instead.
fn claim_first(l: &mut SocketLists, inline: bool) -> Option<Arc<SendReg>> {
    loop {
        let head = l.sends.iter().next()?;
        let w = &head.watch;
        let state = w.state.load(Ordering::Relaxed);
        if state != SENDING && head.queue.ready.lock().is_dead() {
            // Its queue is being closed: neither it nor a later request of that queue may be
            // sent (what it sent so far stays a prefix of the requests, in order).
            drop(l.sends.pop_front());
            continue;
        }
        match state {
            PENDING if inline && w.from_file => {
                WORKERS.enqueue(Arc::from(head));
                return None;
            }
            PENDING => {
                w.state.store(SENDING, Ordering::Relaxed);
                w.kick.store(false, Ordering::Relaxed);
                return Some(Arc::from(head));
            }
            SENDING => return None,
            _ => drop(l.sends.pop_front()),
        }
    }
}

/// Sends what the socket takes of a claimed request.
fn send_some(reg: &Arc<SendReg>) -> Step {
    let w = &reg.watch;
    let mut payload = w.payload.lock();
    let Some(payload) = payload.as_mut() else {
        // Disarmed: nothing left to do.
        return Step::Finished;
    };
    let mut sent = w.sent.load(Ordering::Relaxed);
    let result = loop {
        let result = match payload {
            Payload::Copied(bytes) => {
                sock::send_nowait::<SendReg>(&w.file, SendFrom::Kernel(bytes), sent)
            }
            Payload::Pinned { pages, base, zc } => {
                if zc.is_none() {
                    // The pinned pages carry the memory charge.
                    match ZeroCopy::new(reg.clone(), &crate::THIS_MODULE, 0) {
                        Ok(new) => *zc = Some(new),
                        Err(e) => break Err(e),
                    }
                }
                let Some(zc) = zc.as_ref() else {
                    break Err(EINVAL);
                };
                sock::send_nowait(&w.file, SendFrom::Pages(pages, zc), sent - *base)
            }
            // Armed sends never wait with the caller's memory (see `send_at_once`).
            Payload::User { .. } => break Err(EINVAL),
            Payload::File { file, start } => {
                let mut pos = *start + sent as i64;
                match splice::sendfile_nowait(&w.file, file, &mut pos, w.len - sent) {
                    // The end of the file: done with what was sent.
                    Ok(0) => break Ok(()),
                    other => other,
                }
            }
        };
        match result {
            Ok(n) => {
                sent += n;
                w.sent.store(sent, Ordering::Relaxed);
                if sent >= w.len {
                    break Ok(());
                }
                // Partly taken: try once more, which either takes more or finds the buffer
                // full (and makes the socket report write space later).
            }
            Err(e) => break Err(e),
        }
    };
    match result {
        Ok(()) => Step::Finished,
        Err(e) if e.to_errno() == EAGAIN.to_errno() => Step::Blocked,
        Err(e) => {
            w.error.store(e.to_errno(), Ordering::Relaxed);
            Step::Finished
        }
    }
}

/// Ends a finished request. A pinned one gives up its notifier, which reports once the stack
/// has released the pages (at once if it never had them). Returns whether the caller reports
/// instead, and if so whether the data were copied: for a copied request, or a pinned one that
/// never reached the stack.
fn finish(reg: &SendReg) -> Option<bool> {
    let mut payload = reg.watch.payload.lock();
    match payload.as_mut() {
        Some(Payload::Copied(_)) => Some(true),
        // Page-cache pages are sent by reference and need no notification.
        Some(Payload::File { .. }) => Some(false),
        Some(Payload::Pinned { zc, .. } | Payload::User { zc, .. }) => {
            let zc = zc.take();
            drop(payload);
            // Dropping the last reference reports from `released`.
            zc.is_none().then_some(false)
        }
        // Disarmed: nobody waits for an event.
        None => None,
    }
}

/// The completion of a request: `ret_flags` and `ret_data`.
fn completion(w: &SendWatch, copied: bool) -> Report {
    let (sent, error) = (
        w.sent.load(Ordering::Relaxed),
        w.error.load(Ordering::Relaxed),
    );
    let flags = if copied && sent > 0 {
        uapi::RET_COPIED
    } else {
        0
    };
    // `sent` fits: a request is at most `i32::MAX` bytes.
    (flags, [sent as u32, error as u32])
}

/// Posts the completion of a request.
fn report(reg: ArcBorrow<'_, SendReg>, copied: bool) {
    let result = completion(&reg.watch, copied);
    Registration::notify(reg, |st| {
        st.report(result);
        true
    });
}

/// A socket's write space, error or state change (the socket hooks): the first request that is
/// not finished is sent again, by a worker if nobody is sending it. Any context.
pub(super) fn sock_event(storage: &SocketStorage, what: u32) {
    if what == SK_READABLE {
        return;
    }
    storage.with(|l| {
        for reg in l.sends.iter() {
            let w = &reg.watch;
            match w.state.load(Ordering::Relaxed) {
                DONE => continue,
                SENDING => w.kick.store(true, Ordering::Relaxed),
                _ => {
                    WORKERS.enqueue(Arc::from(reg));
                }
            }
            return;
        }
    });
}
