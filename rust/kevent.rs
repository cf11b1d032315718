// SPDX-License-Identifier: GPL-2.0

//! kevent: a unified kernel event queue.
//!
//! One queue, a file descriptor, collects readiness and completion events from sockets, timers,
//! signals, pollable files, user events and asynchronous I/O. The patched kernel provides the
//! system calls and hook sites (`include/linux/kevent.h`); this module implements everything
//! else and registers itself with the hook layer when it loads.
//!
//! Layout: `compat` wraps the C APIs (the only user of `kernel::bindings`); `syscalls` checks
//! arguments and dispatches to `ctl` (registrations) and `harvest` (copy-out and ring);
//! `queue` is the event queue, `registration` one watched `(type, id)`, `ready` the ready list
//! and ring producer, `limits` the per-user registration limit, `nesting` the graph of queues
//! watching queues. Event sources: `file_source` (poll, pipes, sockets), `signal_source`,
//! `posix_timer_source`, with `storage` for what they attach to kernel objects and `sources`
//! dispatching the kernel's hooks to them.

use kernel::prelude::*;

mod compat;
mod ctl;
mod file_source;
mod harvest;
mod limits;
mod nesting;
mod posix_timer_source;
mod queue;
mod ready;
mod registration;
mod signal_source;
mod sources;
mod storage;
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
    /// Taken in `drop` to unregister before the module-wide state goes away.
    hooks: Option<compat::hooks::Registration>,
}

impl kernel::Module for KeventModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let hooks = Self::publish_globals().and_then(|()| compat::hooks::Registration::new());
        let hooks = hooks.inspect_err(|_| Self::clear_globals())?;
        pr_info!("registered\n");
        Ok(Self { hooks: Some(hooks) })
    }
}

impl KeventModule {
    /// Publishes the module-wide state that system calls and hooks use.
    fn publish_globals() -> Result {
        limits::USERS.set(limits::Users::new()?);
        storage::STORAGE.set(storage::StorageLock::new()?);
        nesting::NESTING.set(nesting::Nesting::new()?);
        Ok(())
    }

    /// Withdraws what [`Self::publish_globals`] published, once nothing can reach it.
    fn clear_globals() {
        nesting::NESTING.clear();
        storage::STORAGE.clear();
        limits::USERS.clear();
    }
}

impl Drop for KeventModule {
    fn drop(&mut self) {
        // Unregister first, so that no system call or hook can see the globals go away.
        drop(self.hooks.take());
        Self::clear_globals();
        pr_info!("unregistered\n");
    }
}
