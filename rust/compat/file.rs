// SPDX-License-Identifier: GPL-2.0

//! Files: references by descriptor, and the queue file behind each kevent descriptor.
//!
//! C headers: [`include/linux/file.h`](srctree/include/linux/file.h) and
//! [`include/linux/anon_inodes.h`](srctree/include/linux/anon_inodes.h).

use super::{poll::PollTable, shared_pages::Vma, slot::Slot, uapi};
use core::{
    marker::PhantomData,
    mem::{ManuallyDrop, MaybeUninit},
    ptr::NonNull,
};
use kernel::{
    bindings, c_str,
    error::{code::*, from_err_ptr},
    prelude::*,
    sync::Arc,
    types::{ForeignOwnable, Opaque},
    ThisModule,
};

/// An open file, borrowed.
///
/// # Invariants
///
/// The wrapped `struct file` is alive for as long as the `&File` exists: its reference count is
/// above zero, or `__fput()` has not yet returned from the kevent `file_release` hook (which is
/// how `->poll` stays callable on watched files without a reference, as in epoll).
#[repr(transparent)]
pub(crate) struct File(Opaque<bindings::file>);

impl File {
    /// Borrows a file from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a file that stays valid for the lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::file) -> &'a File {
        // SAFETY: `File` is a transparent wrapper of `struct file`, and the caller guarantees
        // validity for `'a`.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw pointer, for C functions that take a `struct file *`.
    pub(crate) fn as_ptr(&self) -> *mut bindings::file {
        self.0.get()
    }

    /// Whether the file was opened (or set) non-blocking.
    pub(crate) fn is_nonblocking(&self) -> bool {
        // SAFETY: The file is valid (type invariant); `f_flags` may change concurrently through
        // `fcntl`, and a stale value is acceptable.
        let flags = unsafe { core::ptr::read_volatile(&(*self.as_ptr()).f_flags) };
        flags & uapi::O_NONBLOCK != 0
    }

    /// Whether the file implements `->poll`.
    pub(crate) fn can_poll(&self) -> bool {
        // SAFETY: The file is alive (type invariant); `f_op` never changes after opening.
        unsafe { (*(*self.as_ptr()).f_op).poll.is_some() }
    }

    /// The type bits of the file's mode (`S_IFMT`).
    fn file_type(&self) -> u32 {
        const S_IFMT: u32 = 0o170000;
        // SAFETY: The file is alive (type invariant) and pins its inode; the mode's type bits
        // never change.
        let mode = unsafe { (*bindings::file_inode(self.as_ptr())).i_mode };
        u32::from(mode) & S_IFMT
    }

    /// Whether the file is a pipe or FIFO.
    pub(crate) fn is_fifo(&self) -> bool {
        self.file_type() == 0o010000
    }

    /// Whether the file is a regular file.
    pub(crate) fn is_regular(&self) -> bool {
        self.file_type() == 0o100000
    }

    /// Whether the file is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.file_type() == 0o040000
    }

    /// The file's mode bits (`FMODE_*`), fixed once it is open.
    fn mode(&self) -> u32 {
        // SAFETY: The file is alive (type invariant); `f_mode` is not changed after opening
        // except for bits this module does not read.
        unsafe { (*self.as_ptr()).f_mode }
    }

    /// Whether the file was opened for reading (`want_write` false) or writing.
    pub(crate) fn is_open_for(&self, want_write: bool) -> bool {
        let bit = if want_write {
            bindings::FMODE_WRITE
        } else {
            bindings::FMODE_READ
        };
        self.mode() & bit != 0
    }

    /// Whether the file can be read or written at a position (`pread`/`pwrite`): not a pipe,
    /// socket or other stream.
    pub(crate) fn is_positional(&self, write: bool) -> bool {
        let bit = if write {
            bindings::FMODE_PWRITE
        } else {
            bindings::FMODE_PREAD
        };
        self.mode() & bit != 0
    }

    /// Whether the file's I/O honours `IOCB_NOWAIT` (fails with `EAGAIN` rather than block).
    pub(crate) fn supports_nowait(&self) -> bool {
        self.mode() & bindings::FMODE_NOWAIT != 0
    }

    /// The kevent slot of the file's inode, valid while the file is alive.
    pub(crate) fn inode_slot(&self) -> Slot {
        // SAFETY: The file is alive (type invariant) and pins its inode, whose slot lives as
        // long as the inode.
        unsafe {
            Slot::from_raw(bindings::kevent_inode_slot(bindings::file_inode(
                self.as_ptr(),
            )))
        }
    }

    /// Whether this is a queue file of type `T`.
    fn is_queue_file<T: QueueFile>(&self) -> bool {
        // SAFETY: The file is alive (type invariant); `f_op` never changes after opening.
        let f_op = unsafe { (*self.as_ptr()).f_op };
        core::ptr::eq(f_op, &T::fops().ops)
    }

    /// Returns the queue behind this file if it is a queue file of type `T`.
    pub(crate) fn queue<T: QueueFile>(&self) -> Option<Arc<T>> {
        if !self.is_queue_file::<T>() {
            return None;
        }
        // SAFETY: The file is valid (type invariant); `private_data` is set before publication.
        let private = unsafe { (*self.as_ptr()).private_data };
        // SAFETY: Only `install_queue()` creates files with `T::fops()`, storing an `Arc<T>`
        // here; only `queue_release()` takes it back, which cannot run while this file is
        // referenced.
        let queue = unsafe { <Arc<T> as ForeignOwnable>::borrow(private) };
        Some(queue.into())
    }
}

