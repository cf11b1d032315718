// SPDX-License-Identifier: GPL-2.0

//! Harvesting events: `kevent_get_events()` copies them out, `kevent_wait()` and
//! `kevent_commit()` drive the mmap'd ring.

use crate::{
    compat::{
        inline_vec::InlineVec,
        lock::IrqSpinLockBackend,
        poll::WaitResult,
        task,
        uapi::{self, Ukevent, WaitArg},
    },
    queue::Queue,
    ready::{is_level_file, InFlight, Ready, FLUSH_CHUNK},
    registration::{Registration, Report},
};
use kernel::{
    error::code::*,
    list::List,
    prelude::*,
    sync::{lock::Guard, Arc},
    uaccess::{UserPtr, UserSlice, UserSliceWriter},
};

/// Nanoseconds in a second.
const NSEC_PER_SEC: i64 = 1_000_000_000;

/// Events copied out per batch (one lock hold, one user copy; the batch lives on the stack).
const BATCH: usize = 16;

// `Batch::confirm` keeps a bit per event of a batch in a `u32`.
const _: () = assert!(BATCH <= u32::BITS as usize);

/// How long a harvester may sleep.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all.
    Poll,
    /// Until woken or interrupted.
    Forever,
    /// Until this `CLOCK_MONOTONIC` time, in nanoseconds.
    Until(i64),
}

impl Wait {
    /// Decodes the wait argument: `NULL` waits forever, a zero relative timeout polls, and a
    /// non-blocking queue descriptor never waits.
    pub(crate) fn from_arg(arg: Option<WaitArg>, nonblocking: bool) -> Result<Self> {
        let wait = match arg {
            None => Wait::Forever,
            Some(arg) => {
                if arg.flags & !uapi::WAIT_MASK != 0 {
                    return Err(EINVAL);
                }
                if arg.flags & uapi::WAIT_TIMEOUT == 0 {
                    if arg.flags & uapi::WAIT_ABSTIME != 0 {
                        return Err(EINVAL);
                    }
                    Wait::Forever
                } else {
                    if arg.tv_sec < 0 || arg.tv_nsec < 0 || arg.tv_nsec >= NSEC_PER_SEC {
                        return Err(EINVAL);
                    }
                    let ns = arg
                        .tv_sec
                        .saturating_mul(NSEC_PER_SEC)
                        .saturating_add(arg.tv_nsec);
                    if arg.flags & uapi::WAIT_ABSTIME != 0 {
                        Wait::Until(ns)
                    } else if ns == 0 {
                        Wait::Poll
                    } else {
                        Wait::Until(task::ktime_get().saturating_add(ns))
                    }
                }
            }
        };
        Ok(if nonblocking { Wait::Poll } else { wait })
    }

    /// Sleeps on `queue` until `ready()` holds or the wait ends.
    fn run(self, queue: &Queue, ready: impl FnMut() -> bool) -> WaitResult {
        let deadline = match self {
            Wait::Poll => return WaitResult::TimedOut,
            Wait::Forever => None,
            Wait::Until(t) => Some(t),
        };
        queue.wait_queue().wait_until(deadline, ready)
    }
}

/// The queue's ready state, locked.
type ReadyGuard<'a> = Guard<'a, Ready, IrqSpinLockBackend>;

/// Removes delivered `ONESHOT` registrations from the tree, if there are any.
fn reap(queue: &Queue) {
    if queue.ready.lock().has_reaped() {
        remove_reaped(queue);
    }
}

/// Removes delivered `ONESHOT` registrations from the tree (the caller saw some).
fn remove_reaped(queue: &Queue) {
    let mut regs = queue.registrations.lock();
    queue.reap(&mut regs);
}

