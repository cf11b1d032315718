// SPDX-License-Identifier: GPL-2.0

//! Asynchronous file reads and writes into pinned pages, through a `struct kiocb` embedded in
//! the object that owns the request.
//!
//! C headers: [`include/linux/fs.h`](srctree/include/linux/fs.h) (`struct kiocb`,
//! `vfs_iocb_iter_read`, `vfs_iocb_iter_write`) and
//! [`include/linux/uio.h`](srctree/include/linux/uio.h) (`iov_iter_bvec`).
//!
//! A [`FileIo`] holds a file and a pinned buffer. [`FileIo::start`] runs one read or write of
//! (part of) the buffer at a file position with `ki_complete` set, as `io_submit` and io_uring
//! do: the file system either finishes it before returning ([`Started::Done`]) or returns
//! `-EIOCBQUEUED` ([`Started::Queued`]) and calls `ki_complete` later, from the block layer's
//! completion (hard or soft interrupt) or a workqueue. That call is passed on to
//! [`FileIoOwner::completed`]. While an I/O is in flight the owner is kept alive by a reference
//! the kiocb holds, and neither the buffer nor the kiocb can be touched: [`FileIo::start`]
//! refuses a second I/O and [`FileIo::take_pages`] refuses to give the buffer back.

use super::{errno, file::OwnedFile, pinned::PinnedPages};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::MaybeUninit,
    sync::atomic::{AtomicU8, Ordering},
};
use kernel::{bindings, error::code::*, prelude::*, sync::Arc, types::Opaque};

/// `-EIOCBQUEUED` (`include/linux/errno.h`): the I/O completes through `ki_complete`.
const EIOCBQUEUED: isize = -529;

/// [`FileIo::state`]: no I/O in flight; the buffer may be used or taken.
const IDLE: u8 = 0;
/// [`FileIo::state`]: an I/O is running or in flight.
const BUSY: u8 = 1;
/// [`FileIo::state`]: the buffer was taken; no I/O will start again.
const RETIRED: u8 = 2;

/// The owner of a [`FileIo`].
pub(crate) trait FileIoOwner: Send + Sync + Sized + 'static {
    /// An I/O that [`FileIo::start`] reported as [`Started::Queued`] finished with `res` (bytes
    /// done or a negative errno). Called once per such I/O, in any context (hard IRQ included),
    /// with the I/O no longer in flight: must not sleep.
    fn completed(this: Arc<Self>, res: isize);
}

/// An owner with a [`FileIo`] field.
///
/// # Safety
///
/// `OFFSET` is the offset in bytes of a `FileIo<Self>` field within `Self`.
pub(crate) unsafe trait HasFileIo: FileIoOwner {
    /// The offset of the `FileIo<Self>` field.
    const OFFSET: usize;
}

/// How [`FileIo::start`] went.
pub(crate) enum Started {
    /// The I/O finished before the call returned: bytes done, or a negative errno (`-EAGAIN`
    /// when it would have blocked and was started with `nowait`).
    Done(isize),
    /// The I/O is in flight; [`FileIoOwner::completed`] reports its end.
    Queued,
}

/// A file, a pinned buffer, and the kiocb that reads into or writes from the buffer.
///
/// # Invariants
///
/// - `iocb` is the first field (`#[repr(C)]`): a `*mut kiocb` given to the file system is a
///   `*mut FileIo<T>`, within a `T` at `T::OFFSET`.
/// - While `state` is `BUSY`, one start owns the kiocb, the file system may use the buffer's
///   pages and segments, and, once the I/O is queued, the kiocb holds a reference to the owner
///   (from `Arc::into_raw`) that the completion takes back.
/// - `pages` is only read while `BUSY` (by the starter) and only taken after the transition to
///   `RETIRED`, which happens once, from `IDLE` (until [`FileIo::renew`], which needs the only
///   access to the value).
/// - `file` is `Some` until [`FileIo::close_file`] of a `RETIRED` I/O.
#[repr(C)]
#[pin_data]
pub(crate) struct FileIo<T> {
    #[pin]
    iocb: Opaque<bindings::kiocb>,
    state: AtomicU8,
    /// Whether the I/O writes the file (from the buffer) rather than reads it.
    write: bool,
    file: Option<OwnedFile>,
    pages: UnsafeCell<Option<PinnedPages>>,
    _owner: PhantomData<T>,
}

