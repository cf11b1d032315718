// SPDX-License-Identifier: GPL-2.0

//! Harvesting events: `kevent_get_events()` copies them out, `kevent_wait()` and
//! `kevent_commit()` drive the mmap'd ring.

use crate::{
    compat::{
        poll::WaitResult,
        task,
        uapi::{self, Ukevent, WaitArg},
        user_gfp,
    },
    queue::Queue,
    registration::Registration,
};
use kernel::{
    error::code::*,
    list::List,
    prelude::*,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

/// Nanoseconds in a second.
const NSEC_PER_SEC: i64 = 1_000_000_000;

/// Events copied out per batch (one lock hold, one user copy).
const BATCH: usize = 64;

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

/// Removes delivered `ONESHOT` registrations from the tree, if there are any.
fn reap(queue: &Queue) {
    if !queue.ready.lock().has_reaped() {
        return;
    }
    let mut regs = queue.registrations.lock();
    queue.reap(&mut regs);
}

/// `kevent_get_events()`: waits until `min_nr` events are ready (or the wait ends), then copies
/// up to `max_nr` of them to `buf`. Returns the number copied.
pub(crate) fn get_events(
    queue: &Arc<Queue>,
    min_nr: u32,
    max_nr: u32,
    buf: UserPtr,
    wait: Wait,
) -> Result<i32> {
    let min_nr = min_nr as usize;
    let (kicks, ready_now) = {
        let ready = queue.ready.lock();
        (ready.kicks(), ready.pending() >= min_nr)
    };
    let result = if ready_now {
        WaitResult::Ready
    } else {
        wait.run(queue, || {
            let ready = queue.ready.lock();
            ready.pending() >= min_nr || ready.kicks() != kicks
        })
    };

    let max = max_nr as usize;
    let mut writer = UserSlice::new(buf, max * uapi::UKEVENT_SIZE).writer();
    let mut events = KVec::new();
    events.extend_with(BATCH.min(max), Ukevent::default(), user_gfp())?;
    let mut in_flight = List::<Registration>::new();
    let mut copied = 0;
    let mut fault = false;
    let mut requeued = false;
    while copied < max && !fault {
        let mut taken = 0;
        {
            let mut ready = queue.ready.lock();
            while taken < events.len() && copied + taken < max {
                let Some((item, event)) = ready.take() else {
                    break;
                };
                events[taken] = event;
                in_flight.push_back(item);
                taken += 1;
            }
        }
        if taken == 0 {
            break;
        }
        // One copy per batch; if it faults, nothing of the batch counts as delivered.
        let written = match writer.write_slice(Ukevent::slice_as_bytes(&events[..taken])) {
            Ok(()) => taken,
            Err(_) => {
                fault = true;
                0
            }
        };
        // Confirm what reached user space; put the rest back in order, newest first.
        let mut ready = queue.ready.lock();
        for _ in 0..written {
            if let Some(item) = in_flight.pop_front() {
                requeued |= ready.delivered(item);
            }
        }
        let mut index = taken;
        while let Some(item) = in_flight.pop_back() {
            index -= 1;
            ready.undeliver(item, &events[index]);
        }
        drop(ready);
        copied += written;
    }
    if requeued {
        queue.wake_waiters(1);
    }
    reap(queue);
    if copied == 0 {
        if fault {
            return Err(EFAULT);
        }
        if result == WaitResult::Interrupted {
            return Err(EINTR);
        }
    }
    Ok(copied as i32)
}

/// `kevent_wait()`: moves up to `num` (0: any number of) ready events into the ring and sleeps
/// while the ring holds nothing unconsumed and the consumer index still is `old_uidx`. Returns
/// the number of unconsumed entries in the ring.
pub(crate) fn wait(queue: &Arc<Queue>, num: u32, old_uidx: u32, wait: Wait) -> Result<i32> {
    let max = if num == 0 { usize::MAX } else { num as usize };
    let kicks = queue.ready.lock().kicks();
    let check = || -> Result<bool> {
        let mut ready = queue.ready.lock();
        ready.flush_to_ring(max);
        let (unconsumed, uidx) = ready.ring_status()?;
        Ok(unconsumed > 0 || uidx != old_uidx || ready.kicks() != kicks)
    };
    let result = if check()? {
        WaitResult::Ready
    } else {
        wait.run(queue, || check().unwrap_or(true))
    };
    let (unconsumed, _) = queue.ready.lock().ring_status()?;
    reap(queue);
    if unconsumed == 0 && result == WaitResult::Interrupted {
        return Err(EINTR);
    }
    Ok(unconsumed as i32)
}

/// `kevent_commit()`: releases the ring slots up to `new_uidx` of wrap `over` and refills them
/// from the ready list. Returns the number of slots released.
pub(crate) fn commit(queue: &Arc<Queue>, new_uidx: u32, over: u32) -> Result<i32> {
    let (released, moved) = {
        let mut ready = queue.ready.lock();
        let released = ready.commit(new_uidx, over)?;
        (released, ready.flush_to_ring(usize::MAX))
    };
    if moved > 0 {
        queue.wake_waiters(1);
    }
    reap(queue);
    Ok(released as i32)
}
