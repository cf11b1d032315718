// SPDX-License-Identifier: GPL-2.0

//! The ready list and the ring producer of a queue.
//!
//! Everything here runs under the queue's irqsave spinlock (`Queue::ready`), from system calls
//! and from event notifications in any context, so nothing here allocates or sleeps.
//!
//! One slot per registration: a registration is on the ready list at most once, and further
//! notifications coalesce into it (its `ret_data` counts them). Delivery takes it off the list
//! ("in flight"), then either confirms it (`delivered`: `ONESHOT` detaches, `DISPATCH`
//! disables, a registration that fired again meanwhile is queued again) or puts it back in front
//! (`undeliver`, when copying to user space failed). Nothing is ever dropped.
//!
//! Level-triggered file events published into the ring stay in flight, "parked" on the `level`
//! list: like epoll, which re-checks a delivered level-triggered item at the next
//! `epoll_wait`, `kevent_wait` re-checks with `->poll` those whose entries the consumer has
//! consumed (`harvest::recheck_level`), and publishes them again while their file stays ready. A
//! notification for a parked registration publishes nothing: the re-check stands for it. So a
//! consumer of level-triggered events calls `kevent_wait` (which it does to sleep anyway) or
//! `kevent_commit` after consuming them, as an epoll user calls `epoll_wait`.

