// SPDX-License-Identifier: GPL-2.0

//! File AIO (`KEVENT_AIO`): `aio_read` and `aio_write` on regular files.
//!
//! A request is a registration keyed by its request id, `ONESHOT`, like a network AIO request
//! ([`naio::submit`]): its completion is its one event (`ret_data[0]` bytes done, `ret_data[1]`
//! 0 or −errno). It pins the caller's buffer and holds the file, so closing the descriptor does
//! not end it.
//!
//! How it runs ([`FileIo`] does the I/O):
//! 1. At submission, a file that honours `IOCB_NOWAIT` is tried at once without blocking: a
//!    page-cache hit completes inline (the event is queued before the call returns), and an
//!    `O_DIRECT` request that the file system can queue without blocking is queued to the
//!    device.
//! 2. Otherwise (a miss, a file without `FMODE_NOWAIT`, or what is left of a partial transfer)
//!    the request goes to a worker of [`WORKERS`], which runs it blocking, with the
//!    submitter's credentials.
//! 3. An I/O the file system queued completes through `ki_complete` ([`FileIoOwner`]), possibly
//!    in interrupt context: it posts the event there and then, as `aio` and io_uring post
//!    theirs, and leaves the buffer pinned until the event is delivered (unpinning dirties the
//!    pages of a read, which may sleep). Only a transfer that must continue goes to a worker.
//!
//! A queue can hold its requests instead of starting them one by one ([`Plug`]): between
//! `KEVENT_CTL_PLUG` and `KEVENT_CTL_UNPLUG` they are created but not started, and `UNPLUG`
//! starts them together under one block plug, so that the device hears of the whole batch at
//! once.
//!
//! A request's `state` says who may act on it: `PENDING` (held, or waiting for a worker:
//! `REMOVE` cancels it with `-ECANCELED`), `RUNNING` (the file system has the buffer), `DONE`
//! (its event is posted, or it was cancelled). The buffer is unpinned once: by whoever finishes
//! the request in process context, else by its disarm (after its event is delivered, or when its
//! queue goes away while no I/O holds it), else by a worker that frees the request. Each request
//! holds a module reference, given back when it is freed, never in interrupt context: a queued
//! I/O runs the module's completion after every system call has returned.
//!
//! A delivered request that nothing else holds any more is not freed: the reap hands it back
//! ([`FileAio::reaped`]), its file is closed, and the queue keeps it (up to [`SPARE_REQUESTS`])
//! for its next request, which renews it in place ([`renew`]) instead of allocating and
//! initialising a new one, as io_uring recycles its requests. A queue frees the ones it keeps
//! when it is released.

use super::{naio, Cancel, Source};
use crate::{
    compat::{
        block,
        cred::Credentials,
        errno,
        file::{FileRef, OwnedFile},
        file_io::{FileIo, FileIoOwner, HasFileIo, Started},
        module_ref::ModuleRef,
        pinned::PinnedPages,
        uapi::{self, Ukevent},
        user_gfp,
        workqueue::ModuleWorkqueue,
    },
    ctl::Outcome,
    queue::{Queue, Registrations},
    registration::Registration,
};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use kernel::{
    error::code::*,
    new_mutex, new_work,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex, UniqueArc},
    uaccess::UserPtr,
    workqueue::{HasWork, Work, WorkItem},
};

/// A file AIO request.
pub(crate) type FaioReg = Registration<FileAio>;

/// The workers that run requests that would block, and finish queued I/O.
pub(crate) static WORKERS: ModuleWorkqueue = ModuleWorkqueue::new();

/// The largest request, as for `read`/`write` (`MAX_RW_COUNT`).
const MAX_LEN: usize = (i32::MAX as usize) & !(kernel::page::PAGE_SIZE - 1);

/// [`FileAio::state`]: waiting for a worker to start it.
const PENDING: u8 = 0;
/// [`FileAio::state`]: its I/O runs, or is queued in the file system.
const RUNNING: u8 = 1;
/// [`FileAio::state`]: finished or cancelled; its event is posted.
const DONE: u8 = 2;

/// What a file AIO request keeps.
#[pin_data]
pub(crate) struct FileAio {
    /// The file, the buffer and the kiocb.
    #[pin]
    io: FileIo<FaioReg>,
    /// The file position of the first byte.
    pos: i64,
    /// The length of the buffer.
    len: usize,
    /// `PENDING`, `RUNNING` or `DONE`.
    state: AtomicU8,
    /// The file honours `IOCB_NOWAIT`: the request is first tried without blocking.
    nowait: bool,
    /// Bytes done by the finished I/Os (all but the running one).
    done: AtomicUsize,
    /// The submitter's credentials, for the workers.
    creds: Credentials,
    /// Keeps the module (the completion's code) while the request lives.
    _module: ModuleRef,
    #[pin]
    work: Work<FaioReg>,
}

