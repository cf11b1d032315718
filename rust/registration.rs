// SPDX-License-Identifier: GPL-2.0

//! A registration: one `(type, id)` watched by one queue.
//!
//! The core is the same for every event type: the key, the queue, the state shared with
//! notifications and the place on the ready list. What a type needs besides (a timer, wait
//! queue entries, places on a socket's or process's list) is its source's state `W`, the last
//! field. A source creates a `Registration<W>` with its own type and hands it to the queue as a
//! [`Registration`] (`W` = `dyn Watch`), through which the queue reaches the source again.

use crate::{
    compat::{uapi::Ukevent, user_gfp},
    queue::Queue,
    ready::Ready,
    sources::{Source, Watch},
};
use core::any::TypeId;
use kernel::{
    init::PinInit,
    list::{
        impl_has_list_links_self_ptr, impl_list_arc_safe, impl_list_item, AtomicTracker,
        HasListLinks, ListLinksSelfPtr, TryNewListArc,
    },
    prelude::*,
    sync::{Arc, ArcBorrow, LockedBy},
};

/// What a ready event reports besides its key and cookie: `(ret_flags, ret_data)`.
pub(crate) type Report = (u32, [u32; 2]);

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

/// The mutable state of a registration, protected by its queue's ready lock.
///
/// # Invariants
///
/// - `queued` is true while the registration's `ListArc` is on the ready list or held by a
///   harvester (`in_flight`); it is false for a detached registration.
/// - `in_flight` implies `queued`.
/// - `parked` implies `in_flight`; a parked registration's `ListArc` is on its queue's list of
///   level-triggered events in the ring (`Ready::level`) and on no other list.
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
    /// A level-triggered file event of it is in the ring: `kevent_wait` re-checks the file once
    /// the consumer has caught up (see `ready.rs`).
    pub(crate) parked: bool,
    /// The ring index of its last entry, while `parked`.
    pub(crate) ring_pos: u32,
    /// Per-queue sequence number of the moment it became ready.
    pub(crate) seq: u64,
    /// `KEVENT_RET_*` to report.
    pub(crate) ret_flags: u32,
    /// Type-specific result to report (for timers and user events: coalesced count).
    pub(crate) ret_data: [u32; 2],
}

impl State {
    /// The state of a new registration for `req`: enabled, not yet active.
    fn new(req: &Ukevent) -> Self {
        Self {
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
            parked: false,
            ring_pos: 0,
            seq: 0,
            ret_flags: 0,
            ret_data: [0, 0],
        }
    }

    /// Counts one more occurrence into `ret_data[0]` (timers, user events, signals).
    pub(crate) fn count(&mut self, n: u32) {
        self.ret_data[0] = self.ret_data[0].saturating_add(n);
    }

    /// Replaces the result with `report` (file events report the latest state).
    pub(crate) fn report(&mut self, (flags, data): Report) {
        self.ret_flags = flags;
        self.ret_data = data;
    }

    /// Like [`State::report`] for a result whose `ret_data[0]` is a poll mask, except while the
    /// registration waits on the ready list to be delivered: then the masks (and flags) of the
    /// notifications accumulate, because one pending delivery stands for all of them. Otherwise
    /// a read wake-up arriving while a write wake-up waits for room in the ring would hide the
    /// write readiness from an edge-triggered consumer for good.
    pub(crate) fn report_mask(&mut self, (flags, data): Report) {
        if self.queued {
            self.ret_flags |= flags;
            self.ret_data[0] |= data[0];
            self.ret_data[1] = data[1];
        } else {
            self.report((flags, data));
        }
    }
}

/// A registration whose source state is `W`; plain `Registration` is the type-erased one that
/// queues hold.
///
/// # Invariants
///
/// It lives in an `Arc`. Its source is disarmed ([`Watch::disarm`]) before it is dropped, so no
/// notification outlives it.
#[pin_data]
pub(crate) struct Registration<W: ?Sized = dyn Watch> {
    /// The lookup key.
    pub(crate) key: Key,
    /// The queue it belongs to.
    pub(crate) queue: Arc<Queue>,
    /// State shared with event notifications.
    pub(crate) state: LockedBy<State, Ready>,
    /// Whether its events are confirmed at harvest ([`Source::confirmed_for`]).
    pub(crate) confirmed: bool,
    /// Place on the ready list.
    #[pin]
    links: ListLinksSelfPtr<Registration, 0>,
    #[pin]
    tracker: AtomicTracker<0>,
    /// What its source keeps.
    #[pin]
    pub(crate) watch: W,
}

impl_has_list_links_self_ptr! {
    impl{W: ?Sized} HasSelfPtr<Registration> for Registration<W> { self.links }
}
impl_list_arc_safe! {
    impl{W: ?Sized} ListArcSafe<0> for Registration<W> { tracked_by tracker: AtomicTracker<0>; }
}
impl_list_item! {
    impl ListItem<0> for Registration { using ListLinksSelfPtr; }
}

