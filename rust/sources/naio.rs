// SPDX-License-Identifier: GPL-2.0

//! Network AIO (`KEVENT_NAIO`): `aio_recv` on TCP sockets.
//!
//! A request is a registration keyed by its request id, `ONESHOT`: its completion is its one
//! event (`ret_data[0]` bytes received, `ret_data[1]` 0 or −errno). `KEVENT_CTL_REMOVE` of the id
//! cancels it into that completion (`-ECANCELED`, or the bytes it holds), so every request ends
//! with exactly one event; a per-request state (`PENDING`, `FILLING`, `DONE`) decides who
//! completes it. It holds a reference to the socket's file, so closing the descriptor does not
//! end it; closing the queue does (without an event).
//!
//! `aio_recv` pins the destination pages and queues the request on the socket's storage
//! ([`SocketStorage`], list `receives`, in submission order). Data already queued on the socket are
//! taken at once; new data are copied in the receive path: the `tcp_data_ready` hook runs with the
//! socket locked (in softirq, or while `release_sock` processes the backlog) and [`fill`] moves the
//! data with `tcp_read_sock` straight into the pinned pages, without waking the process. A request
//! completes like `recv`: with at least one byte once the receive queue is drained, or with the
//! buffer full; with `MSG_WAITALL` only full; at end of stream with what it has (0 if nothing); on
//! a pending socket error with the error if it has nothing (a reset, which does not pass through
//! `tcp_data_ready`, completes the idle ones from the socket's error report, [`sock_event`]).
//! Everything that touches a request's buffer runs with the socket locked: submission and
//! cancellation take `lock_sock`, the hook is called under it. The pages are unpinned (dirty) when
//! the request is disarmed, in process context: after its event was delivered, or when it is
//! cancelled.

use super::{
    socket::{SocketLists, SocketStorage, ON_SOCKET},
    Cancel, Source,
};
use crate::{
    compat::{
        errno,
        file::{FileRef, OwnedFile},
        pinned::PinnedPages,
        slot::Slot,
        sock::{self, Sock, SockCell, SockLocked, SK_READABLE, SK_WRITABLE},
        uapi::{self, Ukevent},
    },
    ctl::{self, Outcome},
    queue::{Queue, Registrations},
    registration::Registration,
    storage,
};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use kernel::{
    error::code::*,
    list::{
        impl_has_list_links, impl_list_arc_safe, impl_list_item, AtomicTracker, List, ListLinks,
        TryNewListArc,
    },
    prelude::*,
    sync::{Arc, ArcBorrow},
    uaccess::{UserPtr, UserSlice},
};

/// A network AIO request.
pub(crate) type NaioReg = Registration<NaioWatch>;

/// `MSG_WAITALL`: complete a receive only when its buffer is full (or at end of stream or
/// error).
const MSG_WAITALL: u32 = 0x100;

/// The last request id handed out; ids are unique across queues.
static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// A new request id.
pub(super) fn next_id() -> u64 {
    LAST_ID.fetch_add(1, Ordering::Relaxed) + 1
}

/// A receive's buffer, used only with its socket locked.
struct Progress {
    /// The destination; taken when the request is disarmed.
    buf: Option<PinnedPages>,
}

/// [`NaioWatch::state`]: waiting for data, nobody touching it.
const PENDING: u8 = 0;
/// [`NaioWatch::state`]: being filled by the holder of the socket lock.
const FILLING: u8 = 1;
/// [`NaioWatch::state`]: completed, its event posted.
const DONE: u8 = 2;

/// What a network AIO request keeps.
#[pin_data]
pub(crate) struct NaioWatch {
    /// The socket's file, held while the request lives.
    file: OwnedFile,
    /// The socket's storage slot.
    sock: Slot,
    /// The buffer's length.
    len: usize,
    /// `MSG_WAITALL`.
    wait_all: bool,
    /// Whether it is attached to the socket's storage (changed under the storage lock).
    attached: AtomicBool,
    /// `PENDING`, `FILLING` or `DONE`: who may complete it. The receive path claims a request
    /// (`PENDING` to `FILLING`) to fill it; an error report completes only `PENDING` ones.
    state: AtomicU8,
    /// Bytes received so far; changed only while `FILLING`.
    done: AtomicUsize,
    /// The buffer, under the socket lock.
    progress: SockCell<Progress>,
    #[pin]
    links: ListLinks<ON_SOCKET>,
    #[pin]
    tracker: AtomicTracker<ON_SOCKET>,
}