/// `kevent_get_events()`: ends a file AIO plug ([`Plug`](crate::sources::faio::Plug)), waits
/// until `min_nr` events are ready (or the wait ends), then copies up to `max_nr` of them to
/// `buf`. Returns the number copied.
///
/// File events are confirmed with `->poll` before they are copied (a wake-up only says that the
/// file may be ready); those no longer ready are dropped, and if nothing is left the call waits
/// again. Level-triggered file events that were delivered go back on the ready list when the
/// call ends, to be confirmed again by the next harvest (as epoll does).
pub(crate) fn get_events(
    queue: &Arc<Queue>,
    min_nr: u32,
    max_nr: u32,
    buf: UserPtr,
    wait: Wait,
) -> Result<i32> {
    let min_nr = min_nr as usize;
    let max = max_nr as usize;
    queue.aio_plug.unplug_before_wait();
    if matches!(wait, Wait::Poll) && !queue.may_have_pending() {
        // Nothing was ready at some moment during the call, and the caller does not wait: done
        // without the lock, as `epoll_wait` checks `ep_events_available`.
        return Ok(0);
    }
    // Fast path: when events are ready, the first batch is taken under this same lock hold.
    let mut ready = queue.ready.lock();
    if ready.pending() == 0 && matches!(wait, Wait::Poll) {
        // Nothing to take and no waiting: done before setting anything up, and the next such
        // call need not lock.
        ready.clear_pending_hint();
        return Ok(0);
    }
    let kicks = ready.kicks();
    let mut writer = UserSlice::new(buf, max * uapi::UKEVENT_SIZE).writer();
    let mut batch = Batch::new();
    let mut relevel = List::<Registration>::new();
    let mut harvest = Harvest::default();
    let mut held = (ready.pending() >= min_nr).then_some(ready);
    let result = loop {
        let result = if held.is_some() {
            WaitResult::Ready
        } else {
            wait.run(queue, || {
                let ready = queue.ready.lock();
                ready.pending() >= min_nr || ready.kicks() != kicks
            })
        };
        while harvest.copied < max && !harvest.fault {
            let filled = match held.take() {
                Some(mut ready) => {
                    batch.fill_from(&mut ready, max - harvest.copied, kicks, &mut harvest)
                }
                None => batch.fill(queue, max - harvest.copied, kicks, &mut harvest),
            };
            if !filled {
                break;
            }
            batch.confirm(queue, &mut harvest);
            // The list ran dry while this batch was taken: once something is delivered, the
            // call ends with this batch (another look would cost a lock hold and rarely find
            // anything), so the level-triggered events go back in the same hold.
            let last = batch.exhausted;
            batch.deliver(queue, &mut writer, &mut relevel, last, &mut harvest);
            if last && harvest.copied > 0 {
                break;
            }
        }
        if harvest.copied > 0 || harvest.fault || result != WaitResult::Ready || harvest.kicked {
            break result;
        }
        // Everything taken turned out not to be ready: wait again, unless the caller asked
        // not to wait at all.
        if min_nr == 0 || matches!(wait, Wait::Poll) {
            break WaitResult::TimedOut;
        }
    };
    if !relevel.is_empty() {
        let mut ready = queue.ready.lock();
        while let Some(item) = relevel.pop_front() {
            harvest.requeued |= ready.relevel(item);
        }
    }
    if harvest.requeued {
        queue.wake_waiters(1);
    }
    if harvest.oneshot {
        reap(queue);
    }
    if harvest.copied == 0 {
        if harvest.fault {
            return Err(EFAULT);
        }
        if result == WaitResult::Interrupted {
            return Err(EINTR);
        }
    }
    Ok(harvest.copied as i32)
}

/// Progress of one `kevent_get_events()` call.
#[derive(Default)]
struct Harvest {
    copied: usize,
    fault: bool,
    /// Something was queued again and may need another harvester.
    requeued: bool,
    /// A `KEVENT_CTL_READY` with no entries arrived during the call.
    kicked: bool,
    /// A `ONESHOT` event was delivered: reap it.
    oneshot: bool,
}

