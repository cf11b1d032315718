// SPDX-License-Identifier: GPL-2.0

//! Block-layer plugging: block requests issued together reach the device driver as one batch.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

use core::mem::MaybeUninit;
use kernel::bindings;

/// Runs `f` with the current task's block requests plugged (`blk_start_plug`): the requests
/// that `f` issues are held in the plug and handed to their drivers together when `f` returns
/// (`blk_finish_plug`), so a virtio disk, for one, is notified once instead of once per request.
/// If `f` sleeps, the scheduler flushes the plug first, as for any plugged task.
///
/// Process context. A plug already active on the task (an outer caller's) stays in charge: the
/// requests are then issued when that one finishes.
pub(crate) fn plugged<R>(f: impl FnOnce() -> R) -> R {
    let mut plug = MaybeUninit::<bindings::blk_plug>::uninit();
    // The plug stays at this address, unmoved, until `blk_finish_plug` below unlinks it: `f`
    // cannot unwind past this frame (the kernel is built with `panic=abort`).
    // SAFETY: `blk_start_plug` initialises the plug and links it to the current task unless the
    // task has one already; it is unlinked below before this frame ends, on every path.
    unsafe { bindings::blk_start_plug(plug.as_mut_ptr()) };
    let result = f();
    // SAFETY: The plug was initialised by `blk_start_plug` above on this task, and has not
    // moved; `blk_finish_plug` flushes and unlinks it only if it is the task's active plug.
    unsafe { bindings::blk_finish_plug(plug.as_mut_ptr()) };
    result
}