// SAFETY: `OFFSET` is the offset of the `Work<FaioReg>` field (`watch.work`) within `FaioReg`.
unsafe impl HasWork<FaioReg> for FaioReg {
    const OFFSET: usize = core::mem::offset_of!(FaioReg, watch.work);
}

// SAFETY: `OFFSET` is the offset of the `FileIo<FaioReg>` field (`watch.io`) within `FaioReg`.
unsafe impl HasFileIo for FaioReg {
    const OFFSET: usize = core::mem::offset_of!(FaioReg, watch.io);
}

impl WorkItem for FaioReg {
    type Pointer = Arc<FaioReg>;

    /// Starts or continues a pending request (blocking); or frees a finished one whose last
    /// reference a completion handed over, unpinning its buffer if nobody did.
    fn run(this: Arc<FaioReg>) {
        let w = &this.watch;
        if w.claim(PENDING, RUNNING) {
            w.creds.run_as(|| run(&this, false));
        } else if w.state.load(Ordering::Acquire) == DONE {
            if let Some(pages) = w.io.take_pages() {
                pages.release();
            }
        }
    }
}

impl FileIoOwner for FaioReg {
    /// Posts the event of a finished request at once; a transfer that must continue goes to
    /// a worker. Any context, hard IRQ included.
    fn completed(this: Arc<Self>, res: isize) {
        let Some(res) = advance(&this, res) else {
            this.watch.state.store(PENDING, Ordering::Release);
            // Not queued already: a worker that started this I/O took the item off the queue
            // before running it. The workqueue runs until the module goes, which this
            // request's module reference prevents.
            WORKERS.enqueue(this);
            return;
        };
        this.watch.state.store(DONE, Ordering::Release);
        post(this.as_arc_borrow(), result_of(res));
        // The last reference (its queue is gone) frees the request, which unpins pages and
        // gives back the module reference: that is a worker's job, not an interrupt's.
        if let Some(last) = Arc::into_unique_or_drop(this) {
            WORKERS.enqueue(Arc::from(last));
        }
    }
}

impl FileAio {
    /// The I/O of a request of which the caller holds the only reference.
    fn io(self: Pin<&mut Self>) -> Pin<&mut FileIo<FaioReg>> {
        // SAFETY: `io` is a structurally pinned field of a pinned value, pinned again; nothing
        // is moved.
        unsafe { self.map_unchecked_mut(|w| &mut w.io) }
    }