/// Events taken off the ready list together, copied to user space in one go. Lives on the
/// stack: a harvest allocates nothing, and writes only the slots it uses.
///
/// # Invariants
///
/// `items` is as long as `events`; `items[i]` holds the registration that `events[i]` was taken
/// from, until the confirmation dismisses it or the delivery takes it.
struct Batch {
    events: InlineVec<Ukevent, BATCH>,
    items: InlineVec<Option<InFlight>, BATCH>,
    /// The ready list was emptied before the batch was full.
    exhausted: bool,
}

impl Batch {
    fn new() -> Self {
        Self {
            events: InlineVec::new(),
            items: InlineVec::new(),
            exhausted: false,
        }
    }

    /// Takes up to `max` ready registrations; false if none was ready.
    fn fill(&mut self, queue: &Queue, max: usize, kicks: u64, harvest: &mut Harvest) -> bool {
        self.fill_from(&mut queue.ready.lock(), max, kicks, harvest)
    }

    /// [`Batch::fill`] with the ready lock already held.
    fn fill_from(
        &mut self,
        ready: &mut Ready,
        max: usize,
        kicks: u64,
        harvest: &mut Harvest,
    ) -> bool {
        harvest.kicked = ready.kicks() != kicks;
        // INVARIANT: Both are emptied together and grow together.
        self.events.truncate(0);
        self.items.truncate(0);
        self.exhausted = false;
        while self.events.len() < max.min(BATCH) {
            let Some((item, event)) = ready.take() else {
                self.exhausted = true;
                break;
            };
            if self.events.push(event).is_err() {
                // Not reached: the loop stops at the capacity.
                ready.undeliver(item, &event);
                break;
            }
            if let Err(Some(item)) = self.items.push(Some(item)) {
                // Not reached: `items` and `events` have the same capacity and length.
                self.events.truncate(self.items.len());
                ready.undeliver(item, &event);
                break;
            }
        }
        self.events.len() > 0
    }

    /// Confirms the events of the batch whose source confirms them (files, with `->poll`); drops
    /// those no longer ready.
    fn confirm(&mut self, queue: &Queue, harvest: &mut Harvest) {
        let events = self.events.as_mut_slice();
        let items = self.items.as_mut_slice();
        if !items.iter().flatten().any(|item| item.confirmed) {
            return;
        }
        // A registration taken off the list may have been disarmed (its file closed) since;
        // its source tells, under this lock ([`Source::confirm`]).
        let regs = queue.registrations.lock();
        // Bit `i` is set when `events[i]` turned out not to be ready (`BATCH` bits fit).
        let mut dropped: u32 = 0;
        for (i, (item, event)) in items.iter().zip(events.iter_mut()).enumerate() {
            let Some(item) = item.as_ref().filter(|item| item.confirmed) else {
                continue;
            };
            match item.watch.confirm(&regs, event.event) {
                Some((flags, data)) => {
                    event.ret_flags = flags;
                    event.ret_data = data;
                }
                None => dropped |= 1 << i,
            }
        }
        drop(regs);
        if dropped != 0 {
            let mut ready = queue.ready.lock();
            for (i, slot) in items.iter_mut().enumerate() {
                if let Some(item) = slot.take_if(|_| dropped & (1 << i) != 0) {
                    harvest.requeued |= ready.dismiss(item);
                }
            }
        }
    }

