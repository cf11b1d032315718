// SPDX-License-Identifier: GPL-2.0

//! Module-wide state reachable from system calls.
//!
//! The 6.12 kernel crate has no `global_lock!`; this holds an `Arc` published at module load
//! (before the system calls are registered) and withdrawn at unload (after they are gone).

use core::{
    ptr::null_mut,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::sync::{Arc, ArcBorrow};

/// An `Arc<T>` shared by the whole module.
///
/// # Invariants
///
/// `ptr` is null or comes from `Arc::into_raw`, and that reference is owned by this object.
pub(crate) struct ModuleGlobal<T> {
    ptr: AtomicPtr<T>,
}

impl<T: Send + Sync> ModuleGlobal<T> {
    /// An empty global.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(null_mut()),
        }
    }

    /// Publishes `value`, replacing (and dropping) any previous one.
    pub(crate) fn set(&self, value: Arc<T>) {
        let old = self
            .ptr
            .swap(Arc::into_raw(value).cast_mut(), Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: By the type invariant, `old` carries a reference owned by `self`.
            drop(unsafe { Arc::from_raw(old) });
        }
    }

    /// Withdraws and drops the value. No [`ModuleGlobal::get`] may run concurrently: call it
    /// once nothing can reach the module any more.
    pub(crate) fn clear(&self) {
        let old = self.ptr.swap(null_mut(), Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: By the type invariant, `old` carries a reference owned by `self`.
            drop(unsafe { Arc::from_raw(old) });
        }
    }

    /// Returns a new reference to the value, if one is published.
    pub(crate) fn get(&self) -> Option<Arc<T>> {
        let ptr = self.ptr.load(Ordering::Acquire);
        if ptr.is_null() {
            return None;
        }
        // SAFETY: `ptr` came from `Arc::into_raw` and its reference stays owned by `self` until
        // `clear`, which never runs concurrently with `get` (see there).
        Some(unsafe { ArcBorrow::from_raw(ptr) }.into())
    }
}