// SAFETY: The pages are only accessed as the invariants describe, under the `state` protocol
// (acquire on taking `BUSY` or `RETIRED`, release on leaving `BUSY`); the kiocb only by the
// holder of `BUSY`.
unsafe impl<T> Send for FileIo<T> {}
// SAFETY: As above.
unsafe impl<T> Sync for FileIo<T> {}

impl<T: HasFileIo> FileIo<T> {
    /// An idle I/O that reads `file` into `pages` (`write` false) or writes `pages` to it.
    /// `pages` must be pinned with segments ([`PinnedPages::pin_for_write_io`] to read,
    /// [`PinnedPages::pin_for_read`] to write).
    pub(crate) fn new(file: OwnedFile, pages: PinnedPages, write: bool) -> impl PinInit<Self> {
        pin_init!(Self {
            iocb: Opaque::uninit(),
            state: AtomicU8::new(IDLE),
            write,
            file: Some(file),
            pages: UnsafeCell::new(Some(pages)),
            _owner: PhantomData,
        })
    }

    /// Makes a retired I/O (its buffer taken) idle again, for `file` and `pages` as in
    /// [`FileIo::new`]. The caller has the only access to it, so no I/O is in flight: the kiocb
    /// of a queued I/O holds a reference to the owner. `EBUSY` (and nothing changes) if it was
    /// not retired.
    pub(crate) fn renew(
        self: Pin<&mut Self>,
        file: OwnedFile,
        pages: PinnedPages,
        write: bool,
    ) -> Result {
        // SAFETY: `iocb`, the only structurally pinned field, is not touched.
        let this = unsafe { self.get_unchecked_mut() };
        let state = this.state.get_mut();
        if *state != RETIRED {
            return Err(EBUSY);
        }
        // INVARIANT: Exclusive access: nothing reads the pages or the file meanwhile; the
        // pages are back, and the state is `IDLE` again.
        *this.pages.get_mut() = Some(pages);
        this.file = Some(file);
        this.write = write;
        *state = IDLE;
        Ok(())
    }

    /// Drops the file of a retired I/O, which will not start again before [`FileIo::renew`].
    /// Returns false, and does nothing, if it was not retired.
    pub(crate) fn close_file(self: Pin<&mut Self>) -> bool {
        // SAFETY: `iocb`, the only structurally pinned field, is not touched.
        let this = unsafe { self.get_unchecked_mut() };
        if *this.state.get_mut() != RETIRED {
            return false;
        }
        // INVARIANT: `RETIRED`: no I/O uses the file any more.
        this.file = None;
        true
    }

    /// Starts reading into (or writing from) the buffer, from byte `skip` of it to its end, at
    /// file position `pos`. `nowait`: return `-EAGAIN` instead of blocking (only honoured by
    /// files that support it, `FMODE_NOWAIT`). Blocks otherwise, as `pread`/`pwrite` may, until
    /// the file system has either finished or queued the I/O. Process context, with the
    /// credentials the I/O is to run with. `EBUSY` while an I/O is in flight, `ECANCELED` once
    /// the buffer was taken, `EINVAL` if `skip` is past the end.
    pub(crate) fn start(
        this: &Arc<T>,
        io: &Self,
        pos: i64,
        skip: usize,
        nowait: bool,
    ) -> Result<Started> {
        if let Err(state) =
            io.state
                .compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
        {
            return Err(if state == RETIRED {
                errno::ecanceled()
            } else {
                EBUSY
            });
        }
        let result = io.submit(this, pos, skip, nowait);
        if !matches!(result, Ok(Started::Queued)) {
            io.state.store(IDLE, Ordering::Release);
        }
        result
    }