    /// Copies the batch out in one go and confirms the delivery, or puts everything back if
    /// the copy faults. Delivered level-triggered file events go on `relevel`, to be queued
    /// again when the call is done; when this batch is the `last` (nothing further will be
    /// taken in this call), they and those of earlier batches are queued again at once.
    fn deliver(
        &mut self,
        queue: &Queue,
        writer: &mut UserSliceWriter,
        relevel: &mut List<Registration>,
        last: bool,
        harvest: &mut Harvest,
    ) {
        // Compact: events of dropped registrations are not copied.
        let events = self.events.as_mut_slice();
        let items = self.items.as_mut_slice();
        let mut n = 0;
        for i in 0..events.len() {
            if items.get(i).is_some_and(Option::is_some) {
                events.swap(n, i);
                items.swap(n, i);
                n += 1;
            }
        }
        // INVARIANT: Both keep their first `n` entries (the others of `items` are `None`).
        self.events.truncate(n);
        self.items.truncate(n);
        let events = self.events.as_slice();
        let items = self.items.as_mut_slice();
        if n == 0 {
            return;
        }
        // If the copy faults, nothing of the batch counts as delivered.
        let ok = writer.write_slice(Ukevent::slice_as_bytes(events)).is_ok();
        let mut ready = queue.ready.lock();
        if ok {
            for (slot, event) in items.iter_mut().zip(events) {
                let Some(item) = slot.take() else {
                    continue;
                };
                harvest.oneshot |= event.req_flags & uapi::REQ_ONESHOT != 0;
                if is_level_file(&item, event) {
                    relevel.push_back(item);
                } else {
                    harvest.requeued |= ready.delivered(item);
                }
            }
            harvest.copied += n;
            if last {
                while let Some(item) = relevel.pop_front() {
                    harvest.requeued |= ready.relevel(item);
                }
            }
        } else {
            // Put the rest back in order, newest first, and let another harvester (which may
            // have gone to sleep while they were in flight) take them.
            for (slot, event) in items.iter_mut().zip(events).rev() {
                if let Some(item) = slot.take() {
                    ready.undeliver(item, event);
                }
            }
            harvest.fault = true;
            harvest.requeued = true;
        }
    }
}

/// `kevent_wait()`: ends a file AIO plug, re-checks the level-triggered entries consumed
/// ([`recheck_level`]), moves up to `num` (0: any number of) ready events into the ring and
/// sleeps while the ring holds nothing unconsumed and the consumer index still is `old_uidx`.
/// Returns the number of unconsumed entries in the ring.
pub(crate) fn wait(queue: &Arc<Queue>, num: u32, old_uidx: u32, wait: Wait) -> Result<i32> {
    let max = if num == 0 { usize::MAX } else { num as usize };
    queue.aio_plug.unplug_before_wait();
    let mut ready = queue.ready.lock();
    let mut requeued = false;
    if ready.parked() > 0 {
        (ready, requeued) = recheck_level(queue, ready);
    }
    let kicks = ready.kicks();
    let fill = |ready| fill_ring(queue, ready, max, old_uidx, kicks);
    // Fast path: whatever is ready, or a call that must not wait, returns in this lock hold.
    let (done, held) = fill(ready)?;
    ready = held;
    let result = if done {
        WaitResult::Ready
    } else if matches!(wait, Wait::Poll) {
        WaitResult::TimedOut
    } else {
        drop(ready);
        if core::mem::take(&mut requeued) {
            queue.wake_waiters(1);
        }
        let result = wait.run(queue, || {
            fill(queue.ready.lock()).map_or(true, |(done, _)| done)
        });
        ready = queue.ready.lock();
        result
    };
    let (unconsumed, reaped) = (ready.ring_status()?.0, ready.has_reaped());
    drop(ready);
    if requeued {
        // Another thread may be waiting on the queue too.
        queue.wake_waiters(1);
    }
    if reaped {
        remove_reaped(queue);
    }
    if unconsumed == 0 && result == WaitResult::Interrupted {
        return Err(EINTR);
    }
    Ok(unconsumed as i32)
}

/// Moves up to `max` ready events into the ring (`ready` is `queue`'s ready state, locked) and
/// says whether `kevent_wait` may return: the ring holds unconsumed entries, the consumer index
/// is no longer `old_uidx`, or a kick came since `kicks`. The lock is held again on return.
fn fill_ring<'a>(
    queue: &'a Queue,
    mut ready: ReadyGuard<'a>,
    max: usize,
    old_uidx: u32,
    kicks: u64,
) -> Result<(bool, ReadyGuard<'a>)> {
    let chunk = max.min(FLUSH_CHUNK);
    if ready.flush_to_ring(chunk) == chunk && max > chunk {
        // More may be ready: the rest a chunk per hold of the lock.
        drop(ready);
        queue.flush_to_ring(max - chunk);
        ready = queue.ready.lock();
    }
    let (unconsumed, uidx) = ready.ring_status()?;
    let done = unconsumed > 0 || uidx != old_uidx || ready.kicks() != kicks;
    Ok((done, ready))
}

