// SPDX-License-Identifier: GPL-2.0

//! kevent: a unified kernel event queue.
//!
//! One queue, a file descriptor, collects readiness and completion events from sockets, timers,
//! signals, pollable files, user events and asynchronous I/O. The patched kernel provides the
//! system calls and hook sites (`include/linux/kevent.h`); this module implements everything
//! else and registers itself with the hook layer when it loads.
//!
//! # Layout
//!
//! Layers depend one way: `compat` wraps the C APIs (the only user of `kernel::bindings`) and
//! imports nothing from the rest; the core (`syscalls`, `ctl`, `harvest`, `queue`, `ready`,
//! `registration`, `storage`, `limits`, `nesting`) uses `compat`; the event sources
//! (`sources/`, one file per source behind the `Source` trait) use both. This file
//! instantiates the C tables that `compat` builds from the module's traits.
//!
//! - `syscalls`: argument checks and dispatch of the system calls.
//! - `ctl`: `kevent_ctl` (ADD, REMOVE, MODIFY, READY) and `register`, which every source's ADD
//!   ends in.
//! - `harvest`: `kevent_get_events` copy-out, `kevent_wait` and `kevent_commit`.
//! - `queue`: the queue behind a kevent descriptor: its registrations, wait queues and file.
//! - `ready`: the ready list and the ring producer.
//! - `registration`: one watched `(type, id)`: the core every source shares.
//! - `storage`: the lists that kernel objects (sockets, processes, inodes) point to.
//! - `limits`: the per-user registration limit; `nesting`: queues watching queues.
//! - `sources`: the `Source` trait, the type and hook dispatch tables, and the sources.
//!
//! # Lock order
//!
//! The one description of the module's locking; `Documentation/semantics.md` repeats it.
//!
//! 1. `Queue::registrations` (mutex; process context only).
//! 2. A send request's `SendWatch::payload` mutex (process context; held while sending), then a
//!    socket's lock (`lock_sock`: network AIO submission and cancellation, and inside
//!    `sock_sendmsg`; the receive path holds it around the `tcp_data_ready` hook).
//! 3. Either `nesting`'s graph mutex (nothing is taken under it) or `storage`'s `StorageLock`
//!    mutex (attaching to and detaching from kernel objects).
//! 4. An inode's `FileWatchers::files` mutex, or a socket's or process's `Watchers::lists`
//!    (irqsave spinlock).
//! 5. `Queue::ready` (irqsave spinlock; any context, hard IRQ included).
//! 6. The lock of a queue's wait queue, inside `wake_up`: `Queue::wait` (harvesters) or
//!    `Queue::poll_wait` (pollers, other lock class).
//!
//! Notifications enter below their source's own lock (a watched file's wait queue lock, a
//! socket hook, a process's siglock under which the signal hook walks `Watchers::lists`, a
//! timer's interrupt context) and take only level 4 and 5 locks, then wake (6). No spinlock is
//! held across `tcp_read_sock` (it may transmit an ACK, which needs interrupts on). Nothing
//! allocates, sleeps or calls a file's `->poll` under a spinlock; `->poll` of watched files runs
//! with `registrations` held, which keeps the files alive (`file_release` takes it too). Timers
//! are cancelled with no lock held, because their callback takes `ready`.
//!
//! File and directory events (`KEVENT_INODE`) enter from fsnotify in process context, inside
//! the file system operation and fsnotify's SRCU read side, and take only `ready` (5).
//! Detaching a registration's fsnotify mark takes fsnotify's group mutex, possibly under
//! `registrations` (1); fsnotify never calls the module with that mutex held. File AIO
//! completions (`ki_complete`, any context) take only `ready` (5), to post their event. A
//! queue's `Plug::held` mutex (file AIO held by `KEVENT_CTL_PLUG`, and finished requests kept
//! for reuse) is a leaf, taken under `registrations` (1) by the reap: the held requests are
//! taken off it before they are started.
//!
//! A mutex is never released under a spinlock: unlocking a contended mutex takes its
//! `wait_lock`, which interrupts may not take, so releasing `registrations` (1) under `ready` (5)
//! would let an interrupt that posts an event spin on `ready` against a CPU spinning on that
//! `wait_lock`. A harvester that re-checked level-triggered ring entries releases
//! `registrations` before it takes `ready` again to publish them. Two flags
//! are read without the lock that orders their writes: `Queue::may_have_pending` (set under
//! `ready` whenever the ready list grows, cleared under it only when the list is empty) lets a
//! harvest that must not wait return without taking `ready`, as `epoll_wait` does; and a file
//! registration's `disarmed` mark is written and read under `registrations`, so a harvester
//! confirming a file event needs no `ready` hold to know that its file is still watched.
//!
//! A queue watching another queue (`KEVENT_POLL`) is woken inside the watched queue's
//! `poll_wait` lock and takes its own wait queue locks in turn, so `poll_wait` locks of one class
//! nest: each queue takes its own at its nesting level (the longest chain of queues below it),
//! a lockdep subclass, and `nesting` keeps chains acyclic and at most `KEVENT_MAX_NESTS` long.

use kernel::prelude::*;

mod compat;
mod ctl;
mod harvest;
mod limits;
mod nesting;
mod queue;
mod ready;
mod registration;
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

/// The file operations of kevent queue files.
static QUEUE_FOPS: compat::file::QueueFops<queue::Queue> =
    compat::file::QueueFops::new(&THIS_MODULE);

/// The system calls and hooks registered with the hook layer.
static HOOK_OPS: compat::hooks::HookOps =
    compat::hooks::HookOps::new::<syscalls::Kevent, sources::Sources>(&THIS_MODULE);

/// The loaded module: owns the registration with the hook layer.
struct KeventModule {
    /// Taken in `drop` to unregister before the module-wide state goes away.
    hooks: Option<compat::hooks::Registration>,
}

impl kernel::Module for KeventModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let hooks =
            Self::publish_globals().and_then(|()| compat::hooks::Registration::new(&HOOK_OPS));
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
        sources::send::WORKERS.start(kernel::c_str!("kevent_send"))?;
        sources::faio::WORKERS.start(kernel::c_str!("kevent_aio"))?;
        sources::INODE_GROUP.start()?;
        Ok(())
    }

    /// Withdraws what [`Self::publish_globals`] published, once nothing can reach it.
    fn clear_globals() {
        // Runs the send work still queued (for requests of queues closed meanwhile) first.
        sources::send::WORKERS.stop();
        sources::faio::WORKERS.stop();
        // After every queue went: their inode marks are destroyed, and freed here.
        sources::INODE_GROUP.stop();
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