impl_list_arc_safe! {
    impl ListArcSafe<ON_SOCKET> for NaioWatch { tracked_by tracker: AtomicTracker<ON_SOCKET>; }
    impl ListArcSafe<ON_SOCKET> for NaioReg { tracked_by watch: NaioWatch; }
}
impl_has_list_links! {
    impl HasListLinks<ON_SOCKET> for Registration<NaioWatch> { self.watch.links }
}
impl_list_item! {
    impl ListItem<ON_SOCKET> for NaioReg { using ListLinks; }
}

impl NaioWatch {
    /// The socket; alive while the request holds its file.
    fn sk(&self) -> Result<&Sock> {
        Sock::of_file(&self.file).ok_or(EINVAL)
    }
}

impl Source for NaioWatch {
    const REQUEST_KEYS: bool = true;

    fn add(_queue: &Arc<Queue>, _regs: &mut Registrations, _req: &Ukevent) -> Result<Outcome> {
        // Created by the AIO calls only.
        Err(EINVAL)
    }

    /// Completes a request that nobody is filling with what it has (`-ECANCELED` if nothing);
    /// one already completed keeps its event. Either way it leaves the socket now, and its
    /// buffer is unpinned when that event has been delivered.
    fn cancel(reg: &NaioReg) -> Cancel {
        let w = &reg.watch;
        let Ok(sk) = w.sk() else {
            return Cancel::Remove;
        };
        // The receive path fills requests under the socket lock: with it held, none is being
        // filled.
        let _guard = sk.lock();
        let claimed = w
            .state
            .compare_exchange(PENDING, DONE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        storage_detach(reg);
        if !claimed {
            return Cancel::Keep;
        }
        let done = w.done.load(Ordering::Relaxed);
        let error = if done == 0 {
            errno::ecanceled().to_errno()
        } else {
            0
        };
        Cancel::Complete((0, [done as u32, error as u32]))
    }

    /// Takes the request off its socket if it is still there, and unpins its buffer.
    fn disarm(reg: &NaioReg) {
        let w = &reg.watch;
        let Ok(sk) = w.sk() else {
            return;
        };
        let buf = {
            let mut guard = sk.lock();
            // Off the pending list (if still there) under the socket lock: no receive path can
            // be filling it afterwards.
            storage_detach(reg);
            w.progress.get_mut(&mut guard).and_then(|p| p.buf.take())
        };
        if let Some(buf) = buf {
            buf.release();
        }
    }
}

/// Takes `reg` off its socket's pending list and storage. Idempotent.
fn storage_detach(reg: &NaioReg) {
    detach(&reg.watch.attached, &reg.watch.sock, reg, |l| {
        &mut l.receives
    });
}

/// Registers a new AIO request of type `type_` (`KEVENT_NAIO` or `KEVENT_AIO`; `ONESHOT`,
/// interest `event`) on `queue`. `arm` runs once the request can no longer fail to be
/// registered (with the queue's registrations locked), for instance to put it on its socket's
/// storage. Returns its id and the request.
pub(super) fn submit<S: Source>(
    queue: &Arc<Queue>,
    type_: u32,
    event: u32,
    watch: impl PinInit<S, Error>,
    arm: impl FnOnce(&Arc<Registration<S>>) -> Result,
) -> Result<(i64, Arc<Registration<S>>)> {
    submit_made(
        queue,
        type_,
        event,
        |req| Registration::new(queue, req, watch),
        arm,
    )
}

/// [`submit`] of a request that `make` provides for the request's entry (a new one, or a
/// finished one renewed: [`Registration::renew`]).
pub(super) fn submit_made<S: Source>(
    queue: &Arc<Queue>,
    type_: u32,
    event: u32,
    make: impl FnOnce(&Ukevent) -> Result<Arc<Registration<S>>>,
    arm: impl FnOnce(&Arc<Registration<S>>) -> Result,
) -> Result<(i64, Arc<Registration<S>>)> {
    let id = next_id();
    let req = Ukevent {
        id,
        type_,
        event,
        req_flags: uapi::REQ_ONESHOT,
        ..Ukevent::default()
    };
    let mut regs = queue.registrations.lock();
    if regs.dead {
        return Err(EBADF);
    }
    // Requests delivered since the last reap leave the tree now: a loop that takes completions
    // from the ring without a system call on the queue would otherwise keep them (and their
    // charge against `max_user_kevents`) until it next waits.
    queue.reap(&mut regs);
    let mut made = None;
    ctl::register_made::<S>(
        queue,
        &mut regs,
        &req,
        || make(&req),
        |reg| {
            arm(reg)?;
            made = Some(reg.clone());
            Ok(None)
        },
    )?;
    // Ids count up from 1 and stay far below `i64::MAX`; `made` is set when `register` succeeds.
    Ok((id as i64, made.ok_or(EINVAL)?))
}

/// Reads the file offset of an AIO call from user address `offset` (`EFAULT`): it must be a
/// valid `loff_t` and leave room for `len` more bytes (`EINVAL`).
pub(super) fn read_offset(offset: UserPtr, len: usize) -> Result<i64> {
    let pos = UserSlice::new(offset, core::mem::size_of::<u64>())
        .reader()
        .read::<u64>()?;
    let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
    let len = i64::try_from(len).map_err(|_| EINVAL)?;
    pos.checked_add(len).ok_or(EINVAL)?;
    Ok(pos)
}

/// Takes request `reg` off the list `which` of the socket storage behind `slot` if `attached`
/// says it is there, and clears `attached`. Idempotent.
pub(super) fn detach<T: storage::Item<ON_SOCKET>>(
    attached: &AtomicBool,
    slot: &Slot,
    reg: &T,
    which: impl FnOnce(&mut SocketLists) -> &mut List<T, ON_SOCKET>,
) {
    // Only fails when the module is going away, when nothing is attached any more.
    let _ = storage::with_lock(|locked| {
        if attached.swap(false, Ordering::Relaxed) {
            SocketStorage::detach(locked, slot, reg, which);
        }
    });
}

/// `aio_recv(kfd, fd, buf, len, flags)` on `queue`. Returns the request id.
pub(crate) fn recv(
    queue: &Arc<Queue>,
    fd: i32,
    buf: UserPtr,
    len: usize,
    flags: u32,
) -> Result<i64> {
    if flags & !MSG_WAITALL != 0 || len == 0 || len > i32::MAX as usize {
        return Err(EINVAL);
    }
    let file = FileRef::fget(fd)?;
    let sk = Sock::of_file(&file).ok_or_else(errno::enotsock)?;
    if !sk.is_tcp_stream() {
        return Err(errno::eopnotsupp());
    }
    if sk.cannot_receive() {
        return Err(errno::enotconn());
    }
    let wait_all = flags & MSG_WAITALL != 0;
    let progress = Progress { buf: None };
    let (owned, slot, progress) = (
        OwnedFile::new(&file),
        sk.slot(),
        SockCell::new(sk, progress),
    );
    let watch = try_pin_init!(NaioWatch {
        file: owned,
        sock: slot,
        len,
        wait_all,
        attached: AtomicBool::new(false),
        state: AtomicU8::new(PENDING),
        done: AtomicUsize::new(0),
        progress,
        links <- ListLinks::new(),
        tracker <- AtomicTracker::new(),
    }? Error);
    let mut at_once = None;
    let (id, reg) = submit(queue, uapi::TYPE_NAIO, uapi::SOCKET_RECV, watch, |reg| {
        at_once = arm_receive(sk, reg, buf)?;
        Ok(())
    })?;
    if let Some((bytes, error)) = at_once {
        post(reg.as_arc_borrow(), bytes, error);
        return Ok(id);
    }
    // Take what is queued already; `release_sock` then runs the hook for what arrived meanwhile.
    let mut guard = sk.lock();
    SocketStorage::with_current(&sk.slot(), |storage| fill(sk, &mut guard, storage));
    drop(guard);
    Ok(id)
}

/// Arms a new receive (its registration can no longer fail, so no byte is taken for a request
/// the caller is told failed). When data are queued and no other receive waits, it takes them at
/// once with a plain non-blocking receive into the caller's buffer, without pinning it: if that
/// completes the request, returns its result (bytes, error) for the caller to post. Otherwise it
/// pins the buffer and attaches the request to the socket.
fn arm_receive(sk: &Sock, reg: &Arc<NaioReg>, buf: UserPtr) -> Result<Option<(usize, i32)>> {
    let w = &reg.watch;
    let mut done = 0;
    let idle = SocketStorage::with_current(&w.sock, |s| s.with(|l| l.receives.is_empty()));
    let enough = !w.wait_all || sk.readable_bytes() >= w.len;
    if idle != Some(false) && !sk.receive_queue_empty() && enough {
        match sock::recv_nowait(&w.file, buf, w.len, w.wait_all) {
            Ok(n) if !w.wait_all || n == w.len || n == 0 => {
                w.state.store(DONE, Ordering::Relaxed);
                return Ok(Some((n, 0)));
            }
            // Part of a `MSG_WAITALL` request: the rest comes through the pinned buffer.
            Ok(n) => done = n,
            Err(e) if e.to_errno() == EAGAIN.to_errno() => {}
            // Nothing was taken: the caller gets the error.
            Err(e) if e.to_errno() == EFAULT.to_errno() => return Err(e),
            Err(e) => {
                w.state.store(DONE, Ordering::Relaxed);
                return Ok(Some((0, e.to_errno())));
            }
        }
    }
    let pages = match PinnedPages::pin_for_write(buf, w.len) {
        Ok(pages) => pages,
        // Bytes were taken: they are the request's, with the error.
        Err(e) if done > 0 => {
            w.state.store(DONE, Ordering::Relaxed);
            return Ok(Some((done, e.to_errno())));
        }
        Err(e) => return Err(e),
    };
    w.done.store(done, Ordering::Relaxed);
    {
        let mut guard = sk.lock();
        if let Some(progress) = w.progress.get_mut(&mut guard) {
            progress.buf = Some(pages);
        }
    }
    storage::with_lock(|locked| {
        SocketStorage::attach(locked, &w.sock, reg, |l| &mut l.receives)?;
        w.attached.store(true, Ordering::Relaxed);
        Ok(None)
    })?
}

/// Moves queued data into the pending receives of `sk`, in order, and completes those that are
/// done. Returns true when the receive queue was drained into requests (readers need no
/// wake-up). Called with the socket locked, from the `tcp_data_ready` hook and at submission.
///
/// A request stays on the list while it is filled, so the storage never looks empty (and is
/// never freed) under a request; only the holder of the socket lock takes requests off.
pub(super) fn fill(sk: &Sock, locked: &mut SockLocked<'_>, storage: &SocketStorage) -> bool {
    let mut consumed = false;
    while let Some(reg) = storage.with(|l| l.receives.iter().next().map(Arc::from)) {
        let Some(n) = fill_one(sk, locked, &reg) else {
            // Not complete: it stays first, for the next data.
            break;
        };
        consumed |= n > 0;
        storage.with(|l| {
            if let Some(head) = l.receives.cursor_front() {
                if head.current().is(&*reg) {
                    drop(head.remove());
                }
            }
        });
    }
    consumed && sk.receive_queue_empty()
}

/// Fills one request from the receive queue. Returns the bytes it took if it completed (its
/// event posted, or completed before by an error report), `None` if it waits for more.
fn fill_one(sk: &Sock, locked: &mut SockLocked<'_>, reg: &Arc<NaioReg>) -> Option<usize> {
    let w = &reg.watch;
    if w.state
        .compare_exchange(PENDING, FILLING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // Completed by an error report: it only needs to leave the list.
        return Some(0);
    }
    let done = w.done.load(Ordering::Relaxed);
    let Some(buf) = w.progress.get_mut(locked).and_then(|p| p.buf.take()) else {
        w.state.store(PENDING, Ordering::Release);
        return None;
    };
    let mut copied = 0usize;
    let read = sk.read_tcp(locked, w.len - done, |skb, offset, len| {
        match buf.copy_from_skb(done + copied, skb, offset, len) {
            Ok(()) => {
                copied += len;
                len
            }
            Err(_) => 0,
        }
    });
    if let Some(p) = w.progress.get_mut(locked) {
        p.buf = Some(buf);
    }
    let done = done + copied;
    w.done.store(done, Ordering::Relaxed);
    let error = match read {
        Err(e) if done == 0 => e.to_errno(),
        _ if done == 0 => sk.take_error(),
        _ => 0,
    };
    let drained = sk.receive_queue_empty();
    let complete = done == w.len
        || error != 0
        || (drained && sk.rcv_shutdown())
        || (!w.wait_all && done > 0 && drained);
    if !complete {
        w.state.store(PENDING, Ordering::Release);
        return None;
    }
    w.state.store(DONE, Ordering::Release);
    post(reg.as_arc_borrow(), done, error);
    Some(copied)
}

/// Posts the completion event of a request.
fn post(reg: ArcBorrow<'_, NaioReg>, done: usize, error: i32) {
    // `done` fits: a request is at most `i32::MAX` bytes.
    let result = [done as u32, error as u32];
    Registration::notify(reg, |st| {
        st.ret_data = result;
        true
    });
}

/// A socket's error or state change (the socket hooks): completes the requests nobody is
/// filling when the connection failed or ended and nothing is left to read. A reset does not
/// pass through `tcp_data_ready`; this is how receives pending at that moment end. Any context.
pub(super) fn sock_event(sk: &Sock, storage: &SocketStorage, what: u32) {
    if what & !SK_READABLE & !SK_WRITABLE == 0 || !sk.receive_queue_empty() {
        return;
    }
    let (error, eof) = (sk.error(), sk.rcv_shutdown());
    if error == 0 && !eof {
        return;
    }
    // Completed requests stay on the list until the receive path or their disarm takes them off
    // (only the holder of the socket lock does).
    storage.with(|l| {
        for reg in l.receives.iter() {
            let w = &reg.watch;
            let claimed = w
                .state
                .compare_exchange(PENDING, DONE, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
            if claimed {
                let done = w.done.load(Ordering::Relaxed);
                post(reg, done, if done == 0 { error } else { 0 });
            }
        }
    });
}