/// Re-checks the level-triggered file events parked in the ring whose entries the consumer has
/// consumed (as `epoll_wait` re-checks the level-triggered items it delivered): those whose
/// file is still ready are queued again with a fresh result, to be published by the caller; the
/// others go idle until their next notification. Only as many are queued again as the ring has
/// room for, so that each is published right after its re-check; the rest stay parked, in
/// order, for the next call. `BATCH` registrations per lock hold; each is re-checked once.
/// Callers check first, under the ready lock that they pass on as `ready` (the first batch is
/// taken in that hold), that something is parked. Returns the ready lock, still held since the
/// last requeue (so that the caller publishes in the same hold), and whether anything was
/// queued again, in which case the caller wakes another waiter once it has dropped the lock.
fn recheck_level<'a>(queue: &'a Queue, mut ready: ReadyGuard<'a>) -> (ReadyGuard<'a>, bool) {
    let (mut left, mut room) = (ready.parked(), ready.ring_room());
    let mut requeued = false;
    loop {
        let mut items = InlineVec::<Option<(InFlight, u32)>, BATCH>::new();
        let mut dry = false;
        while items.len() < BATCH.min(left).min(room) {
            let Some(parked) = ready.take_parked() else {
                dry = true;
                break;
            };
            if let Err(Some((item, _))) = items.push(Some(parked)) {
                // Not reached: the loop stops at the capacity.
                requeued |= ready.dismiss(item);
                break;
            }
        }
        let n = items.len();
        if n == 0 {
            return (ready, requeued);
        }
        drop(ready);
        left -= n;
        let mut reports = InlineVec::<Option<Report>, BATCH>::new();
        {
            // `confirm` needs the registrations locked; a registration removed before is
            // disarmed, and its source says so. The mutex is released before the ready lock is
            // taken again, never under it: unlocking a contended mutex takes its `wait_lock`,
            // which is not IRQ-safe. A removal after this point is seen under the ready lock
            // (`relevel_with` checks `detached`).
            let regs = queue.registrations.lock();
            for slot in items.as_slice() {
                let report = slot
                    .as_ref()
                    .and_then(|(item, event)| item.watch.confirm(&regs, *event));
                // Cannot fail: `reports` has the capacity of `items`.
                let _ = reports.push(report);
            }
        }
        ready = queue.ready.lock();
        let reports = reports.as_slice().iter().copied();
        for (slot, report) in items.as_mut_slice().iter_mut().zip(reports) {
            let Some((item, _)) = slot.take() else {
                continue;
            };
            requeued |= match report {
                Some(report) => {
                    room = room.saturating_sub(1);
                    ready.relevel_with(item, report)
                }
                None => ready.dismiss(item),
            };
        }
        if dry || left == 0 || room == 0 {
            // Nothing more can be taken now: no further round (and lock hold) is needed.
            return (ready, requeued);
        }
    }
}

/// `kevent_commit()`: releases the ring slots up to `new_uidx` of wrap `over`, re-checks the
/// level-triggered entries consumed, and refills the ring from the ready list. Returns the
/// number of slots released.
pub(crate) fn commit(queue: &Arc<Queue>, new_uidx: u32, over: u32) -> Result<i32> {
    let mut ready = queue.ready.lock();
    let released = ready.commit(new_uidx, over)?;
    if ready.parked() > 0 {
        let (ready, requeued) = recheck_level(queue, ready);
        drop(ready);
        if requeued {
            // Another thread may be waiting on the queue too.
            queue.wake_waiters(1);
        }
    } else {
        drop(ready);
    }
    let moved = queue.flush_to_ring(usize::MAX);
    if moved > 0 {
        queue.wake_waiters(1);
    }
    reap(queue);
    Ok(released as i32)
}
