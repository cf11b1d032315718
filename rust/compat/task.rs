// SPDX-License-Identifier: GPL-2.0

//! The current task: pending signals, user id, time, timer slack.
//!
//! C headers: [`include/linux/sched/signal.h`](srctree/include/linux/sched/signal.h),
//! [`include/linux/sched.h`](srctree/include/linux/sched.h),
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

/// Priorities below this are real-time ones (`MAX_RT_PRIO`).
const MAX_RT_PRIO: i32 = 100;
/// The priority of nice 0 (`DEFAULT_PRIO`).
const DEFAULT_PRIO: i32 = 120;
/// The most slack a sleep gets (`MAX_SLACK` in `fs/select.c`): 100 ms.
const MAX_SLACK_NS: u64 = 100_000_000;

/// How late a sleep of `timeout_ns` may end, as `select_estimate_accuracy` decides it for
/// `poll`, `select` and `epoll_wait`: nothing for a real-time task; otherwise 0.1 % of the
/// timeout (0.2 % for a task with a positive nice value), at most 100 ms, and at least the
/// task's own timer slack (`PR_SET_TIMERSLACK`, 50 µs by default). A sleep with slack can share
/// a timer interrupt with others instead of programming its own.
pub(crate) fn timer_slack(timeout_ns: i64) -> u64 {
    // SAFETY: `get_current` returns the running task, which is valid while it runs; these
    // fields are only changed by the task itself or read racily by design (as
    // `select_estimate_accuracy` does).
    let (prio, static_prio, own) = unsafe {
        let task = bindings::get_current();
        ((*task).prio, (*task).static_prio, (*task).timer_slack_ns)
    };
    if prio < MAX_RT_PRIO {
        return 0;
    }
    let divisor = if static_prio > DEFAULT_PRIO {
        500
    } else {
        1000
    };
    let slack = u64::try_from(timeout_ns).unwrap_or(0) / divisor;
    if slack > MAX_SLACK_NS {
        return MAX_SLACK_NS;
    }
    slack.max(own)
}