/// An open file taken by descriptor for the duration of a system call (`fdget()`).
///
/// Like `fdget()` itself, it takes no reference when the descriptor table is not shared (the
/// file cannot be closed while the calling thread is in the system call) and one otherwise.
///
/// # Invariants
///
/// `word` is a non-empty `struct fd` returned by `fdget()` on this thread: its file stays alive
/// until `Drop` calls `fdput()`. The type is neither `Send` nor `Sync`, since a borrowed
/// descriptor is only safe on the thread that took it.
pub(crate) struct FileRef {
    word: usize,
    _not_send: PhantomData<*mut ()>,
}

/// `FDPUT_FPUT`: the `struct fd` holds a reference.
const FDPUT_FPUT: usize = 1;
/// The flag bits of a `struct fd`.
const FDPUT_FLAGS: usize = 3;

impl FileRef {
    /// Takes the file open as `fd` in the current process.
    pub(crate) fn fget(fd: i32) -> Result<Self> {
        let fd = u32::try_from(fd).map_err(|_| EBADF)?;
        // SAFETY: `fdget` may be called with any descriptor number.
        let f = unsafe { bindings::fdget(fd) };
        if f.word == 0 {
            return Err(EBADF);
        }
        // INVARIANT: A non-empty result from `fdget`, on this thread.
        Ok(Self {
            word: f.word,
            _not_send: PhantomData,
        })
    }
}

impl core::ops::Deref for FileRef {
    type Target = File;

    fn deref(&self) -> &File {
        // SAFETY: The file stays alive while `self` lives (type invariant).
        unsafe { File::from_raw((self.word & !FDPUT_FLAGS) as *const bindings::file) }
    }
}

impl Drop for FileRef {
    fn drop(&mut self) {
        if self.word & FDPUT_FPUT != 0 {
            // SAFETY: `fdget` took a reference (type invariant), given back here (`fdput`).
            unsafe { bindings::fput((self.word & !FDPUT_FLAGS) as *mut bindings::file) };
        }
    }
}

/// A counted reference to an open file (`get_file()` ... `fput()`), which keeps it open.
///
/// # Invariants
///
/// `ptr` points to a file on which this object holds one reference.
pub(crate) struct OwnedFile {
    ptr: NonNull<bindings::file>,
}

// SAFETY: A file reference may be used and dropped from any thread (`fput` defers the release
// to process context).
unsafe impl Send for OwnedFile {}
// SAFETY: Shared access only reads the file through `&File`.
unsafe impl Sync for OwnedFile {}

impl OwnedFile {
    /// Takes a reference to `file`.
    pub(crate) fn new(file: &File) -> Self {
        // SAFETY: `file` is alive (type invariant of `File`), so its count is above zero.
        unsafe { bindings::get_file(file.as_ptr()) };
        // INVARIANT: The reference was taken just above.
        Self {
            // SAFETY: A reference is never null.
            ptr: unsafe { NonNull::new_unchecked(file.as_ptr()) },
        }
    }
}

