// SPDX-License-Identifier: GPL-2.0

//! Inode marks of an fsnotify group owned by the module: file and directory events, as inotify
//! receives them.
//!
//! C header: [`include/linux/fsnotify_backend.h`](srctree/include/linux/fsnotify_backend.h).
//!
//! A [`NotifyGroup`] is one fsnotify group whose events go to owners of type `T`. A
//! [`MarkSlot`] holds at most one mark of an inode in that group; the mark keeps a reference to
//! its owner, given back when fsnotify frees the mark (after an SRCU grace period, once no event
//! callback can still use it). The group is stopped at unload after every mark is freed.

use super::{file::File, uapi, user_gfp};
use core::{
    marker::PhantomData,
    ptr::null_mut,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{
    bindings,
    error::{code::*, from_err_ptr},
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// The owner of marks: told about the events on its marked inode.
pub(crate) trait MarkOwner: Send + Sync + 'static {
    /// Inode events `mask` (`KEVENT_INODE_*`, with `KEVENT_INODE_ISDIR` when they concern a
    /// directory) happened on the marked inode. Process context, inside the file system
    /// operation (possibly with the parent directory's `i_rwsem` held): must not take inode
    /// locks.
    fn inode_event(this: ArcBorrow<'_, Self>, mask: u32);
}

/// The fsnotify event bits, in the order of [`uapi::INODE_EVENTS`].
const FS_EVENTS: [u32; 8] = [
    bindings::FS_CREATE,
    bindings::FS_DELETE,
    bindings::FS_MODIFY,
    bindings::FS_ATTRIB,
    bindings::FS_MOVED_FROM,
    bindings::FS_MOVED_TO,
    bindings::FS_DELETE_SELF,
    bindings::FS_MOVE_SELF,
];

/// The index of `FS_DELETE_SELF` in [`FS_EVENTS`].
const DELETE_SELF: usize = 6;

// The index above names that event.
const _: () = assert!(FS_EVENTS[DELETE_SELF] == bindings::FS_DELETE_SELF);

/// Every fsnotify event a mark asks for.
const FS_ALL: u32 = {
    let mut all = 0;
    let mut i = 0;
    while i < FS_EVENTS.len() {
        all |= FS_EVENTS[i];
        i += 1;
    }
    all
};

/// Translates fsnotify bits into `KEVENT_INODE_*` bits.
fn to_kevent(mask: u32) -> u32 {
    let mut bits = 0;
    for (fs, kevent) in FS_EVENTS.iter().zip(uapi::INODE_EVENTS.iter()) {
        if mask & fs != 0 {
            bits |= kevent;
        }
    }
    if bits != 0 && mask & bindings::FS_ISDIR != 0 {
        bits |= uapi::INODE_ISDIR;
    }
    bits
}

/// A mark: the fsnotify mark, then its owner.
///
/// # Invariants
///
/// `mark` is the first field (`#[repr(C)]`): a mark of a group of owner type `T` is a
/// `Mark<T>`. It is a leaked `KBox`, freed by `free_mark` when fsnotify drops its last
/// reference.
#[repr(C)]
struct Mark<T> {
    mark: bindings::fsnotify_mark,
    owner: Arc<T>,
}

/// The operations of a group of owner type `T`.
struct Ops<T>(PhantomData<T>);

impl<T: MarkOwner> Ops<T> {
    const OPS: bindings::fsnotify_ops = bindings::fsnotify_ops {
        handle_event: None,
        handle_inode_event: Some(handle_inode_event::<T>),
        free_group_priv: None,
        freeing_mark: None,
        free_event: None,
        free_mark: Some(free_mark::<T>),
    };
}

/// `handle_inode_event`: an event on a marked inode.
///
/// # Safety
///
/// `mark` is a live mark of a group of owner type `T` (fsnotify holds it under SRCU).
unsafe extern "C" fn handle_inode_event<T: MarkOwner>(
    mark: *mut bindings::fsnotify_mark,
    mask: u32,
    inode: *mut bindings::inode,
    dir: *mut bindings::inode,
    _name: *const bindings::qstr,
    _cookie: u32,
) -> core::ffi::c_int {
    // SAFETY: A mark of such a group is a `Mark<T>` (type invariant), alive during the call.
    let mark = unsafe { &*mark.cast::<Mark<T>>() };
    let mut bits = to_kevent(mask);
    // An event on the marked inode itself (not on an entry: `dir` is null) that changed its
    // link count to zero is the unlink of its last name: the file is deleted. (fsnotify's own
    // `FS_DELETE_SELF` comes when the last reference goes, after the descriptor that keeps a
    // kevent registration is closed.)
    let unlinked = !inode.is_null() && {
        // SAFETY: A non-null `inode` is valid during the call; the link count is read once,
        // racily, as fsnotify's own callers read it.
        let nlink = unsafe { (*inode).__bindgen_anon_1.i_nlink };
        nlink == 0
    };
    if mask & bindings::FS_ATTRIB != 0 && dir.is_null() && unlinked {
        bits |= uapi::INODE_EVENTS[DELETE_SELF];
    }
    if bits != 0 {
        T::inode_event(mark.owner.as_arc_borrow(), bits);
    }
    0
}

/// `free_mark`: fsnotify dropped the last reference to a mark.
///
/// # Safety
///
/// `mark` is a mark of a group of owner type `T`, no longer used by anyone.
unsafe extern "C" fn free_mark<T: MarkOwner>(mark: *mut bindings::fsnotify_mark) {
    // SAFETY: The mark is a `Mark<T>` made by `KBox::into_raw` (type invariant), unused now.
    drop(unsafe { KBox::from_raw(mark.cast::<Mark<T>>()) });
}

/// An fsnotify group of the module, whose marks have owners of type `T`.
///
/// # Invariants
///
/// `ptr` is null or a group made by `fsnotify_alloc_group` with `Ops::<T>::OPS`, on which this
/// object holds the reference from the allocation.
pub(crate) struct NotifyGroup<T> {
    ptr: AtomicPtr<bindings::fsnotify_group>,
    _owner: PhantomData<T>,
}

// SAFETY: The group pointer is published atomically; fsnotify groups are used from any thread.
unsafe impl<T> Sync for NotifyGroup<T> {}

impl<T: MarkOwner> NotifyGroup<T> {
    /// A stopped group.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(null_mut()),
            _owner: PhantomData,
        }
    }

    /// Allocates the group (at load).
    pub(crate) fn start(&self) -> Result {
        // Several registrations may watch one inode, each with its own mark.
        let flags = bindings::FSNOTIFY_GROUP_DUPS as i32;
        // SAFETY: `OPS` is static.
        let group = from_err_ptr(unsafe { bindings::fsnotify_alloc_group(&Ops::<T>::OPS, flags) })?;
        // INVARIANT: Made by `fsnotify_alloc_group` just above.
        let old = self.ptr.swap(group, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: `old` held the allocation's reference and is no longer reachable.
            unsafe { bindings::fsnotify_put_group(old) };
        }
        Ok(())
    }

    /// Waits until every mark destroyed so far is freed and drops the group (at unload, when
    /// no mark can be added any more and every mark was destroyed).
    pub(crate) fn stop(&self) {
        let group = self.ptr.swap(null_mut(), Ordering::AcqRel);
        if group.is_null() {
            return;
        }
        // SAFETY: Runs the pending frees of destroyed marks (their `free_mark` is this
        // module's code), then gives back the allocation's reference.
        unsafe {
            bindings::fsnotify_wait_marks_destroyed();
            bindings::fsnotify_put_group(group);
        }
    }
}

