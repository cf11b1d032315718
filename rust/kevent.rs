// SPDX-License-Identifier: GPL-2.0

//! kevent: a unified kernel event queue.
//!
//! One queue, a file descriptor, collects readiness and completion events from sockets, timers,
//! signals, pollable files, user events and asynchronous I/O. The patched kernel provides the
//! system calls and hook sites (`include/linux/kevent.h`); this module implements everything
//! else and registers itself with the hook layer when it loads.
//!
//! Layout: `compat` wraps the C APIs (the only user of `kernel::bindings`), `syscalls` checks
//! arguments and dispatches, `queue` is the event queue.

use kernel::prelude::*;

mod compat;
mod queue;
mod syscalls;

module! {
    type: KeventModule,
    name: "kevent",
    author: "kevent developers",
    description: "kevent: a unified kernel event queue",
    license: "GPL",
}

/// The loaded module: owns the registration with the hook layer.
struct KeventModule {
    _hooks: compat::hooks::Registration,
}

impl kernel::Module for KeventModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let hooks = compat::hooks::Registration::new()?;
        pr_info!("kevent: registered\n");
        Ok(Self { _hooks: hooks })
    }
}

impl Drop for KeventModule {
    fn drop(&mut self) {
        pr_info!("kevent: unregistering\n");
    }
}