impl core::ops::Deref for OwnedFile {
    type Target = File;

    fn deref(&self) -> &File {
        // SAFETY: The reference keeps the file alive (type invariant).
        unsafe { File::from_raw(self.ptr.as_ptr()) }
    }
}

impl Drop for OwnedFile {
    fn drop(&mut self) {
        // SAFETY: Gives back the reference this object holds (type invariant).
        unsafe { bindings::fput(self.ptr.as_ptr()) };
    }
}

/// A file watched by a registration, without a reference (like an epoll item's).
///
/// # Invariants
///
/// `ptr` pointed to a live file when the `WatchedFile` was made; it is only dereferenced by
/// [`WatchedFile::get`], whose caller guarantees that the file is still alive.
pub(crate) struct WatchedFile {
    ptr: NonNull<bindings::file>,
}

// SAFETY: The pointer is only dereferenced under the conditions of `get`, from any thread.
unsafe impl Send for WatchedFile {}
// SAFETY: As above.
unsafe impl Sync for WatchedFile {}

impl WatchedFile {
    /// Remembers `file`.
    pub(crate) fn new(file: &File) -> Self {
        // INVARIANT: `file` is alive now.
        Self {
            // SAFETY: A reference is never null.
            ptr: unsafe { NonNull::new_unchecked(file.as_ptr()) },
        }
    }

    /// Borrows the file.
    ///
    /// # Safety
    ///
    /// The file must still be alive: the `file_release` hook has not yet finished for it, and
    /// cannot finish while the returned reference is used.
    pub(crate) unsafe fn get(&self) -> &File {
        // SAFETY: Guaranteed by the caller.
        unsafe { File::from_raw(self.ptr.as_ptr()) }
    }

    /// The file's address: an identity, never dereferenced.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

/// A queue used by a system call, taken with its file so that the queue cannot be released
/// during the call.
///
/// # Invariants
///
/// `queue` is the file's own reference (`private_data`), borrowed without a count: it is never
/// dropped, and stays valid because `file` keeps the file open.
pub(crate) struct QueueRef<T: QueueFile> {
    file: FileRef,
    queue: ManuallyDrop<Arc<T>>,
}

impl<T: QueueFile> QueueRef<T> {
    /// Whether the descriptor is non-blocking.
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.file.is_nonblocking()
    }
}

impl<T: QueueFile> core::ops::Deref for QueueRef<T> {
    type Target = Arc<T>;

    fn deref(&self) -> &Arc<T> {
        &self.queue
    }
}

/// Returns the queue of type `T` open as `fd`: `EBADF` if `fd` is not open, `EINVAL` if it is
/// not such a queue.
pub(crate) fn queue_from_fd<T: QueueFile>(fd: i32) -> Result<QueueRef<T>> {
    let file = FileRef::fget(fd)?;
    if !file.is_queue_file::<T>() {
        return Err(EINVAL);
    }
    // `ManuallyDrop` makes the rebuilt `Arc` a borrow of the file's own reference: it is never
    // dropped here, and the file, held by `file`, keeps it alive until `queue_release()` takes
    // it back.
    // SAFETY: A queue file's `private_data` holds an `Arc<T>` from `into_foreign`
    // (`install_queue()`), set before the file was published.
    let queue = unsafe { <Arc<T> as ForeignOwnable>::from_foreign((*file.as_ptr()).private_data) };
    // INVARIANT: See above.
    Ok(QueueRef {
        file,
        queue: ManuallyDrop::new(queue),
    })
}

/// What a queue file does for its file operations. The module's queue type implements it.
pub(crate) trait QueueFile: Send + Sync + Sized + 'static {
    /// The file operations of files of this queue type: one static [`QueueFops`], which is how
    /// a file is recognised as such a queue.
    fn fops() -> &'static QueueFops<Self>;

    /// Registers the poller on the queue's wait queue and returns the current poll mask.
    fn poll(&self, file: &File, table: &PollTable) -> u32;

    /// Maps the queue's ring into a new memory area.
    fn mmap(&self, vma: &Vma) -> Result;

    /// The last reference to the queue file is gone: tear the queue down.
    fn release(&self);
}

/// The file operations of queue files of type `T`; one static instance per type.
///
/// # Invariants
///
/// `ops` calls the trampolines of `T` and never changes (so sharing it is sound).
pub(crate) struct QueueFops<T: QueueFile> {
    ops: bindings::file_operations,
    _queue: PhantomData<T>,
}

