// SPDX-License-Identifier: GPL-2.0

//! Wait queues that can be polled, and poll tables.
//!
//! C header: [`include/linux/wait.h`](srctree/include/linux/wait.h) and
//! [`include/linux/poll.h`](srctree/include/linux/poll.h).

use super::file::File;
use core::marker::PhantomPinned;
use kernel::{bindings, init::PinInit, prelude::*, sync::LockClassKey, types::Opaque};

/// A wait queue head that sleepers and pollers (`poll`, `select`, `epoll`) can wait on.
///
/// Unlike the 6.12 `CondVar`, it exposes itself to poll tables, like `PollCondVar` of newer
/// kernels.
///
/// # Invariants
///
/// `inner` is an initialised `struct wait_queue_head` that is never moved.
#[pin_data]
pub(crate) struct WaitQueue {
    #[pin]
    inner: Opaque<bindings::wait_queue_head>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: A `struct wait_queue_head` is protected by its own spinlock and may be used from any
// thread.
unsafe impl Send for WaitQueue {}
// SAFETY: As above, all operations on it are thread safe.
unsafe impl Sync for WaitQueue {}

impl WaitQueue {
    /// Creates an initialiser for a wait queue with the given lockdep name and class.
    pub(crate) fn new(name: &'static CStr, key: &'static LockClassKey) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes; `name` and `key` live forever, and
            // `LockClassKey` is a transparent wrapper of `struct lock_class_key`.
            inner <- Opaque::ffi_init(|slot| unsafe {
                bindings::__init_waitqueue_head(
                    slot,
                    name.as_char_ptr(),
                    key as *const LockClassKey as *mut bindings::lock_class_key,
                )
            }),
            _pin: PhantomPinned,
        })
    }

    fn as_ptr(&self) -> *mut bindings::wait_queue_head {
        self.inner.get()
    }
}

/// A poll table passed to a file's `poll` operation.
///
/// # Invariants
///
/// `ptr` is null or a valid `poll_table` for the duration of the `poll` call.
pub(crate) struct PollTable {
    ptr: *mut bindings::poll_table,
}

impl PollTable {
    /// Wraps the poll table of a `poll` callback.
    ///
    /// # Safety
    ///
    /// `ptr` must be null or valid until the `poll` callback returns.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::poll_table) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self { ptr }
    }

    /// Registers the poller of `file` on `wq`, so that a wake-up on `wq` reaches it.
    pub(crate) fn register_wait(&self, file: &File, wq: &WaitQueue) {
        // SAFETY: `file` is valid, `self.ptr` is null or valid (type invariant) and `wq` is an
        // initialised wait queue that outlives the poller: pollers drop their entries before the
        // file, which owns the queue, is released.
        unsafe { bindings::poll_wait(file.as_ptr(), wq.as_ptr(), self.ptr) };
    }
}