impl<S: Source> Registration<S> {
    /// Creates a registration for `req` on `queue`, with its source's state from `watch`.
    pub(crate) fn new(
        queue: &Arc<Queue>,
        req: &Ukevent,
        watch: impl PinInit<S, Error>,
    ) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                key: Key::of(req),
                queue: queue.clone(),
                state: LockedBy::new(&queue.ready, State::new(req)),
                confirmed: S::confirmed_for(req),
                links <- ListLinksSelfPtr::new(),
                tracker <- AtomicTracker::new(),
                watch <- watch,
            }? Error),
            user_gfp(),
        )
    }

    /// Makes `this`, a registration of its queue that was delivered, reaped and disarmed and of
    /// which the caller holds the only reference, a new registration for `req`: its key and
    /// state are those of `req`, as from [`Registration::new`]. Returns its source state, for
    /// the source to renew in turn. The queue stays the same.
    ///
    /// Being the only reference, `this` is on no list (a list holds a `ListArc`, which is a
    /// reference): its links are unlinked and its tracker is clear, as in a new registration.
    pub(crate) fn renew<'a>(this: Pin<&'a mut Self>, req: &Ukevent) -> Pin<&'a mut S> {
        // SAFETY: Only `key`, `state` and `confirmed`, which are not structurally pinned, are
        // assigned; the pinned fields stay in place.
        let this = unsafe { this.get_unchecked_mut() };
        this.key = Key::of(req);
        this.confirmed = S::confirmed_for(req);
        this.state = LockedBy::new(&this.queue.ready, State::new(req));
        // SAFETY: `watch` is a structurally pinned field of a pinned value, pinned again.
        unsafe { Pin::new_unchecked(&mut this.watch) }
    }

    /// The source state of a registration of which the caller holds the only reference.
    pub(crate) fn source_mut(this: Pin<&mut Self>) -> Pin<&mut S> {
        // SAFETY: `watch` is a structurally pinned field of a pinned value, pinned again;
        // nothing is moved.
        unsafe { this.map_unchecked_mut(|reg| &mut reg.watch) }
    }

    /// The same registration, type-erased, as the queue sees it.
    pub(crate) fn erase(this: ArcBorrow<'_, Self>) -> ArcBorrow<'_, Registration> {
        let ptr: *const Self = &*this;
        let ptr: *const Registration = ptr;
        // SAFETY: `ptr` points to the value of the `Arc` that `this` borrows (unsizing changes
        // neither the address nor the allocation), and that `Arc` stays alive for the lifetime
        // of `this`, which the result keeps.
        unsafe { ArcBorrow::from_raw(ptr) }
    }

    /// A notification from the source: [`Registration::fire`].
    pub(crate) fn notify(this: ArcBorrow<'_, Self>, update: impl FnOnce(&mut State) -> bool) {
        Registration::fire(Self::erase(this), update);
    }
}

impl Registration {
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

    /// Lets notifications through once the ADD succeeded (see [`State::active`]).
    pub(crate) fn activate(this: ArcBorrow<'_, Self>) {
        let queue = &this.queue;
        let wake = queue.ready.lock().activate(this);
        if let Some(nr_exclusive) = wake {
            queue.wake_waiters(nr_exclusive);
        }
    }

    /// The registration with its source's own type, if that is `S`.
    pub(crate) fn downcast<S: Source>(&self) -> Option<&Registration<S>> {
        if self.watch.source_id() != TypeId::of::<S>() {
            return None;
        }
        let ptr: *const Registration = self;
        // SAFETY: The source state's type is `S` (`Watch::source_id` is truthful, a safety
        // requirement of `Watch`), so this value was created as a `Registration<S>` and unsized;
        // casting the pointer back restores its type without changing the address.
        Some(unsafe { &*ptr.cast::<Registration<S>>() })
    }

    /// `this` with its source's own type, if that is `S`; otherwise `this` back.
    pub(crate) fn downcast_arc<S: Source>(
        this: Arc<Self>,
    ) -> core::result::Result<Arc<Registration<S>>, Arc<Self>> {
        if this.watch.source_id() != TypeId::of::<S>() {
            return Err(this);
        }
        // The value was created as a `Registration<S>` and unsized (`Watch::source_id` is
        // truthful, a safety requirement of `Watch`).
        let ptr = Arc::into_raw(this).cast::<Registration<S>>();
        // SAFETY: `ptr` comes from `Arc::into_raw`, cast back to the value's own type at the
        // same address in the same allocation; the reference is handed over once.
        Ok(unsafe { Arc::from_raw(ptr) })
    }

    /// Hands `this`, a delivered `ONESHOT` registration just taken out of `queue` and disarmed,
    /// to its source ([`Source::reaped`]), which may keep it for reuse.
    pub(crate) fn reaped(queue: &Queue, this: Arc<Self>) {
        let reaped = this.watch.reaper();
        reaped(queue, this);
    }

    /// Stops watching the source; on return no notification is running or will run for it.
    /// Idempotent. Must be called in process context without the queue's ready lock.
    pub(crate) fn disarm(&self) {
        self.watch.disarm(self);
    }
}

impl<W: ?Sized> Registration<W> {
    /// The interest mask (`ukevent.event`) now.
    pub(crate) fn event(&self) -> u32 {
        self.state.access(&self.queue.ready.lock()).event
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

    /// Whether `self` and `other` are the same registration, whatever their types.
    pub(crate) fn is<V: ?Sized>(&self, other: &Registration<V>) -> bool {
        core::ptr::addr_eq(self, other)
    }
}
