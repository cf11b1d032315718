// SPDX-License-Identifier: GPL-2.0

//! A registration: one `(type, id)` watched by one queue.

use crate::{
    compat::{
        file::File,
        hrtimer::{impl_has_hr_timer, HrTimer, HrTimerCallback},
        poll::{PollEntries, PollWaiter},
        slot::Slot,
        uapi::Ukevent,
        user_gfp,
    },
    file_source::{self, FileSource, Report},
    queue::Queue,
    ready::Ready,
    storage,
};
use core::sync::atomic::AtomicBool;
use kernel::{
    error::code::*,
    list::{
        impl_has_list_links, impl_list_arc_safe, impl_list_item, AtomicTracker, ListLinks,
        TryNewListArc,
    },
    new_mutex,
    prelude::*,
    sync::{Arc, ArcBorrow, LockedBy, Mutex},
};

/// The lookup key of a registration: its type and id, as in `struct ukevent`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    /// `KEVENT_*` type.
    pub(crate) type_: u32,
    /// `id.raw_u64`.
    pub(crate) id: u64,
}

impl Key {
    /// The key a request names.
    pub(crate) fn of(req: &Ukevent) -> Self {
        Self {
            type_: req.type_,
            id: req.id,
        }
    }
}

/// What a registration watches.
pub(crate) enum Source {
    /// A user event, made ready by `KEVENT_CTL_READY`.
    User,
    /// A timer firing every `interval_ns`, or once (`ONESHOT` at ADD).
    Timer {
        /// The period.
        interval_ns: i64,
        /// Whether it re-arms itself after each expiry.
        periodic: bool,
    },
    /// A file: `KEVENT_POLL`, `KEVENT_PIPE` or `KEVENT_SOCKET`.
    File(FileSource),
    /// A signal sent to the process whose slot this is.
    Signal {
        /// The signal number.
        signo: u32,
        /// Consume the signal (`KEVENT_SIGNAL_NOMASK`).
        nomask: bool,
        /// The registering process's slot, valid while `attached`.
        process: Slot,
    },
    /// A POSIX timer created with `SIGEV_KEVENT`, whose slot holds a reference to the
    /// registration while `attached`.
    PosixTimer {
        /// The timer's slot.
        timer: Slot,
    },
}

/// The mutable state of a registration, protected by its queue's ready lock.
///
/// # Invariants
///
/// - `queued` is true while the registration's `ListArc` is on the ready list or held by a
///   harvester (`in_flight`); it is false for a detached registration.
/// - `in_flight` implies `queued`.
pub(crate) struct State {
    /// The interest mask (`ukevent.event`).
    pub(crate) event: u32,
    /// `KEVENT_REQ_*` flags.
    pub(crate) req_flags: u32,
    /// The user cookie.
    pub(crate) user: u64,
    /// False after a `DISPATCH` delivery, until `MODIFY`.
    pub(crate) enabled: bool,
    /// Removed (or delivered `ONESHOT`): it never becomes ready again.
    pub(crate) detached: bool,
    /// Its ADD succeeded: notifications may queue it. Until then they only update the state and
    /// set `early`, so that no event escapes for an entry that `kevent_ctl` reports as failed or
    /// as done.
    pub(crate) active: bool,
    /// A notification arrived before it was active.
    pub(crate) early: bool,
    /// See the invariants.
    pub(crate) queued: bool,
    /// Being delivered by a harvester that holds its `ListArc`.
    pub(crate) in_flight: bool,
    /// Became ready again while in flight: queue it again after delivery.
    pub(crate) again: bool,
    /// Per-queue sequence number of the moment it became ready.
    pub(crate) seq: u64,
    /// `KEVENT_RET_*` to report.
    pub(crate) ret_flags: u32,
    /// Type-specific result to report (for timers and user events: coalesced count).
    pub(crate) ret_data: [u32; 2],
}

/// A registration.
///
/// # Invariants
///
/// It lives in an `Arc`; its timer is cancelled, its wait queue entries are removed and its
/// storage is detached (`disarm`) before it is dropped, so no notification outlives it.
/// `attached` is true while it is on its object's storage lists (changed under the storage
/// lock).
#[pin_data]
pub(crate) struct Registration {
    /// The lookup key.
    pub(crate) key: Key,
    /// What it watches.
    pub(crate) source: Source,
    /// The queue it belongs to.
    pub(crate) queue: Arc<Queue>,
    /// State shared with event notifications.
    pub(crate) state: LockedBy<State, Ready>,
    #[pin]
    links: ListLinks<0>,
    #[pin]
    tracker: AtomicTracker<0>,
    /// Place on the socket's or process's storage.
    #[pin]
    source_links: ListLinks<{ storage::ON_SOURCE }>,
    #[pin]
    source_tracker: AtomicTracker<{ storage::ON_SOURCE }>,
    /// Place on the file's inode storage.
    #[pin]
    inode_links: ListLinks<{ storage::ON_INODE }>,
    #[pin]
    inode_tracker: AtomicTracker<{ storage::ON_INODE }>,
    /// See the invariants.
    pub(crate) attached: AtomicBool,
    /// The timer of `Source::Timer`.
    #[pin]
    timer: HrTimer,
    /// Wait queue entries of `KEVENT_POLL` and `KEVENT_PIPE` on the file.
    #[pin]
    pub(crate) entries: Mutex<PollEntries<Registration>>,
}

