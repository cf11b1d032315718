// SPDX-License-Identifier: GPL-2.0

//! Credentials: a counted reference to a task's subjective credentials, and running work
//! with them.
//!
//! C header: [`include/linux/cred.h`](srctree/include/linux/cred.h).

use core::ptr::NonNull;
use kernel::bindings;

/// A counted reference to a set of credentials.
///
/// # Invariants
///
/// `ptr` points to credentials on which this object holds one reference.
pub(crate) struct Credentials {
    ptr: NonNull<bindings::cred>,
}

// SAFETY: Credentials are immutable once published and reference-counted atomically; the
// reference may be used and dropped from any thread.
unsafe impl Send for Credentials {}
// SAFETY: Shared references only read the pointer.
unsafe impl Sync for Credentials {}

impl Credentials {
    /// The current task's subjective credentials.
    pub(crate) fn current() -> Self {
        // SAFETY: `get_current_cred` takes a reference to the running task's credentials, which
        // are never null.
        let ptr = unsafe { bindings::get_current_cred() }.cast_mut();
        // INVARIANT: The reference was taken just above.
        Self {
            // SAFETY: A task always has credentials.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
        }
    }

    /// Runs `f` with these credentials as the current task's subjective credentials (as
    /// io_uring's workers run requests with their submitter's), and restores the task's own
    /// afterwards. Process context.
    pub(crate) fn run_as<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: The credentials are alive (type invariant); `override_creds` takes its own
        // reference, which `revert_creds` below gives back with the old set restored.
        let old = unsafe { bindings::override_creds(self.ptr.as_ptr()) };
        let result = f();
        // SAFETY: `old` is what `override_creds` returned on this task just above.
        unsafe { bindings::revert_creds(old) };
        result
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        // SAFETY: Gives back the reference this object holds (type invariant); `put_cred` may
        // be called in any context (the last reference frees the set after an RCU grace
        // period).
        unsafe { bindings::put_cred(self.ptr.as_ptr()) };
    }
}
