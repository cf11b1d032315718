// SPDX-License-Identifier: GPL-2.0

//! Processes as signal targets.
//!
//! C header: [`include/linux/sched/signal.h`](srctree/include/linux/sched/signal.h).

use super::slot::Slot;
use kernel::bindings;

/// Highest signal number.
pub(crate) const NSIG: u32 = 64;
/// Signals that can be neither caught nor consumed.
const SIGKILL: u32 = 9;
const SIGSTOP: u32 = 19;

/// Whether `sig` may be watched at all.
pub(crate) fn watchable(sig: u32) -> bool {
    (1..=NSIG).contains(&sig) && sig != SIGKILL && sig != SIGSTOP
}

/// A task, borrowed from a hook.
///
/// # Invariants
///
/// The task is valid for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct Task(kernel::types::Opaque<bindings::task_struct>);

impl Task {
    /// Borrows a task.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a task that stays valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::task_struct) -> &'a Task {
        // SAFETY: Transparent wrapper; validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// The kevent slot of the task's process (`signal_struct`), valid while the process lives.
    pub(crate) fn signal_slot(&self) -> Slot {
        // SAFETY: The task is valid (type invariant) and so is its `signal_struct`, which lives
        // until the last thread of the process is reaped.
        unsafe { Slot::from_raw(bindings::kevent_signal_slot(self.0.get())) }
    }
}

/// The kevent slot of the current process.
pub(crate) fn current_signal_slot() -> Slot {
    // SAFETY: The current task is valid while it runs.
    unsafe { Task::from_raw(bindings::get_current()) }.signal_slot()
}
