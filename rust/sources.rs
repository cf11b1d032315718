// SPDX-License-Identifier: GPL-2.0

//! The event-source hooks of the kernel, dispatched to the source modules.

use crate::{
    compat::{file::File, hooks::Hooks, posix_timer::PosixTimer, signal::Task, sock::Sock},
    file_source, posix_timer_source,
    registration::Registration,
    signal_source,
    storage::Watchers,
};
use kernel::{prelude::*, sync::ArcBorrow};

/// Implements [`Hooks`].
pub(crate) struct Sources;

// SAFETY: Socket and process slots only hold `Watchers` (see `storage`), freed with
// `rcu::free_after_grace_period`; timer slots only hold references from `Slot::store_arc` to
// registrations, dropped after `rcu::synchronize` (`storage::detach`) or once the timer no
// longer runs (`posix_timer_source::free`).
unsafe impl Hooks for Sources {
    type SockStorage = Watchers;
    type SignalStorage = Watchers;
    type TimerStorage = Registration;

    fn sock_event(sk: &Sock, st: &Self::SockStorage, what: u32) {
        file_source::sock_event(sk, st, what);
    }

    fn signal(st: &Self::SignalStorage, sig: u32, sender: i32) -> bool {
        signal_source::signal(st, sig, sender)
    }

    fn posix_timer_fire(st: ArcBorrow<'_, Registration>) {
        posix_timer_source::fire(st);
    }

    fn file_release(file: &File) {
        file_source::file_release(file);
    }

    fn task_exit(task: &Task, group_dead: bool) {
        if group_dead {
            signal_source::forget_process(task);
        }
    }

    fn task_exec(task: &Task) {
        signal_source::forget_process(task);
    }

    fn posix_timer_create(timer: &PosixTimer, kfd: i32) -> Result {
        posix_timer_source::create(timer, kfd)
    }

    fn posix_timer_free(timer: &PosixTimer) {
        posix_timer_source::free(timer);
    }
}
