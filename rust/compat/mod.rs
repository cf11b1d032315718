// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the C APIs that the 6.12 `kernel` crate does not wrap.
//!
//! This is the only part of the module that uses `kernel::bindings`. Its types copy the shape of
//! the abstractions of newer kernels (`File`, `PollTable`, `PollCondVar`, ...), so that a move to
//! a newer kernel mostly deletes code here. One module wraps no C API: [`inline_vec`], a container
//! that needs `unsafe` inside, kept here with the other abstractions over `unsafe` code.
//!
//! It imports nothing from the rest of the module: the C tables it builds (queue file operations,
//! the hook ops table, module parameters) are generic over traits that the module implements,
//! and the module instantiates them as statics in its crate root.

pub(crate) mod block;
pub(crate) mod cred;
pub(crate) mod errno;
pub(crate) mod file;
pub(crate) mod file_io;
pub(crate) mod fsnotify;
pub(crate) mod global;
pub(crate) mod hooks;
pub(crate) mod hrtimer;
pub(crate) mod inline_vec;
pub(crate) mod lock;
pub(crate) mod module_ref;
pub(crate) mod param;
pub(crate) mod pinned;
pub(crate) mod poll;
pub(crate) mod posix_timer;
pub(crate) mod rcu;
pub(crate) mod shared_pages;
pub(crate) mod signal;
pub(crate) mod slot;
pub(crate) mod sock;
pub(crate) mod splice;
pub(crate) mod task;
pub(crate) mod uapi;
pub(crate) mod workqueue;
pub(crate) mod zerocopy;

use kernel::alloc::{
    flags::{__GFP_NOWARN, __GFP_RETRY_MAYFAIL, GFP_KERNEL_ACCOUNT},
    Flags,
};

/// Allocation flags for memory that user space makes the kernel allocate: charged to the
/// caller's memory cgroup, and failing with `ENOMEM` at its limit (no OOM kill, no warning).
pub(crate) fn user_gfp() -> Flags {
    GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN
}
