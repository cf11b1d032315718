// SPDX-License-Identifier: GPL-2.0

//! Wait queues that can be polled, and poll tables.
//!
//! C header: [`include/linux/wait.h`](srctree/include/linux/wait.h) and
//! [`include/linux/poll.h`](srctree/include/linux/poll.h).

use super::file::File;

/// Poll mask bits.
pub(crate) const EPOLLIN: u32 = bindings::EPOLLIN;
/// Poll mask bits.
pub(crate) const EPOLLRDNORM: u32 = bindings::EPOLLRDNORM;
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

/// Why [`WaitQueue::wait_until`] returned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitResult {
    /// The condition became true.
    Ready,
    /// The deadline passed.
    TimedOut,
    /// A signal is pending.
    Interrupted,
}

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

    /// Sleeps as an exclusive waiter until `ready()` returns true, the absolute
    /// `CLOCK_MONOTONIC` `deadline` (nanoseconds) passes, or a signal is pending.
    ///
    /// `ready()` is called after the task is queued and marked sleeping, so a wake-up that
    /// follows a state change it checks cannot be lost. It must not sleep.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<i64>,
        mut ready: impl FnMut() -> bool,
    ) -> WaitResult {
        let entry = Opaque::<bindings::wait_queue_entry>::uninit();
        // SAFETY: `entry` lives on this stack frame until `finish_wait` below removes it from the
        // queue, and is not moved in between.
        unsafe { bindings::init_wait_entry(entry.get(), 0) };
        let result = loop {
            // SAFETY: The queue head is initialised (type invariant), the entry is initialised.
            unsafe {
                bindings::prepare_to_wait_exclusive(
                    self.as_ptr(),
                    entry.get(),
                    bindings::TASK_INTERRUPTIBLE as i32,
                )
            };
            if ready() {
                break WaitResult::Ready;
            }
            if super::task::signal_pending() {
                break WaitResult::Interrupted;
            }
            match deadline {
                // SAFETY: The task is marked sleeping and queued; `schedule` may be called.
                None => unsafe { bindings::schedule() },
                Some(mut expires) => {
                    // SAFETY: `expires` is a valid absolute time; the task is queued as above.
                    let ret = unsafe {
                        bindings::schedule_hrtimeout_range(
                            &mut expires,
                            0,
                            bindings::hrtimer_mode_HRTIMER_MODE_ABS,
                        )
                    };
                    if ret == 0 {
                        break if ready() {
                            WaitResult::Ready
                        } else {
                            WaitResult::TimedOut
                        };
                    }
                }
            }
        };
        // SAFETY: The entry was queued on this head by `prepare_to_wait_exclusive`.
        unsafe { bindings::finish_wait(self.as_ptr(), entry.get()) };
        result
    }

    /// Wakes up every poller and `nr_exclusive` sleepers (0: all of them) with poll mask `mask`.
    pub(crate) fn wake_up(&self, nr_exclusive: i32, mask: u32) {
        // SAFETY: The wait queue head is initialised (type invariant). The key is the poll mask
        // encoded as a pointer, as `wake_up_poll()` does.
        unsafe {
            bindings::__wake_up(
                self.as_ptr(),
                bindings::TASK_NORMAL,
                nr_exclusive,
                mask as usize as *mut core::ffi::c_void,
            )
        };
    }

    /// Whether anyone (a sleeper or a poller) waits on the queue.
    pub(crate) fn has_sleepers(&self) -> bool {
        // SAFETY: The wait queue head is initialised (type invariant).
        unsafe { bindings::wq_has_sleeper(self.as_ptr()) }
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
