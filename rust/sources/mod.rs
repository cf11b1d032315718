// SPDX-License-Identifier: GPL-2.0

//! Event sources: one [`Source`] per file, and the two tables that reach them, [`add`] (by
//! event type) and [`Sources`] (by kernel hook).
//!
//! Adding a source:
//! 1. write `sources/<name>.rs` with the state one registration needs, implementing [`Source`]:
//!    `add` checks the request and calls [`register`](crate::ctl::register) with the state and a function that
//!    starts watching; `disarm` stops watching; `confirm` and `modify` if it needs them;
//! 2. add its type(s) to [`add`] and, if a kernel hook notifies it, the hook to [`Sources`]
//!    (a hook the layer does not have yet means a kernel patch: see `Documentation/hooks.md`).

pub(crate) mod faio;
mod file;
pub(crate) use file::INODE_GROUP;
pub(crate) mod naio;
mod posix_timer;
pub(crate) mod send;
mod signal;
mod socket;
mod timer;
mod user;

use crate::{
    compat::{
        file::File,
        hooks::Hooks,
        posix_timer::PosixTimer,
        signal::Task,
        sock::{Sock, SockLocked},
        uapi::{self, Ukevent},
    },
    ctl::Outcome,
    queue::{Queue, Registrations},
    registration::{Registration, Report, State},
};
use core::any::TypeId;
use kernel::{
    error::code::*,
    list::{List, ListItem},
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// An event source: what one registration of its type(s) keeps, and how it watches.
pub(crate) trait Source: Send + Sync + Sized + 'static {
    /// Whether its events are confirmed at harvest ([`Source::confirm`]) and, when
    /// level-triggered, queued again after delivery to be confirmed by the next harvest.
    const CONFIRMED: bool = false;

    /// Whether its keys hold request ids that the module hands out (the AIO calls, which
    /// `KEVENT_CTL_ADD` cannot create): no registration can have one already, so registering
    /// one does not search the queue's tree for it.
    const REQUEST_KEYS: bool = false;

    /// `KEVENT_CTL_ADD` of one of its types: checks `req` and registers it with
    /// [`register`](crate::ctl::register). Called with the queue's registrations locked.
    fn add(queue: &Arc<Queue>, regs: &mut Registrations, req: &Ukevent) -> Result<Outcome>;

    /// Stops watching; on return no notification runs or will run for `reg`. Idempotent, may
    /// sleep; called without the ready lock.
    fn disarm(reg: &Registration<Self>);

    /// Whether the events of a registration for `req` are confirmed ([`Source::CONFIRMED`],
    /// unless a source has registrations of both kinds). The registration keeps the answer
    /// ([`Registration::confirmed`]): the harvest asks for every event.
    fn confirmed_for(_req: &Ukevent) -> bool {
        Self::CONFIRMED
    }

    /// Whether an event for interest mask `event` is still to be reported, and with what. Only
    /// called when [`Source::CONFIRMED`], with the queue's registrations locked (`regs`). The
    /// registration may have been disarmed after the harvester took it off the ready list and
    /// before it took that lock: then the answer is `None`, and the source is not touched.
    fn confirm(&self, _regs: &Registrations, _event: u32) -> Option<Report> {
        None
    }

    /// `KEVENT_CTL_REMOVE` of a live registration. The default removes it; a source whose
    /// registrations are requests (`KEVENT_NAIO`) completes them instead, so that every request
    /// ends with exactly one event. Called with the queue's registrations locked.
    fn cancel(_reg: &Registration<Self>) -> Cancel {
        Cancel::Remove
    }

    /// Checks a `KEVENT_CTL_MODIFY` of a registration whose state is `st` to `req`. Called with
    /// the ready lock held: must not sleep.
    fn modify(&self, _st: &State, _req: &Ukevent) -> Result {
        Ok(())
    }

    /// A delivered `ONESHOT` registration was taken out of `queue` and disarmed; `reg` may be
    /// its last reference. The default drops it; a source whose registrations are requests may
    /// keep it, to renew it for a later request ([`Registration::renew`]). Called with the
    /// queue's registrations locked.
    fn reaped(_queue: &Queue, reg: Arc<Registration<Self>>) {
        drop(reg);
    }
}

/// What [`Registration::reaped`] calls for a registration whose source is `S`.
fn reaped<S: Source>(queue: &Queue, reg: Arc<Registration>) {
    if let Ok(reg) = Registration::downcast_arc::<S>(reg) {
        S::reaped(queue, reg);
    }
}

/// What `KEVENT_CTL_REMOVE` does to a registration ([`Source::cancel`]).
pub(crate) enum Cancel {
    /// Remove it: no event follows.
    Remove,
    /// Keep it and post this result as its (last) event.
    Complete(Report),
    /// Keep it: its last event is already on its way.
    Keep,
}