// SAFETY: The table is never mutated (type invariant); C only reads it.
unsafe impl<T: QueueFile> Sync for QueueFops<T> {}

impl<T: QueueFile> QueueFops<T> {
    /// The operations table, owned by `module`.
    pub(crate) const fn new(module: &'static ThisModule) -> Self {
        Self {
            ops: bindings::file_operations {
                owner: module.as_ptr(),
                poll: Some(queue_poll::<T>),
                mmap: Some(queue_mmap::<T>),
                release: Some(queue_release::<T>),
                // SAFETY: All-zero is a valid `file_operations`: every other operation is absent.
                ..unsafe { MaybeUninit::zeroed().assume_init() }
            },
            _queue: PhantomData,
        }
    }
}

/// Creates a file for `queue` and installs it as a new descriptor of the current process.
///
/// `flags` may hold `O_CLOEXEC` and `O_NONBLOCK`. Returns the descriptor.
pub(crate) fn install_queue<T: QueueFile>(queue: Arc<T>, flags: u32) -> Result<i32> {
    // SAFETY: Any flags are accepted; the result is a descriptor or an error.
    let fd = unsafe { bindings::get_unused_fd_flags(flags & uapi::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::from_errno(fd));
    }
    let private = queue.into_foreign();
    let file_flags = bindings::O_RDWR | (flags & uapi::O_NONBLOCK);
    // SAFETY: The name is a static C string, the operations are static, and `private` is owned
    // by the file from now on (released in `queue_release()`).
    let file = unsafe {
        bindings::anon_inode_getfile(
            c_str!("[kevent]").as_char_ptr(),
            &T::fops().ops,
            private as *mut core::ffi::c_void,
            file_flags as i32,
        )
    };
    match from_err_ptr(file) {
        Ok(file) => {
            // SAFETY: `fd` is reserved and unused, and `file` carries a reference that the
            // descriptor table takes over.
            unsafe { bindings::fd_install(fd as u32, file) };
            Ok(fd)
        }
        Err(e) => {
            // SAFETY: The file was not created, so `private` is still ours to free.
            drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(private) });
            // SAFETY: `fd` was reserved above and never installed.
            unsafe { bindings::put_unused_fd(fd as u32) };
            Err(e)
        }
    }
}

/// `poll` of a queue file.
///
/// # Safety
///
/// Called by the VFS with a valid queue file and a null or valid poll table.
unsafe extern "C" fn queue_poll<T: QueueFile>(
    file: *mut bindings::file,
    wait: *mut bindings::poll_table_struct,
) -> bindings::__poll_t {
    // SAFETY: The VFS holds a reference to `file` during the call.
    let file = unsafe { File::from_raw(file) };
    // SAFETY: `wait` is null or valid for the duration of the call.
    let table = unsafe { PollTable::from_raw(wait) };
    match file.queue::<T>() {
        Some(queue) => queue.poll(file, &table),
        None => 0,
    }
}

/// `mmap` of a queue file: maps the ring.
///
/// # Safety
///
/// Called by the VFS with a valid queue file and the area being set up, mmap lock held.
unsafe extern "C" fn queue_mmap<T: QueueFile>(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> core::ffi::c_int {
    // SAFETY: The VFS holds a reference to `file` during the call.
    let file = unsafe { File::from_raw(file) };
    // SAFETY: `vma` is the area of this ongoing `mmap` call.
    let vma = unsafe { Vma::from_raw(vma) };
    match file.queue::<T>() {
        Some(queue) => match queue.mmap(&vma) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        },
        None => ENODEV.to_errno(),
    }
}

/// `release` of a queue file: tears the queue down and drops the file's reference to it.
///
/// # Safety
///
/// Called by the VFS once, when the last reference to the queue file is gone.
unsafe extern "C" fn queue_release<T: QueueFile>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> core::ffi::c_int {
    // SAFETY: `private_data` holds the `Arc<T>` stored by `install_queue()`; this is the only
    // place that takes it back, and no borrower remains since the file is going away.
    let queue = unsafe { <Arc<T> as ForeignOwnable>::from_foreign((*file).private_data) };
    queue.release();
    0
}
