// SPDX-License-Identifier: GPL-2.0

//! Storage slots: the per-object pointers that the hook layer reserves for kevent.
//!
//! C header: [`include/linux/kevent.h`](srctree/include/linux/kevent.h).
//!
//! An inode, a socket, a process (`signal_struct`) and a POSIX timer each carry one pointer that
//! belongs to the module. The hook layer calls the module for an object only while its pointer
//! is set, and atomic hooks read it under RCU, so storage must be freed after a grace period.

use core::{
    ptr::NonNull,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{bindings, sync::Arc};

/// The storage pointer of one kernel object.
///
/// # Invariants
///
/// `ptr` points to the storage pointer of an object that the holder of the `Slot` keeps alive
/// (see the constructors). (Being `NonNull`, an `Option<Slot>` is one pointer wide: it keeps a
/// file registration within 256 bytes, one kmalloc size class lower.)
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    ptr: NonNull<*mut bindings::kevent_storage>,
}

// SAFETY: The slot is only accessed atomically, from any thread.
unsafe impl Send for Slot {}
// SAFETY: As above.
unsafe impl Sync for Slot {}

impl Slot {
    /// Wraps the address of a storage pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must stay valid for as long as the `Slot` (or a copy of it) is used.
    pub(crate) unsafe fn from_raw(ptr: *mut *mut bindings::kevent_storage) -> Self {
        // SAFETY: The caller guarantees that `ptr` is valid, so it is not null.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // INVARIANT: Guaranteed by the caller.
        Self { ptr }
    }

    fn atomic(&self) -> &AtomicPtr<bindings::kevent_storage> {
        // SAFETY: `ptr` is valid (type invariant) and only ever accessed atomically, by the hook
        // layer (`rcu_dereference`, `rcu_access_pointer`) and by this type.
        unsafe { AtomicPtr::from_ptr(self.ptr.as_ptr()) }
    }

    /// Reads the stored pointer.
    pub(crate) fn load<T>(&self) -> *mut T {
        self.atomic().load(Ordering::Acquire).cast()
    }

    /// Publishes `value` (with release semantics, as `rcu_assign_pointer`).
    pub(crate) fn store<T>(&self, value: *mut T) {
        self.atomic().store(value.cast(), Ordering::Release);
    }

    /// Clears the slot and returns what it held.
    pub(crate) fn take<T>(&self) -> *mut T {
        self.atomic()
            .swap(core::ptr::null_mut(), Ordering::AcqRel)
            .cast()
    }

    /// Publishes a reference to `value`, which the slot owns from now on.
    pub(crate) fn store_arc<T>(&self, value: Arc<T>) {
        self.store(Arc::into_raw(value).cast_mut());
    }

    /// Clears the slot and returns the reference it owned.
    ///
    /// # Safety
    ///
    /// The slot must hold null or a reference stored by [`Slot::store_arc`] with this `T`.
    pub(crate) unsafe fn take_arc<T>(&self) -> Option<Arc<T>> {
        let ptr = self.take::<T>();
        // SAFETY: A non-null value came from `Arc::into_raw` and its reference is now ours.
        (!ptr.is_null()).then(|| unsafe { Arc::from_raw(ptr) })
    }
}
