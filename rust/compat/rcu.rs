// SPDX-License-Identifier: GPL-2.0

//! Read-copy update: read-side sections and deferred freeing.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h).

use kernel::{alloc::KBox, bindings, types::Opaque};

/// An RCU read-side critical section; it ends when the guard is dropped.
pub(crate) struct ReadGuard(());

impl ReadGuard {
    /// Enters a read-side critical section.
    pub(crate) fn new() -> Self {
        // SAFETY: `rcu_read_lock` may be called in any context; `Drop` pairs it.
        unsafe { bindings::rcu_read_lock() };
        Self(())
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        // SAFETY: Paired with the `rcu_read_lock` in `new`.
        unsafe { bindings::rcu_read_unlock() };
    }
}

/// Waits until every read-side critical section that started before the call has ended.
pub(crate) fn synchronize() {
    // SAFETY: Called from process context (every caller may sleep).
    unsafe { bindings::synchronize_rcu() };
}

/// The callback head that objects freed after a grace period embed.
pub(crate) struct RcuHead(Opaque<bindings::callback_head>);

impl RcuHead {
    /// An unused head.
    pub(crate) fn new() -> Self {
        Self(Opaque::uninit())
    }
}

// SAFETY: The head is only used by the RCU core, once, when the object is freed.
unsafe impl Send for RcuHead {}
// SAFETY: As above; shared references never touch it.
unsafe impl Sync for RcuHead {}

/// Objects that can be freed after an RCU grace period.
pub(crate) trait HasRcuHead {
    /// The embedded head.
    fn rcu_head(&self) -> &RcuHead;
}

/// Frees `obj` once every current RCU reader is done with it, without running its destructor.
///
/// # Safety
///
/// Dropping `obj` must have no effect beyond freeing its memory (it owns no other resource).
pub(crate) unsafe fn free_after_grace_period<T: HasRcuHead>(obj: KBox<T>) {
    let ptr = KBox::into_raw(obj);
    // SAFETY: `ptr` is a live `kmalloc` allocation owned by us, whose embedded head is unused;
    // `kvfree_call_rcu` frees the allocation starting at `ptr` after a grace period. Skipping the
    // destructor is allowed by the caller.
    unsafe { bindings::kvfree_call_rcu((*ptr).rcu_head().0.get(), ptr.cast()) };
}