/// At most one mark of an inode, owned by a `T`.
///
/// # Invariants
///
/// `ptr` is null or a `Mark<T>` attached by [`MarkSlot::attach`], on which the slot holds the
/// reference from `fsnotify_init_mark`.
pub(crate) struct MarkSlot<T> {
    ptr: AtomicPtr<Mark<T>>,
}

impl<T: MarkOwner> MarkSlot<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(null_mut()),
        }
    }

    /// Marks the inode of `file` in `group` for every inode event (and the events of a
    /// directory's entries), reported to `owner`. `EBUSY` if the slot holds a mark, `EINVAL`
    /// if the group is stopped, `ENOMEM`.
    pub(crate) fn attach(&self, group: &NotifyGroup<T>, file: &File, owner: Arc<T>) -> Result {
        if !self.ptr.load(Ordering::Relaxed).is_null() {
            return Err(EBUSY);
        }
        let group = group.ptr.load(Ordering::Acquire);
        if group.is_null() {
            return Err(EINVAL);
        }
        let mark = KBox::new(
            Mark {
                // SAFETY: All-zero is a valid bit pattern for the C struct, which
                // `fsnotify_init_mark` initialises below anyway.
                mark: unsafe { core::mem::zeroed() },
                owner,
            },
            user_gfp(),
        )?;
        let mark = KBox::into_raw(mark);
        // SAFETY: `mark` is a fresh `Mark<T>` (freed by `free_mark` from now on) and `group` a
        // live group of owner type `T` (type invariant of `NotifyGroup`); `fsnotify_init_mark`
        // takes a group reference for the mark.
        let raw = unsafe { core::ptr::addr_of_mut!((*mark).mark) };
        // SAFETY: As above.
        unsafe { bindings::fsnotify_init_mark(raw, group) };
        let mut mask = FS_ALL;
        if file.is_dir() {
            mask |= bindings::FS_EVENT_ON_CHILD;
        }
        // SAFETY: The mark is initialised and not yet shared.
        unsafe { (*raw).mask = mask };
        // SAFETY: The file pins its inode for the duration of the call; the mark is attached
        // to the inode (or not at all, on error).
        let ret = unsafe {
            bindings::fsnotify_add_mark(
                raw,
                bindings::file_inode(file.as_ptr()).cast(),
                bindings::fsnotify_obj_type_FSNOTIFY_OBJ_TYPE_INODE as u32,
                0,
            )
        };
        if ret < 0 {
            // SAFETY: Gives back the reference from `fsnotify_init_mark`; the mark was never
            // attached, so this frees it.
            unsafe { bindings::fsnotify_put_mark(raw) };
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: Attached, with the reference from `fsnotify_init_mark`.
        self.ptr.store(mark, Ordering::Release);
        Ok(())
    }

    /// Detaches the mark, if any: no event reaches its owner afterwards, except from callbacks
    /// already running; fsnotify frees it (and drops its owner reference) once those are done.
    /// May sleep.
    pub(crate) fn detach(&self) {
        let mark = self.ptr.swap(null_mut(), Ordering::AcqRel);
        if mark.is_null() {
            return;
        }
        // SAFETY: The slot held the mark's initial reference (type invariant), given back
        // here after detaching it from its inode and group (idempotent if fsnotify detached it
        // already because the inode went away).
        unsafe {
            let raw = core::ptr::addr_of_mut!((*mark).mark);
            bindings::fsnotify_destroy_mark(raw, (*raw).group);
            bindings::fsnotify_put_mark(raw);
        }
    }
}