/// A [`Source`] seen through a type-erased [`Registration`].
///
/// # Safety
///
/// `source_id` returns `TypeId::of::<Self>()`. Only the blanket implementation below exists.
pub(crate) unsafe trait Watch: Send + Sync {
    /// The type of the source state.
    fn source_id(&self) -> TypeId;
    /// [`Source::disarm`] of `reg`, whose state is `self`.
    fn disarm(&self, reg: &Registration);
    /// [`Source::cancel`] of `reg`, whose state is `self`.
    fn cancel(&self, reg: &Registration) -> Cancel;
    /// [`Source::confirm`].
    fn confirm(&self, regs: &Registrations, event: u32) -> Option<Report>;
    /// [`Source::modify`].
    fn modify(&self, st: &State, req: &Ukevent) -> Result;
    /// [`Source::reaped`], as a function that takes the registration.
    fn reaper(&self) -> fn(&Queue, Arc<Registration>);
}

// SAFETY: `source_id` is `TypeId::of::<S>()`.
unsafe impl<S: Source> Watch for S {
    fn source_id(&self) -> TypeId {
        TypeId::of::<S>()
    }

    fn disarm(&self, reg: &Registration) {
        if let Some(reg) = reg.downcast::<S>() {
            S::disarm(reg);
        }
    }

    fn cancel(&self, reg: &Registration) -> Cancel {
        reg.downcast::<S>().map_or(Cancel::Remove, S::cancel)
    }

    fn confirm(&self, regs: &Registrations, event: u32) -> Option<Report> {
        S::confirm(self, regs, event)
    }

    fn modify(&self, st: &State, req: &Ukevent) -> Result {
        S::modify(self, st, req)
    }

    fn reaper(&self) -> fn(&Queue, Arc<Registration>) {
        reaped::<S>
    }
}

/// Removes registrations taken off a dying object's storage (a file's last reference, a
/// process's exit or exec) from their queues.
fn forget_all<S: Source, const ID: u64>(mut taken: List<Registration<S>, ID>)
where
    Registration<S>: ListItem<ID>,
{
    while let Some(item) = taken.pop_front() {
        let reg = item.into_arc();
        reg.queue.forget(&*reg);
    }
}

/// What ADD does for one event type.
type AddFn = fn(&Arc<Queue>, &mut Registrations, &Ukevent) -> Result<Outcome>;

/// `KEVENT_CTL_ADD`: the source of each event type. The only place that tells types apart.
pub(crate) fn add(queue: &Arc<Queue>, regs: &mut Registrations, req: &Ukevent) -> Result<Outcome> {
    let add: AddFn = match req.type_ {
        uapi::TYPE_SOCKET | uapi::TYPE_POLL | uapi::TYPE_PIPE | uapi::TYPE_INODE => {
            file::FileWatch::add
        }
        uapi::TYPE_TIMER => timer::Timer::add,
        uapi::TYPE_SIGNAL => signal::SignalWatch::add,
        uapi::TYPE_UNOTIFY => user::UserEvent::add,
        uapi::TYPE_POSIX_TIMER => posix_timer::PosixTimerWatch::add,
        uapi::TYPE_NAIO => naio::NaioWatch::add,
        uapi::TYPE_AIO => faio::FileAio::add,
        _ => return Err(EINVAL),
    };
    add(queue, regs, req)
}

/// The kernel's event-source hooks, each passed to the source it concerns.
pub(crate) struct Sources;

// SAFETY: Socket and process slots only hold `Watchers` (see `storage`), freed with
// `rcu::free_after_grace_period`; timer slots only hold references from `Slot::store_arc` to
// registrations, dropped after `rcu::synchronize` (`posix_timer`) or once the timer no longer
// runs (`posix_timer_free`).
unsafe impl Hooks for Sources {
    type SockStorage = socket::SocketStorage;
    type SignalStorage = signal::ProcessWatchers;
    type TimerStorage = posix_timer::PosixTimerReg;

    fn sock_event(sk: &Sock, st: &Self::SockStorage, what: u32) {
        file::sock_event(sk, st, what);
        naio::sock_event(sk, st, what);
        send::sock_event(st, what);
    }

    fn tcp_data_ready(sk: &Sock, locked: &mut SockLocked<'_>, st: &Self::SockStorage) -> bool {
        naio::fill(sk, locked, st)
    }

    fn signal(st: &Self::SignalStorage, sig: u32, sender: i32) -> bool {
        signal::signal(st, sig, sender)
    }

    fn posix_timer_fire(st: ArcBorrow<'_, Self::TimerStorage>) {
        posix_timer::fire(st);
    }

    fn file_release(file: &File) {
        file::file_release(file);
    }

    fn task_exit(task: &Task, group_dead: bool) {
        if group_dead {
            signal::forget_process(task);
        }
    }

    fn task_exec(task: &Task) {
        signal::forget_process(task);
    }

    fn posix_timer_create(timer: &PosixTimer, kfd: i32) -> Result {
        posix_timer::create(timer, kfd)
    }

    fn posix_timer_free(timer: &PosixTimer) {
        posix_timer::free(timer);
    }
}