impl_has_list_links! {
    impl HasListLinks<0> for Registration { self.links }
}
impl_list_arc_safe! {
    impl ListArcSafe<0> for Registration { tracked_by tracker: AtomicTracker<0>; }
}
impl_list_item! {
    impl ListItem<0> for Registration { using ListLinks; }
}
impl_has_list_links! {
    impl HasListLinks<1> for Registration { self.source_links }
}
impl_list_arc_safe! {
    impl ListArcSafe<1> for Registration { tracked_by source_tracker: AtomicTracker<1>; }
}
impl_list_item! {
    impl ListItem<1> for Registration { using ListLinks; }
}
impl_has_list_links! {
    impl HasListLinks<2> for Registration { self.inode_links }
}
impl_list_arc_safe! {
    impl ListArcSafe<2> for Registration { tracked_by inode_tracker: AtomicTracker<2>; }
}
impl_list_item! {
    impl ListItem<2> for Registration { using ListLinks; }
}
impl_has_hr_timer!(Registration, timer);

impl Registration {
    /// Creates a registration for `req` on `queue`; `source` was validated by the caller.
    pub(crate) fn new(queue: &Arc<Queue>, req: &Ukevent, source: Source) -> Result<Arc<Self>> {
        let state = State {
            event: req.event,
            req_flags: req.req_flags,
            user: req.user,
            enabled: true,
            detached: false,
            active: false,
            early: false,
            queued: false,
            in_flight: false,
            again: false,
            seq: 0,
            ret_flags: 0,
            ret_data: [0, 0],
        };
        Arc::pin_init(
            pin_init!(Self {
                key: Key::of(req),
                source,
                queue: queue.clone(),
                state: LockedBy::new(&queue.ready, state),
                links <- ListLinks::new(),
                tracker <- AtomicTracker::new(),
                source_links <- ListLinks::new(),
                source_tracker <- AtomicTracker::new(),
                inode_links <- ListLinks::new(),
                inode_tracker <- AtomicTracker::new(),
                attached: AtomicBool::new(false),
                timer <- HrTimer::new::<Registration>(),
                entries <- new_mutex!(PollEntries::new(), "Registration::entries"),
            }),
            user_gfp(),
        )
    }

    /// Starts watching the source: starts the timer, or attaches to the watched object (and
    /// polls `file`, which a file source needs). Returns the readiness of a file that is ready
    /// at once. On error, `disarm` undoes what was done.
    pub(crate) fn arm(this: &Arc<Self>, file: Option<&File>) -> Result<Option<Report>> {
        match &this.source {
            Source::Timer { interval_ns, .. } => {
                this.timer.start(*interval_ns);
                Ok(None)
            }
            Source::File(fs) => file_source::arm(this, fs, file.ok_or(EINVAL)?),
            Source::Signal { .. } | Source::PosixTimer { .. } => {
                storage::attach(this).map(|()| None)
            }
            Source::User => Ok(None),
        }
    }

    /// Stops watching the source; on return no notification is running or will run for it.
    /// Idempotent. Must be called in process context without the queue's ready lock.
    pub(crate) fn disarm(&self) {
        match &self.source {
            Source::Timer { .. } => {
                self.timer.cancel();
            }
            Source::File(fs) => file_source::disarm(self, fs),
            Source::Signal { .. } | Source::PosixTimer { .. } => storage::detach(self),
            Source::User => {}
        }
    }

    /// The interest mask (`ukevent.event`) now.
    pub(crate) fn state_event(&self) -> u32 {
        self.state.access(&self.queue.ready.lock()).event
    }

    /// The file source, if it watches a file.
    pub(crate) fn file_source(&self) -> Option<&FileSource> {
        match &self.source {
            Source::File(f) => Some(f),
            _ => None,
        }
    }

    /// Lets notifications through once the ADD succeeded (see [`State::active`]).
    pub(crate) fn activate(this: ArcBorrow<'_, Self>) {
        let queue = &this.queue;
        let wake = queue.ready.lock().activate(this);
        if let Some(nr_exclusive) = wake {
            queue.wake_waiters(nr_exclusive);
        }
    }

    /// Makes the registration ready, applying `update` to its state first, and wakes waiters.
    /// `update` returns false when the notification turns out not to concern it. Callable
    /// from any context, including hard IRQ.
    pub(crate) fn fire(this: ArcBorrow<'_, Self>, update: impl FnOnce(&mut State) -> bool) {
        let queue = &this.queue;
        let wake = queue.ready.lock().make_ready(this, update);
        if let Some(nr_exclusive) = wake {
            queue.wake_waiters(nr_exclusive);
        }
    }

    /// Builds the event that user space receives, from a state snapshot.
    pub(crate) fn to_ukevent(&self, st: &State) -> Ukevent {
        Ukevent {
            id: self.key.id,
            type_: self.key.type_,
            event: st.event,
            req_flags: st.req_flags,
            ret_flags: st.ret_flags,
            ret_data: st.ret_data,
            user: st.user,
            seq: st.seq,
        }
    }
}

impl HrTimerCallback for Registration {
    fn expired(this: ArcBorrow<'_, Self>, timer: &HrTimer) -> bool {
        let Source::Timer {
            interval_ns,
            periodic,
        } = this.source
        else {
            return false;
        };
        let periods = if periodic {
            timer.forward_now(interval_ns)
        } else {
            1
        };
        let expirations = u32::try_from(periods).unwrap_or(u32::MAX);
        Registration::fire(this, |st| {
            st.ret_data[0] = st.ret_data[0].saturating_add(expirations);
            true
        });
        periodic
    }
}

impl PollWaiter for Registration {
    fn woken(this: ArcBorrow<'_, Self>, key: u32) {
        file_source::woken(this, key);
    }
}