use crate::{
    compat::{
        shared_pages::SharedPages,
        uapi::{self, Ukevent},
    },
    registration::{Registration, Report, State},
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    error::code::*,
    list::{List, ListArc},
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// The producer side of the mmap'd ring.
///
/// # Invariants
///
/// `size` is a power of two; `kidx - uidx <= size` (wrapping), so the slots from `uidx` to
/// `kidx` hold events that user space has not consumed and the others are free.
pub(crate) struct RingState {
    pages: Arc<SharedPages>,
    size: u32,
    kidx: u32,
    uidx: u32,
}

impl RingState {
    /// Bytes of shared memory for a ring of `size` entries.
    pub(crate) fn bytes(size: u32) -> usize {
        uapi::RING_HEADER_SIZE + size as usize * uapi::UKEVENT_SIZE
    }

    /// Wraps freshly allocated, zeroed pages; writes the header.
    pub(crate) fn new(pages: Arc<SharedPages>, size: u32) -> Self {
        pages.store_release(uapi::RING_SIZE, size);
        // INVARIANT: Both indices are 0: the ring is empty.
        Self {
            pages,
            size,
            kidx: 0,
            uidx: 0,
        }
    }

    /// Reads the consumer index that user space may have advanced, trusting it only within
    /// `[kidx - size, kidx]`.
    fn refresh_uidx(&mut self) {
        let user = self.pages.load_acquire(uapi::RING_UIDX);
        if user != self.uidx && self.kidx.wrapping_sub(user) <= self.size {
            // INVARIANT: Checked just above.
            self.uidx = user;
            self.pages.store_release(uapi::RING_OVER, self.wraps(user));
        }
    }

    /// How many times index `idx` wrapped around the ring (`idx / size`, `size` being a power
    /// of two).
    fn wraps(&self, idx: u32) -> u32 {
        idx >> self.size.trailing_zeros()
    }

    /// Entries published and not yet consumed.
    fn unconsumed(&mut self) -> u32 {
        self.refresh_uidx();
        self.kidx.wrapping_sub(self.uidx)
    }

    /// Whether user space has consumed the entry at index `pos` (one of the last `size`
    /// published).
    fn consumed(&self, pos: u32) -> bool {
        self.kidx.wrapping_sub(pos) > self.kidx.wrapping_sub(self.uidx)
    }

    /// Writes `ev` into the next free slot and publishes it. The caller checked for space.
    fn publish(&mut self, ev: &Ukevent) {
        let slot = (self.kidx & self.size.wrapping_sub(1)) as usize;
        let offset = uapi::RING_HEADER_SIZE + slot * uapi::UKEVENT_SIZE;
        if self.pages.write(offset, ev.as_bytes()) {
            self.kidx = self.kidx.wrapping_add(1);
            // The release store orders the entry before the index that exposes it.
            self.pages.store_release(uapi::RING_KIDX, self.kidx);
        }
    }
}

/// The most ready events that one notification moves into the ring, however long the ready
/// list: notifications run with interrupts off, possibly in hard-IRQ context. What stays on the
/// list moves at the next `kevent_wait` or `kevent_commit`.
const NOTIFY_FLUSH_MAX: usize = 16;

/// The most events moved into the ring per hold of the ready lock by a system call.
pub(crate) const FLUSH_CHUNK: usize = 64;

/// A registration taken off the ready list for delivery ("in flight").
pub(crate) type InFlight = ListArc<Registration>;

/// The ready state of a queue.
pub(crate) struct Ready {
    list: List<Registration>,
    /// Delivered `ONESHOT` registrations, to remove from the tree in process context.
    reap: List<Registration>,
    /// Parked registrations: level-triggered file events in the ring, to re-check.
    level: List<Registration>,
    /// Registrations on `level`.
    nr_level: usize,
    /// Registrations on `list`.
    nr: usize,
    /// Last sequence number handed out.
    seq: u64,
    /// Bumped by `KEVENT_CTL_READY` with no entries: wakes a waiter with nothing to report.
    kicks: u64,
    /// The queue is being torn down: notifications are ignored.
    dead: bool,
    ring: Option<RingState>,
    /// Shared with the queue ([`Queue::may_have_pending`](crate::queue::Queue)): true whenever
    /// `nr > 0` at the end of a hold of the lock (set when `nr` grows, cleared only with `nr`
    /// at 0), so that a reader who finds it false without the lock knows that the list was
    /// empty at some moment of its call.
    hint: Arc<AtomicBool>,
}

impl Ready {
    /// Creates an empty ready state, with a ring if `ring` is given, that keeps `hint` (see
    /// [`Ready::clear_pending_hint`]).
    pub(crate) fn new(ring: Option<RingState>, hint: Arc<AtomicBool>) -> Self {
        Self {
            hint,
            list: List::new(),
            reap: List::new(),
            level: List::new(),
            nr_level: 0,
            nr: 0,
            seq: 0,
            kicks: 0,
            dead: false,
            ring,
        }
    }

    /// Registrations waiting on the ready list.
    pub(crate) fn pending(&self) -> usize {
        self.nr
    }

    /// Records that the list is not empty, for readers of the hint.
    fn set_pending_hint(&self) {
        // Stores only on a change: notifications on other CPUs do not bounce the line.
        if !self.hint.load(Ordering::Relaxed) {
            self.hint.store(true, Ordering::Relaxed);
        }
    }

    /// Clears the hint that something may be pending, if the list is empty.
    pub(crate) fn clear_pending_hint(&mut self) {
        if self.nr == 0 {
            self.hint.store(false, Ordering::Relaxed);
        }
    }

    /// The number of `kick`s so far.
    pub(crate) fn kicks(&self) -> u64 {
        self.kicks
    }

    /// Wakes a waiter even though nothing is ready (`KEVENT_CTL_READY` with `num == 0`).
    pub(crate) fn kick(&mut self) {
        self.kicks = self.kicks.wrapping_add(1);
    }

    /// Applies `update` to the state of `reg` and queues it if it is not queued yet. Returns the
    /// number of exclusive waiters to wake (0: all), or `None` when nobody needs waking.
    pub(crate) fn make_ready(
        &mut self,
        reg: ArcBorrow<'_, Registration>,
        update: impl FnOnce(&mut State) -> bool,
    ) -> Option<i32> {
        if self.dead {
            return None;
        }
        let wake_all = {
            let st = reg.state.access_mut(self);
            if st.detached || !st.enabled {
                return None;
            }
            if !update(st) {
                return None;
            }
            if !st.active {
                // Its ADD is not decided yet: nothing may escape before it is.
                st.early = true;
                return None;
            }
            if st.parked {
                // Its entry is in the ring, or was consumed and waits for its re-check, which
                // covers this notification: a second entry could report readiness that the
                // consumer has used up by the time it reads it (epoll re-checks at harvest
                // too). The result is not kept either: the re-check makes a fresh one.
                st.ret_flags = 0;
                st.ret_data = [0, 0];
                return None;
            }
            if st.in_flight {
                // The harvester queues it again when it is done with it.
                st.again = true;
                return None;
            }
            if st.queued {
                return None;
            }
            st.req_flags & uapi::REQ_WAKEUP_ALL != 0
        };
        let wake = Some(if wake_all { 0 } else { 1 });
        if self.publish_at_once(&reg) {
            return wake;
        }
        reg.state.access_mut(self).queued = true;
        let Some(item) = ListArc::try_from_arc_borrow(reg) else {
            // Unreachable: `queued` was false, so no `ListArc` existed. Stay consistent anyway.
            reg.state.access_mut(self).queued = false;
            return None;
        };
        self.push_back(item);
        self.flush_to_ring(NOTIFY_FLUSH_MAX);
        wake
    }

    /// Publishes the event of `reg`, which just became ready and is not queued, straight into
    /// the ring, if it can go there without waiting: the ring has a free slot, nothing is
    /// queued before it, and its delivery leaves it alone (no `ONESHOT`, which is reaped, and
    /// not a level-triggered file event, which is parked). Then it never goes on the list, as
    /// [`Ready::flush_to_ring`] would have taken it off at once: the same entry, with no list
    /// or reference count traffic. Returns false, having changed nothing, otherwise.
    fn publish_at_once(&mut self, reg: &Registration) -> bool {
        if self.nr != 0 {
            return false;
        }
        let Some(ring) = self.ring.as_mut() else {
            return false;
        };
        if ring.unconsumed() >= ring.size {
            return false;
        }
        let flags = reg.state.access(self).req_flags;
        if flags & uapi::REQ_ONESHOT != 0 || is_level(reg, flags) {
            return false;
        }
        let seq = self.next_seq();
        let event = {
            // As `push_back`, `take` and `delivered` would have left it.
            let st = reg.state.access_mut(self);
            st.seq = seq;
            if flags & uapi::REQ_DISPATCH != 0 {
                st.enabled = false;
            }
            hand_out(reg, st)
        };
        if let Some(ring) = self.ring.as_mut() {
            ring.publish(&event);
        }
        true
    }

    /// Lets notifications of a registration whose ADD succeeded through; one that arrived while
    /// the ADD was being decided is queued now. Returns whom to wake, as [`Ready::make_ready`].
    pub(crate) fn activate(&mut self, reg: ArcBorrow<'_, Registration>) -> Option<i32> {
        let early = {
            let st = reg.state.access_mut(self);
            st.active = true;
            core::mem::replace(&mut st.early, false)
        };
        if early {
            self.make_ready(reg, |_| true)
        } else {
            None
        }
    }

    /// Queues `item` at the tail with a new sequence number.
    fn push_back(&mut self, item: ListArc<Registration>) {
        let seq = self.next_seq();
        item.state.access_mut(self).seq = seq;
        self.list.push_back(item);
        self.nr = self.nr.saturating_add(1);
        self.set_pending_hint();
    }

    /// The sequence number of an event that becomes ready now.
    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Takes the first registration off the list for delivery and resets its result, which the
    /// returned event now carries.
    pub(crate) fn take(&mut self) -> Option<(InFlight, Ukevent)> {
        let item = self.list.pop_front()?;
        self.nr = self.nr.saturating_sub(1);
        let event = {
            let st = item.state.access_mut(self);
            st.in_flight = true;
            hand_out(&item, st)
        };
        Some((item, event))
    }

    /// Confirms the delivery of `item`. Returns true when it was queued again (it fired while in
    /// flight), so that waiters should be woken.
    pub(crate) fn delivered(&mut self, item: InFlight) -> bool {
        let (requeue, reap) = {
            let st = item.state.access_mut(self);
            st.in_flight = false;
            if st.detached {
                st.queued = false;
                (false, false)
            } else if st.req_flags & uapi::REQ_ONESHOT != 0 {
                st.detached = true;
                st.queued = false;
                (false, true)
            } else if st.req_flags & uapi::REQ_DISPATCH != 0 {
                st.enabled = false;
                st.queued = false;
                st.again = false;
                (false, false)
            } else if st.again {
                st.again = false;
                (true, false)
            } else {
                st.queued = false;
                (false, false)
            }
        };
        if requeue {
            self.push_back(item);
        } else if reap {
            self.reap.push_back(item);
        }
        requeue
    }

    /// Ends the delivery of `item` without delivering it: its file is not ready any more.
    /// Returns true when it was queued again (it fired meanwhile).
    pub(crate) fn dismiss(&mut self, item: InFlight) -> bool {
        let again = {
            let st = item.state.access_mut(self);
            st.in_flight = false;
            let again = st.again && !st.detached;
            st.again = false;
            st.queued = again;
            again
        };
        if again {
            self.push_back(item);
        }
        again
    }

    /// Ends the delivery of a level-triggered file event by queueing it again, to be confirmed
    /// at the next harvest. Returns true when it was queued.
    pub(crate) fn relevel(&mut self, item: InFlight) -> bool {
        let live = {
            let st = item.state.access_mut(self);
            st.in_flight = false;
            st.again = false;
            st.queued = !st.detached && st.enabled;
            st.queued
        };
        if live {
            self.push_back(item);
        }
        live
    }

    /// Parks `item`, whose level-triggered file event was just published into the ring at
    /// index `pos`.
    fn park(&mut self, item: InFlight, pos: u32) {
        let st = item.state.access_mut(self);
        st.parked = true;
        st.ring_pos = pos;
        self.level.push_back(item);
        self.nr_level = self.nr_level.saturating_add(1);
    }

    /// Takes parked `reg` off the `level` list; the caller has cleared `parked`.
    fn unpark(&mut self, reg: &Registration) -> Option<InFlight> {
        // SAFETY: `reg` was parked, so by the invariants of `State` its `ListArc` is on `level`
        // and on no other list with the same id.
        let item = unsafe { self.level.remove(reg) };
        if item.is_some() {
            self.nr_level = self.nr_level.saturating_sub(1);
        }
        item
    }

    /// Whether user space consumed the ring entry at index `pos`.
    fn ring_consumed(&mut self, pos: u32) -> bool {
        self.ring.as_mut().map_or(true, |ring| {
            ring.refresh_uidx();
            ring.consumed(pos)
        })
    }

    /// Parked registrations waiting to be re-checked.
    pub(crate) fn parked(&self) -> usize {
        self.nr_level
    }

    /// Takes the oldest parked registration to re-check it, with its interest mask, if user
    /// space has consumed its entry (`level` is in the order of the ring); it stays in flight (a
    /// notification meanwhile sets `again`).
    pub(crate) fn take_parked(&mut self) -> Option<(InFlight, u32)> {
        let pos = self.level.iter().next()?.state.access(self).ring_pos;
        if !self.ring_consumed(pos) {
            return None;
        }
        let item = self.level.pop_front()?;
        self.nr_level = self.nr_level.saturating_sub(1);
        let st = item.state.access_mut(self);
        st.parked = false;
        let event = st.event;
        Some((item, event))
    }

    /// Ends the re-check of a parked registration whose file is still ready with `report`: it
    /// is queued again, to be published into the ring. If it fired meanwhile, that newer
    /// result is kept. Returns true when it was queued.
    pub(crate) fn relevel_with(&mut self, item: InFlight, report: Report) -> bool {
        {
            let st = item.state.access_mut(self);
            st.in_flight = false;
            if st.detached {
                st.queued = false;
                st.again = false;
                return false;
            }
            if !core::mem::replace(&mut st.again, false) {
                st.report(report);
            }
        }
        self.push_back(item);
        true
    }

    /// Puts `item` back at the head of the list with the result of `event` restored (copying it
    /// out failed). If it fired again while in flight, the counts add up and the newer
    /// value (`ret_data[1]`: a payload, a sender) wins.
    pub(crate) fn undeliver(&mut self, item: InFlight, event: &Ukevent) {
        {
            let st = item.state.access_mut(self);
            st.in_flight = false;
            let again = core::mem::replace(&mut st.again, false);
            if st.detached {
                st.queued = false;
                return;
            }
            st.ret_flags |= event.ret_flags;
            st.ret_data[0] = st.ret_data[0].saturating_add(event.ret_data[0]);
            if !again {
                st.ret_data[1] = event.ret_data[1];
            }
            st.seq = event.seq;
        }
        self.list.push_front(item);
        self.nr = self.nr.saturating_add(1);
        self.set_pending_hint();
    }

    /// Detaches `reg` (removed by `kevent_ctl` or its queue): it never becomes ready again and
    /// leaves the ready list.
    pub(crate) fn detach(&mut self, reg: &Registration) {
        let (on_list, parked) = {
            let st = reg.state.access_mut(self);
            let on_list = st.queued && !st.in_flight;
            let parked = core::mem::replace(&mut st.parked, false);
            if parked {
                st.in_flight = false;
            }
            st.detached = true;
            st.queued = false;
            (on_list, parked)
        };
        if parked {
            drop(self.unpark(reg));
            return;
        }
        if !on_list {
            return;
        }
        let mut cursor = self.list.cursor_front();
        while let Some(c) = cursor {
            if c.current().is(reg) {
                drop(c.remove());
                self.nr = self.nr.saturating_sub(1);
                return;
            }
            cursor = c.next();
        }
    }

    /// Re-enables a `DISPATCH`-disabled registration (`KEVENT_CTL_MODIFY`).
    pub(crate) fn enable(&mut self, reg: &Registration) {
        reg.state.access_mut(self).enabled = true;
    }

    /// Whether delivered `ONESHOT` registrations wait to be removed from the tree.
    pub(crate) fn has_reaped(&self) -> bool {
        !self.reap.is_empty()
    }

    /// Takes every delivered `ONESHOT` registration waiting to be removed from the tree. Nothing
    /// else takes a registration off that list (it is detached: [`Ready::detach`] leaves it
    /// alone), so the caller may empty the returned list without the lock.
    pub(crate) fn take_reaped(&mut self) -> List<Registration> {
        core::mem::take(&mut self.reap)
    }

    /// Moves up to `max` ready events into free ring slots. Returns how many moved.
    pub(crate) fn flush_to_ring(&mut self, max: usize) -> usize {
        let mut moved = 0;
        while moved < max && self.nr > 0 {
            let Some(ring) = self.ring.as_mut() else {
                break;
            };
            if ring.unconsumed() >= ring.size {
                break;
            }
            let Some((item, event)) = self.take() else {
                break;
            };
            // The ring was there a moment ago, under the same lock hold.
            let mut pos = 0;
            if let Some(ring) = self.ring.as_mut() {
                pos = ring.kidx;
                ring.publish(&event);
            }
            if is_level_file(&item, &event) {
                self.park(item, pos);
            } else {
                self.delivered(item);
            }
            moved = moved.saturating_add(1);
        }
        moved
    }

    /// The ring's `(unconsumed entries, consumer index)`, or `EINVAL` without a ring.
    pub(crate) fn ring_status(&mut self) -> Result<(u32, u32)> {
        let ring = self.ring.as_mut().ok_or(EINVAL)?;
        let unconsumed = ring.unconsumed();
        Ok((unconsumed, ring.uidx))
    }

    /// Free ring slots that the ready list does not claim yet.
    pub(crate) fn ring_room(&mut self) -> usize {
        let Some(ring) = self.ring.as_mut() else {
            return 0;
        };
        let free = ring.size.saturating_sub(ring.unconsumed()) as usize;
        free.saturating_sub(self.nr)
    }

    /// `kevent_commit`: moves the consumer index to slot `new_uidx` of wrap `over`. Returns the
    /// number of entries released.
    pub(crate) fn commit(&mut self, new_uidx: u32, over: u32) -> Result<u32> {
        let ring = self.ring.as_mut().ok_or(EINVAL)?;
        if new_uidx >= ring.size {
            return Err(EINVAL);
        }
        ring.refresh_uidx();
        let target = over.wrapping_mul(ring.size).wrapping_add(new_uidx);
        let released = target.wrapping_sub(ring.uidx);
        if released > ring.size {
            // Behind the current consumer index: a stale commit.
            return Err(crate::compat::errno::eoverflow());
        }
        if released > ring.kidx.wrapping_sub(ring.uidx) {
            // Beyond what the kernel produced.
            return Err(EINVAL);
        }
        // INVARIANT: `uidx <= target <= kidx`, checked above.
        ring.uidx = target;
        ring.pages.store_release(uapi::RING_UIDX, target);
        ring.pages
            .store_release(uapi::RING_OVER, ring.wraps(target));
        Ok(released)
    }

    /// The ring's shared pages, for `mmap`.
    pub(crate) fn ring_pages(&self) -> Option<Arc<SharedPages>> {
        self.ring.as_ref().map(|r| r.pages.clone())
    }

    /// Whether the queue was shut down (its file released).
    pub(crate) fn is_dead(&self) -> bool {
        self.dead
    }

    /// Marks the queue dead and empties it. Returns the ring pages, to be freed by the caller
    /// outside the lock (unmapping them may sleep), and the reaped registrations.
    pub(crate) fn shutdown(&mut self) -> Option<Arc<SharedPages>> {
        self.dead = true;
        while let Some(item) = self.list.pop_front() {
            let st = item.state.access_mut(self);
            st.queued = false;
            st.detached = true;
        }
        while let Some(item) = self.level.pop_front() {
            let st = item.state.access_mut(self);
            st.parked = false;
            st.in_flight = false;
            st.queued = false;
            st.detached = true;
        }
        while self.reap.pop_front().is_some() {}
        self.nr = 0;
        self.nr_level = 0;
        self.ring.take().map(|r| r.pages)
    }
}

/// The event that delivers `reg`, whose state is `st`, now; its result is reset, since the
/// event carries it from here on.
fn hand_out(reg: &Registration, st: &mut State) -> Ukevent {
    st.again = false;
    let event = reg.to_ukevent(st);
    st.ret_flags = 0;
    st.ret_data = [0, 0];
    event
}

/// Whether a delivered event is level-triggered and confirmed (a file event): it is re-checked
/// at the next harvest, or parked until the next `kevent_wait` when it went into the ring.
pub(crate) fn is_level_file(reg: &Registration, event: &Ukevent) -> bool {
    is_level(reg, event.req_flags)
}

/// [`is_level_file`] for a registration with flags `req_flags`.
fn is_level(reg: &Registration, req_flags: u32) -> bool {
    reg.confirmed && req_flags & (uapi::REQ_ONESHOT | uapi::REQ_ET | uapi::REQ_DISPATCH) == 0
}