    /// [`FileIo::start`] with `BUSY` taken.
    fn submit(&self, this: &Arc<T>, pos: i64, skip: usize, nowait: bool) -> Result<Started> {
        // SAFETY: `BUSY` is held, so the pages are only read here (type invariant).
        let Some(pages) = (unsafe { &*self.pages.get() }) else {
            return Err(errno::ecanceled());
        };
        let (segments, len) = pages.segments();
        if skip >= len {
            return Err(EINVAL);
        }
        let Some(file) = &self.file else {
            return Err(errno::ecanceled());
        };
        let iocb = self.iocb.get();
        let file = file.as_ptr();
        // SAFETY: `BUSY` gives this call the kiocb (type invariant); `file` is alive (held by
        // `self.file`). The fields set are plain data that the file system reads.
        unsafe {
            bindings::init_sync_kiocb(iocb, file);
            (*iocb).ki_pos = pos;
            (*iocb).ki_complete = Some(complete::<T>);
            if nowait {
                (*iocb).ki_flags |= bindings::IOCB_NOWAIT;
            }
            if self.write {
                (*iocb).ki_flags |= bindings::IOCB_WRITE as i32;
            }
        }
        let direction = if self.write {
            bindings::ITER_SOURCE
        } else {
            bindings::ITER_DEST
        };
        let mut iter = MaybeUninit::<bindings::iov_iter>::uninit();
        // SAFETY: `iov_iter_bvec` initialises `iter` over `segments`, which cover `len` bytes of
        // pinned pages that stay pinned while `BUSY` (type invariant); `skip < len`.
        unsafe {
            bindings::iov_iter_bvec(
                iter.as_mut_ptr(),
                direction,
                segments.as_ptr(),
                segments.len() as _,
                len,
            );
            bindings::iov_iter_advance(iter.as_mut_ptr(), skip);
        }
        // The kiocb's reference to the owner, taken back below unless the I/O is queued.
        let owner = Arc::into_raw(this.clone());
        // SAFETY: The kiocb was set up above for `file`; `iter` is initialised; the segments
        // stay valid until the completion (the pages are only taken after `BUSY` ends). A
        // queued I/O ends with exactly one `ki_complete` call, which takes back `owner`.
        let ret = unsafe {
            if self.write {
                bindings::vfs_iocb_iter_write(file, iocb, iter.as_mut_ptr())
            } else {
                bindings::vfs_iocb_iter_read(file, iocb, iter.as_mut_ptr())
            }
        };
        if ret == EIOCBQUEUED {
            return Ok(Started::Queued);
        }
        // SAFETY: Not queued: the file system never calls `ki_complete` for this I/O, so the
        // reference from `into_raw` above is still this function's to give back.
        drop(unsafe { Arc::from_raw(owner) });
        Ok(Started::Done(ret))
    }

    /// Takes the buffer back for good, if no I/O is in flight and it was not taken before.
    pub(crate) fn take_pages(&self) -> Option<PinnedPages> {
        self.state
            .compare_exchange(IDLE, RETIRED, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // SAFETY: `RETIRED` was entered just above, once: nothing else reads or takes the
        // pages any more (type invariant).
        unsafe { (*self.pages.get()).take() }
    }
}

/// `ki_complete` of every [`FileIo`] of owner type `T`.
///
/// # Safety
///
/// `iocb` is the kiocb of a `FileIo<T>` whose I/O was queued by [`FileIo::start`]; called once
/// for that I/O.
unsafe extern "C" fn complete<T: HasFileIo>(iocb: *mut bindings::kiocb, res: isize) {
    let io = iocb.cast::<FileIo<T>>();
    // SAFETY: `iocb` is the first field of a `FileIo<T>` (type invariant), which lives at
    // `T::OFFSET` within its owner (safety requirement of `HasFileIo`); the owner is alive, held
    // by the kiocb's reference.
    let owner = unsafe { io.cast::<u8>().sub(T::OFFSET) }.cast::<T>();
    // SAFETY: As above, the `FileIo` is alive.
    let io = unsafe { &*io };
    if io.write {
        // SAFETY: A queued write leaves the superblock's write reference (taken by
        // `vfs_iocb_iter_write`) to whoever completes it, as `aio` and io_uring do.
        unsafe { bindings::kiocb_end_write(iocb) };
    }
    // SAFETY: The reference the kiocb held since `submit` (`Arc::into_raw`), given up here once.
    let this = unsafe { Arc::from_raw(owner) };
    io.state.store(IDLE, Ordering::Release);
    T::completed(this, res);
}
