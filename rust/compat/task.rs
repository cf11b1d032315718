// SPDX-License-Identifier: GPL-2.0

//! The current task: pending signals, user id, time.
//!
//! C headers: [`include/linux/sched/signal.h`](srctree/include/linux/sched/signal.h),
//! [`include/linux/cred.h`](srctree/include/linux/cred.h),
//! [`include/linux/timekeeping.h`](srctree/include/linux/timekeeping.h).

use kernel::bindings;

/// Whether a signal is pending for the current task.
pub(crate) fn signal_pending() -> bool {
    // SAFETY: `get_current` returns the running task, which is valid while it runs.
    unsafe { bindings::signal_pending(bindings::get_current()) != 0 }
}

/// The real user id of the current task, in the initial user namespace.
pub(crate) fn current_uid() -> u32 {
    // SAFETY: Reading the current task's credentials is always allowed.
    unsafe { bindings::current_uid() }.val
}

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub(crate) fn ktime_get() -> i64 {
    // SAFETY: `ktime_get` may be called from any context once timekeeping is up.
    unsafe { bindings::ktime_get() }
}

/// Lets the scheduler run another task if this one has used its time: a rescheduling point for
/// long loops in process context. Must not be called in atomic context.
pub(crate) fn cond_resched() {
    // SAFETY: Called from process context without spinlocks held (caller's contract); it may
    // sleep.
    unsafe { bindings::cond_resched() };
}
