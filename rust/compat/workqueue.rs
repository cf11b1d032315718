// SPDX-License-Identifier: GPL-2.0

//! A workqueue owned by the module.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h).
//!
//! Work queued on the system workqueues may still be pending when the module is unloaded; work
//! queued here cannot be: [`ModuleWorkqueue::stop`] (at unload) destroys the queue, which first
//! runs everything queued on it, including work queued by that work.

use core::{
    ptr::null_mut,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{bindings, error::code::*, prelude::*, workqueue};

/// The module's workqueue, started at load and stopped at unload.
///
/// # Invariants
///
/// `ptr` is null or a workqueue made by `alloc_workqueue`, destroyed only by `stop`.
pub(crate) struct ModuleWorkqueue {
    ptr: AtomicPtr<bindings::workqueue_struct>,
}

impl ModuleWorkqueue {
    /// A stopped workqueue.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(null_mut()),
        }
    }

    /// Allocates the queue: unbound (its work may sleep for a while) and reclaim-safe.
    pub(crate) fn start(&self, name: &'static CStr) -> Result {
        // SAFETY: `"%s"` with one string argument matches the format; `name` is static.
        let wq = unsafe {
            bindings::alloc_workqueue(
                kernel::c_str!("%s").as_char_ptr(),
                bindings::wq_flags_WQ_UNBOUND | bindings::wq_flags_WQ_MEM_RECLAIM,
                0,
                name.as_char_ptr(),
            )
        };
        if wq.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: Made by `alloc_workqueue` just above.
        let old = self.ptr.swap(wq, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: `old` was made by `alloc_workqueue` and is no longer reachable.
            unsafe { bindings::destroy_workqueue(old) };
        }
        Ok(())
    }

    /// Runs everything queued and destroys the queue. Only work running on it may queue more
    /// meanwhile: call it once nothing else can.
    pub(crate) fn stop(&self) {
        let wq = self.ptr.load(Ordering::Acquire);
        if wq.is_null() {
            return;
        }
        // SAFETY: `wq` was made by `alloc_workqueue`; `destroy_workqueue` drains it (work on it
        // may still queue more until it is empty) before freeing it.
        unsafe { bindings::destroy_workqueue(wq) };
        self.ptr.store(null_mut(), Ordering::Release);
    }

    /// Queues `item`; `false` if it was queued already or the queue is stopped (the item is
    /// dropped).
    pub(crate) fn enqueue<W, const ID: u64>(&self, item: W) -> bool
    where
        W: workqueue::RawWorkItem<ID, EnqueueOutput = core::result::Result<(), W>> + Send + 'static,
    {
        let wq = self.ptr.load(Ordering::Acquire);
        if wq.is_null() {
            return false;
        }
        // SAFETY: A non-null `wq` stays valid until `stop`, which runs only when no one but its
        // own work queues items (see there); such work runs before it is freed.
        let queue = unsafe { workqueue::Queue::from_raw(wq) };
        queue.enqueue(item).is_ok()
    }
}