    /// Moves the state from `from` to `to`; false if it was not `from`.
    fn claim(&self, from: u8, to: u8) -> bool {
        self.state
            .compare_exchange(from, to, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
}

impl Source for FileAio {
    const REQUEST_KEYS: bool = true;

    fn add(_queue: &Arc<Queue>, _regs: &mut Registrations, _req: &Ukevent) -> Result<Outcome> {
        // Created by the AIO calls only.
        Err(EINVAL)
    }

    /// Cancels a request waiting for a worker (`-ECANCELED`, or the bytes of its finished
    /// part); one whose I/O runs keeps its event, which the I/O's end posts.
    fn cancel(reg: &FaioReg) -> Cancel {
        if !reg.watch.claim(PENDING, DONE) {
            return Cancel::Keep;
        }
        let done = reg.watch.done.load(Ordering::Relaxed);
        let res = if done > 0 {
            done as isize
        } else {
            errno::ecanceled().to_errno() as isize
        };
        Cancel::Complete((0, result_of(res)))
    }

    /// Keeps a pending request from starting and unpins its buffer unless an I/O holds it
    /// (the I/O's end unpins it then).
    fn disarm(reg: &FaioReg) {
        let w = &reg.watch;
        w.claim(PENDING, DONE);
        if let Some(pages) = w.io.take_pages() {
            pages.release();
        }
    }

    /// Keeps a delivered request that nothing else holds any more (no I/O, no worker, no plug)
    /// for a later request on the same queue ([`renew`]), as io_uring recycles its requests:
    /// its buffer was unpinned by its disarm, and its file is closed now.
    fn reaped(queue: &Queue, reg: Arc<FaioReg>) {
        let Some(mut spare) = Arc::into_unique_or_drop(reg) else {
            return;
        };
        if FileAio::io(Registration::source_mut(spare.as_mut())).close_file() {
            queue.aio_plug.keep(spare);
        }
    }
}

/// Adds the result `res` of an I/O to a request's progress. Returns its final result (bytes or
/// a negative errno) if it is finished: an error, the end of the file, or the whole buffer;
/// `None` if the rest is still to be transferred.
fn advance(reg: &FaioReg, res: isize) -> Option<isize> {
    let w = &reg.watch;
    let done = w.done.load(Ordering::Relaxed);
    if res <= 0 {
        // An error after some bytes reports the bytes, as `pread`/`pwrite` do.
        return Some(if done > 0 { done as isize } else { res });
    }
    let done = done + res as usize;
    w.done.store(done, Ordering::Relaxed);
    (done >= w.len).then_some(done as isize)
}

/// Transfers what is left of a `RUNNING` request, in process context. `nowait`: at submission,
/// without blocking; a request that would block goes to a worker. Returns when the request is
/// finished, queued in the file system, or handed to a worker.
fn run(reg: &Arc<FaioReg>, nowait: bool) {
    let w = &reg.watch;
    loop {
        let done = w.done.load(Ordering::Relaxed);
        // `pos + len` was checked not to overflow at submission.
        let pos = w.pos + done as i64;
        let res = match FileIo::start(reg, &w.io, pos, done, nowait) {
            Ok(Started::Queued) => return,
            Ok(Started::Done(res)) => res,
            Err(e) => e.to_errno() as isize,
        };
        let would_block =
            res == EAGAIN.to_errno() as isize || res == errno::eopnotsupp().to_errno() as isize;
        if nowait && would_block {
            // Ext4 answers `EOPNOTSUPP` to a buffered write that must not block.
            w.state.store(PENDING, Ordering::Release);
            WORKERS.enqueue(reg.clone());
            return;
        }
        if let Some(res) = advance(reg, res) {
            finish(reg, res);
            return;
        }
    }
}

/// Ends a request with `res` (bytes, or a negative errno): unpins its buffer and posts its
/// event. Process context.
fn finish(reg: &Arc<FaioReg>, res: isize) {
    reg.watch.state.store(DONE, Ordering::Release);
    if let Some(pages) = reg.watch.io.take_pages() {
        pages.release();
    }
    post(reg.as_arc_borrow(), result_of(res));
}

/// The `ret_data` of a request that ended with `res` (bytes, or a negative errno).
fn result_of(res: isize) -> [u32; 2] {
    // Both fit: a request is at most `MAX_LEN` bytes, an errno is small.
    if res < 0 {
        [0, res as i32 as u32]
    } else {
        [res as u32, 0]
    }
}

/// Posts the completion event of a request.
fn post(reg: ArcBorrow<'_, FaioReg>, result: [u32; 2]) {
    Registration::notify(reg, |st| {
        st.ret_data = result;
        true
    });
}

/// `aio_read(kfd, fd, buf, len, offset)` (`write` false) or `aio_write` on `queue`: reads
/// `len` bytes of `fd` at `*offset` into `buf`, or writes them from `buf`. Returns the request
/// id. The file position is neither used nor changed.
pub(crate) fn submit(
    queue: &Arc<Queue>,
    fd: i32,
    buf: UserPtr,
    len: usize,
    offset: UserPtr,
    write: bool,
) -> Result<i64> {
    let file = FileRef::fget(fd)?;
    if len == 0 || len > MAX_LEN || offset == 0 {
        return Err(EINVAL);
    }
    if !file.is_open_for(write) {
        return Err(EBADF);
    }
    if !file.is_positional(write) {
        return Err(ESPIPE);
    }
    if !file.is_regular() {
        return Err(EINVAL);
    }
    let pos = naio::read_offset(offset, len)?;
    let pages = if write {
        PinnedPages::pin_for_read(buf, len, true)?
    } else {
        PinnedPages::pin_for_write_io(buf, len)?
    };
    let request = Request {
        file: OwnedFile::new(&file),
        pages,
        write,
        pos,
        len,
        nowait: file.supports_nowait(),
    };
    let (type_, event) = (uapi::TYPE_AIO, uapi::AIO_DONE);
    // Without a spare, the requests delivered since the last reap are reaped now, so that
    // they can be reused: a loop that harvests from the ring reaps only when it waits.
    let spare = queue.aio_plug.take_spare().or_else(|| {
        queue.reap(&mut queue.registrations.lock());
        queue.aio_plug.take_spare()
    });
    let (id, reg) = match spare {
        Some(spare) => naio::submit_made(
            queue,
            type_,
            event,
            |req| renew(spare, req, request),
            |_| Ok(()),
        )?,
        None => naio::submit(queue, type_, event, request.into_watch(), |_| Ok(()))?,
    };
    if let Some(reg) = queue.aio_plug.hold(reg) {
        start(reg, false);
    }
    Ok(id)
}

/// What a new request is made of, besides its entry.
struct Request {
    file: OwnedFile,
    pages: PinnedPages,
    write: bool,
    pos: i64,
    len: usize,
    nowait: bool,
}

impl Request {
    /// The source state of a new request.
    fn into_watch(self) -> impl PinInit<FileAio, Error> {
        try_pin_init!(FileAio {
            io <- FileIo::new(self.file, self.pages, self.write),
            pos: self.pos,
            len: self.len,
            state: AtomicU8::new(PENDING),
            nowait: self.nowait,
            done: AtomicUsize::new(0),
            creds: Credentials::current(),
            _module: ModuleRef::new(&crate::THIS_MODULE),
            work <- new_work!("FileAio::work"),
        }? Error)
    }
}

/// Makes `spare`, a finished request of the queue kept by [`FileAio::reaped`], the new request
/// `request` with entry `req`. It keeps its allocation, its module reference and its work item
/// (not queued: a queued work item holds a reference).
fn renew(
    mut spare: Pin<UniqueArc<FaioReg>>,
    req: &Ukevent,
    request: Request,
) -> Result<Arc<FaioReg>> {
    let mut w = Registration::renew(spare.as_mut(), req);
    w.as_mut()
        .io()
        .renew(request.file, request.pages, request.write)?;
    // SAFETY: Only fields that are not structurally pinned are assigned; `io` was renewed
    // through its pinned reference above and `work` stays as it is.
    let w = unsafe { w.get_unchecked_mut() };
    w.pos = request.pos;
    w.len = request.len;
    w.state = AtomicU8::new(PENDING);
    w.nowait = request.nowait;
    w.done = AtomicUsize::new(0);
    w.creds = Credentials::current();
    Ok(Arc::from(spare))
}

/// Starts a `PENDING` request: at once and without blocking if its file allows it, else on a
/// worker. `as_submitter`: the caller is not necessarily the submitter, so the attempt runs
/// with the submitter's credentials. Returns false if the request was cancelled meanwhile.
fn start(reg: Arc<FaioReg>, as_submitter: bool) -> bool {
    let w = &reg.watch;
    if !w.nowait {
        // It stays `PENDING` (cancellable) until a worker claims it.
        let pending = w.state.load(Ordering::Acquire) == PENDING;
        if pending {
            WORKERS.enqueue(reg);
        }
        return pending;
    }
    if !w.claim(PENDING, RUNNING) {
        return false;
    }
    if as_submitter {
        w.creds.run_as(|| run(&reg, true));
    } else {
        run(&reg, true);
    }
    true
}

/// The file AIO requests that a queue holds between `KEVENT_CTL_PLUG` and `KEVENT_CTL_UNPLUG`.
///
/// While the queue is plugged, `aio_read` and `aio_write` create their requests (buffer
/// pinned, id returned, cancellable by `REMOVE`) but do not start them. `UNPLUG` starts them
/// in submission order under one block plug ([`block::plugged`]), so that the device is
/// notified once for the batch, as it is for an `io_submit` of many iocbs or an
/// `io_uring_enter` that submits many entries. The wait calls unplug first
/// ([`Plug::unplug_before_wait`]): a queue never waits for requests it holds itself.
///
/// The plug also keeps the queue's finished requests for reuse ([`FileAio::reaped`]).
///
/// Lock order: `held` is a leaf (see the crate documentation), taken under the registrations by
/// the reap; requests are taken off it before they are started.
#[pin_data]
pub(crate) struct Plug {
    /// Whether requests are held. Written under `held`; read without it by the wait calls.
    plugged: AtomicBool,
    #[pin]
    held: Mutex<Held>,
}

/// The room a plug's list of held requests starts with.
const HELD_BATCH: usize = 32;

/// How many finished requests a queue keeps for reuse ([`FileAio::reaped`]): a whole batch at
/// the queue depths where allocating each request shows.
const SPARE_REQUESTS: usize = 128;

/// What [`Plug::held`] protects.
///
/// # Invariants
///
/// `spare[..nr_spare]` are `Some`, the rest of `spare` is `None`.
struct Held {
    /// The held requests, in submission order; `PENDING` unless cancelled since.
    list: KVec<Arc<FaioReg>>,
    /// Room for [`SPARE_REQUESTS`] finished requests kept for reuse, with no other reference,
    /// file or buffer (empty until the first is kept).
    spare: KVec<Option<Pin<UniqueArc<FaioReg>>>>,
    nr_spare: usize,
    /// The queue was released: nothing is held or kept any more.
    closed: bool,
}

impl Plug {
    /// An unplugged, empty plug.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            plugged: AtomicBool::new(false),
            held <- new_mutex!(
                Held {
                    list: KVec::new(),
                    spare: KVec::new(),
                    nr_spare: 0,
                    closed: false,
                },
                "Plug::held"
            ),
        })
    }

    /// `KEVENT_CTL_PLUG`: holds the requests submitted from now on. Plugging a plugged queue
    /// changes nothing.
    pub(crate) fn plug(&self) -> Result {
        let held = self.held.lock();
        if held.closed {
            return Err(EBADF);
        }
        self.plugged.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// `KEVENT_CTL_UNPLUG`: stops holding requests and starts the held ones, together. Returns
    /// how many were started (not those cancelled while held).
    pub(crate) fn unplug(&self) -> usize {
        let list = {
            let mut held = self.held.lock();
            self.plugged.store(false, Ordering::Relaxed);
            core::mem::take(&mut held.list)
        };
        if list.is_empty() {
            return 0;
        }
        block::plugged(|| {
            list.into_iter()
                .map(|reg| start(reg, true))
                .filter(|&started| started)
                .count()
        })
    }

    /// Unplugs a plugged queue before a wait call looks for events.
    pub(crate) fn unplug_before_wait(&self) {
        if self.plugged.load(Ordering::Relaxed) {
            self.unplug();
        }
    }

    /// Holds the new request `reg` if the queue is plugged; otherwise gives it back, to be
    /// started at once. `None` if the queue was released meanwhile (which disarmed `reg`).
    fn hold(&self, reg: Arc<FaioReg>) -> Option<Arc<FaioReg>> {
        if !self.plugged.load(Ordering::Relaxed) {
            return Some(reg);
        }
        let mut held = self.held.lock();
        if held.closed {
            return None;
        }
        // Room for a typical batch at once rather than doubling from one. Without room to hold
        // it, the request is simply not held.
        let room = if held.list.is_empty() { HELD_BATCH } else { 1 };
        if !self.plugged.load(Ordering::Relaxed) || held.list.reserve(room, user_gfp()).is_err() {
            return Some(reg);
        }
        // Cannot fail: room was reserved just above.
        held.list.push(reg, user_gfp()).ok()?;
        None
    }

    /// The queue is released: stops holding for good and drops the held requests, which the
    /// release disarmed, and the kept ones (each keeps its queue alive).
    pub(crate) fn close(&self) {
        let (list, spare) = {
            let mut held = self.held.lock();
            held.closed = true;
            self.plugged.store(false, Ordering::Relaxed);
            held.nr_spare = 0;
            (
                core::mem::take(&mut held.list),
                core::mem::take(&mut held.spare),
            )
        };
        drop(list);
        drop(spare);
    }

    /// Keeps `spare`, a finished request with no other reference, for reuse, unless the queue
    /// was released or enough are kept (then it is freed).
    fn keep(&self, spare: Pin<UniqueArc<FaioReg>>) {
        let mut guard = self.held.lock();
        let held = &mut *guard;
        if held.spare.is_empty() && !held.closed {
            // Room for all of them at once; without it, nothing is kept.
            if held.spare.reserve(SPARE_REQUESTS, user_gfp()).is_ok() {
                while held.spare.len() < SPARE_REQUESTS {
                    // Cannot fail: the room was reserved just above.
                    let _ = held.spare.push(None, user_gfp());
                }
            }
        }
        match held.spare.get_mut(held.nr_spare) {
            Some(slot) if !held.closed => {
                // INVARIANT: The first `None` becomes `Some` and the count grows with it.
                *slot = Some(spare);
                held.nr_spare += 1;
            }
            _ => {
                drop(guard);
                drop(spare);
            }
        }
    }

    /// A finished request kept for reuse, if there is one.
    fn take_spare(&self) -> Option<Pin<UniqueArc<FaioReg>>> {
        let mut guard = self.held.lock();
        let held = &mut *guard;
        let last = held.nr_spare.checked_sub(1)?;
        // INVARIANT: The last `Some` is taken and the count lowered with it.
        held.nr_spare = last;
        held.spare.get_mut(last)?.take()
    }
}
