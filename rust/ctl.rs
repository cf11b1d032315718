// SPDX-License-Identifier: GPL-2.0

//! `kevent_ctl()`: batched ADD, REMOVE, MODIFY and READY; PLUG and UNPLUG of file AIO
//! ([`faio::Plug`](crate::sources::faio::Plug)).
//!
//! Every entry is processed on its own. An entry that failed is marked `BROKEN | DONE` with
//! `-errno` in `ret_data[1]`; an ADD whose event is ready at once is marked `DONE` and, unless
//! it asks for `ALWAYS_QUEUE`, not kept. Those entries are moved to the front of the array,
//! which is copied back, and their number is returned (the 2006 interface).

use crate::{
    compat::{
        task::cond_resched,
        uapi::{self, Ukevent},
        user_gfp,
    },
    queue::{Queue, RegNode, Registrations},
    registration::{Key, Registration, Report},
    sources::{self, Cancel, Source},
};
use kernel::{
    error::code::*,
    init::PinInit,
    prelude::*,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

/// What happened to one entry.
pub(crate) enum Outcome {
    /// Done, nothing to report.
    Quiet,
    /// Report it as complete (ready at ADD), with the result of a file event.
    Done(Option<Report>),
    /// Report the error.
    Failed(Error),
}

/// Entries read, processed and written back at a time: a batch of up to
/// `KEVENT_MAX_CTL_BATCH` entries never needs a large contiguous allocation, and between chunks
/// the registrations mutex is released and the task may be rescheduled.
const CHUNK: usize = 64;

/// Runs `kevent_ctl(queue, cmd, num, arg)`.
///
/// Entries take effect in order, chunk by chunk. The array is checked to be readable and
/// writable first, so `EFAULT` changes nothing, unless another thread unmaps the array during
/// the call (then the entries before the fault have taken effect).
pub(crate) fn ctl(queue: &Arc<Queue>, cmd: u32, num: u32, arg: UserPtr) -> Result<i32> {
    if cmd == uapi::CTL_PLUG || cmd == uapi::CTL_UNPLUG {
        // They take no entries.
        if num != 0 {
            return Err(EINVAL);
        }
        return Ok(if cmd == uapi::CTL_PLUG {
            queue.aio_plug.plug()?;
            0
        } else {
            queue.aio_plug.unplug() as i32
        });
    }
    if cmd > uapi::CTL_READY || num > uapi::MAX_CTL_BATCH {
        return Err(EINVAL);
    }
    if num == 0 {
        if cmd == uapi::CTL_READY {
            // As in the original: wake one waiter although nothing is ready.
            queue.ready.lock().kick();
            queue.wake_waiters(1);
        }
        return Ok(0);
    }
    if arg == 0 {
        return Err(EFAULT);
    }
    let num = num as usize;
    let mut buf = KVec::from_elem(Ukevent::default(), CHUNK.min(num), user_gfp())?;
    let at = |index: usize| arg.checked_add(index * uapi::UKEVENT_SIZE).ok_or(EFAULT);
    // First make sure the whole array can be read and written, so that a bad pointer fails the
    // call before any entry takes effect (the entries are written back unchanged).
    let mut done = 0usize;
    while done < num {
        let entries = &mut buf[..CHUNK.min(num - done)];
        read_entries(at(done)?, entries)?;
        write_entries(at(done)?, entries)?;
        done += entries.len();
    }
    let mut reported = 0usize;
    let mut done = 0usize;
    while done < num {
        let entries = &mut buf[..CHUNK.min(num - done)];
        read_entries(at(done)?, entries)?;
        let front = run_chunk(queue, cmd, entries)?;
        // Reported entries go to the front of the whole array, which only overwrites entries
        // already read (`reported <= done`).
        write_entries(at(reported)?, &entries[..front])?;
        reported += front;
        done += entries.len();
        if done < num {
            cond_resched();
        }
    }
    Ok(reported as i32)
}

/// Reads `entries.len()` entries from user address `ptr`.
fn read_entries(ptr: UserPtr, entries: &mut [Ukevent]) -> Result {
    let mut reader = UserSlice::new(ptr, entries.len() * uapi::UKEVENT_SIZE).reader();
    for e in entries.iter_mut() {
        *e = reader.read::<Ukevent>()?;
    }
    Ok(())
}

/// Writes `entries` to user address `ptr`.
fn write_entries(ptr: UserPtr, entries: &[Ukevent]) -> Result {
    let mut writer = UserSlice::new(ptr, entries.len() * uapi::UKEVENT_SIZE).writer();
    for e in entries {
        writer.write(e)?;
    }
    Ok(())
}

/// Processes one chunk of entries with the registrations locked; moves the entries to report
/// to its front, in order, and returns their number.
fn run_chunk(queue: &Arc<Queue>, cmd: u32, entries: &mut [Ukevent]) -> Result<usize> {
    let mut regs = queue.registrations.lock();
    if regs.dead {
        return Err(EBADF);
    }
    queue.reap(&mut regs);
    let mut reported = 0;
    for i in 0..entries.len() {
        let outcome = match cmd {
            uapi::CTL_ADD => add(queue, &mut regs, &entries[i]),
            uapi::CTL_REMOVE => remove(queue, &mut regs, &entries[i]),
            uapi::CTL_MODIFY => modify(queue, &regs, &entries[i]),
            _ => make_ready(&regs, &entries[i]),
        };
        let flags = match outcome {
            Outcome::Quiet => continue,
            Outcome::Done(report) => {
                let (flags, data) = report.unwrap_or((0, entries[i].ret_data));
                entries[i].ret_data = data;
                uapi::RET_DONE | flags
            }
            Outcome::Failed(e) => {
                entries[i].ret_data[1] = e.to_errno() as u32;
                uapi::RET_BROKEN | uapi::RET_DONE
            }
        };
        entries[i].ret_flags = flags;
        // Reported entries keep their order; the others are not written back.
        entries.swap(reported, i);
        reported += 1;
    }
    Ok(reported)
}

fn add(queue: &Arc<Queue>, regs: &mut Registrations, req: &Ukevent) -> Outcome {
    let added = if req.req_flags & !uapi::REQ_MASK != 0 {
        Err(EINVAL)
    } else {
        sources::add(queue, regs, req)
    };
    added.unwrap_or_else(Outcome::Failed)
}

/// Creates, arms and inserts the registration that `req` asks for, with `watch` as its
/// source's state; `arm` starts watching and returns the readiness at once, if any. Used by
/// every source's ADD and by `timer_create()`.
///
/// Only the creation and `arm` depend on the source; the checks before and the insertion after
/// are shared by every source ([`admit`], [`insert`]).
pub(crate) fn register<S: Source>(
    queue: &Arc<Queue>,
    regs: &mut Registrations,
    req: &Ukevent,
    watch: impl PinInit<S, Error>,
    arm: impl FnOnce(&Arc<Registration<S>>) -> Result<Option<Report>>,
) -> Result<Outcome> {
    register_made(
        queue,
        regs,
        req,
        || Registration::new(queue, req, watch),
        arm,
    )
}

/// [`register`] of a registration that `make` provides (a new one, or one of the source's
/// renewed for `req`: [`Registration::renew`]). `make` is only called once the checks have
/// passed.
pub(crate) fn register_made<S: Source>(
    queue: &Arc<Queue>,
    regs: &mut Registrations,
    req: &Ukevent,
    make: impl FnOnce() -> Result<Arc<Registration<S>>>,
    arm: impl FnOnce(&Arc<Registration<S>>) -> Result<Option<Report>>,
) -> Result<Outcome> {
    if let Some(outcome) = admit(queue, regs, req, !S::REQUEST_KEYS)? {
        return Ok(outcome);
    }
    let reg = make().inspect_err(|_| queue.user.uncharge(1))?;
    // Everything that can fail is done before the registration is armed and may be notified.
    let node = new_node(queue, regs, reg.clone())?;
    let initial = arm(&reg).inspect_err(|_| discard(queue, &*reg))?;
    insert(queue, regs, req, reg, node, initial)
}

/// The checks of an ADD before a registration is created: `EEXIST`, ready at ADD and not to be
/// kept (`Some(Done)`: nothing is registered), the user's limit (charged on `Ok(None)`).
/// `search`: whether the key may be taken already (not for [`Source::REQUEST_KEYS`]).
fn admit(
    queue: &Queue,
    regs: &Registrations,
    req: &Ukevent,
    search: bool,
) -> Result<Option<Outcome>> {
    let existing = if search {
        regs.tree.get(&Key::of(req))
    } else {
        None
    };
    if let Some(existing) = existing {
        if !existing.state.access(&queue.ready.lock()).detached {
            return Err(EEXIST);
        }
    }
    if req.req_flags & uapi::REQ_READY != 0 && req.req_flags & uapi::REQ_ALWAYS_QUEUE == 0 {
        // Ready at ADD and not to be kept: report it, register nothing.
        return Ok(Some(Outcome::Done(None)));
    }
    queue.user.charge(1)?;
    Ok(None)
}

/// The tree node of a new registration, made before it is armed; discards it on failure.
fn new_node(queue: &Queue, regs: &mut Registrations, reg: Arc<Registration>) -> Result<RegNode> {
    let key = reg.key;
    let undo = reg.clone();
    regs.node(key, reg).inspect_err(|_| discard(queue, &undo))
}

/// Completes an ADD of armed registration `reg` (whose tree node is `node`) whose readiness at
/// once is `initial`: reports it
/// and drops the registration if it is ready and not to be kept, or inserts it, lets its
/// notifications through and queues what is ready.
fn insert(
    queue: &Queue,
    regs: &mut Registrations,
    req: &Ukevent,
    reg: Arc<Registration>,
    node: RegNode,
    initial: Option<Report>,
) -> Result<Outcome> {
    let always = req.req_flags & uapi::REQ_ALWAYS_QUEUE != 0;
    if let Some(report) = initial.filter(|_| !always) {
        // Ready at ADD and not to be kept (the 2006 semantics).
        discard(queue, &reg);
        return Ok(Outcome::Done(Some(report)));
    }
    if let Some(old) = regs.tree.insert(node) {
        // A delivered ONESHOT registration with the same key was waiting to be reaped: it is
        // already detached and will not be counted twice when reaped (it is no longer in the
        // tree).
        queue.user.uncharge(1);
        old.to_key_value().1.disarm();
    }
    let reg = reg.as_arc_borrow();
    Registration::activate(reg);
    if req.req_flags & uapi::REQ_READY != 0 {
        Registration::fire(reg, |st| {
            st.count(1);
            true
        });
    }
    if let Some(report) = initial {
        Registration::fire(reg, |st| {
            st.report(report);
            true
        });
    }
    Ok(Outcome::Quiet)
}

/// Undoes a registration that was not kept.
fn discard(queue: &Queue, reg: &Registration) {
    queue.retire(reg);
    queue.user.uncharge(1);
}

fn remove(queue: &Arc<Queue>, regs: &mut Registrations, req: &Ukevent) -> Outcome {
    let key = Key::of(req);
    let Some(reg) = regs.tree.get(&key).cloned() else {
        return Outcome::Failed(ENOENT);
    };
    let was_live = !reg.state.access(&queue.ready.lock()).detached;
    if was_live {
        // A request is cancelled into its one completion rather than removed.
        match reg.watch.cancel(&reg) {
            Cancel::Remove => {}
            Cancel::Complete(report) => {
                Registration::fire(reg.as_arc_borrow(), |st| {
                    st.report(report);
                    true
                });
                return Outcome::Quiet;
            }
            Cancel::Keep => return Outcome::Quiet,
        }
    }
    // Still there: the registrations stayed locked.
    regs.remove_if(key, |_| true);
    queue.retire(&reg);
    queue.user.uncharge(1);
    if was_live {
        Outcome::Quiet
    } else {
        Outcome::Failed(ENOENT)
    }
}

fn modify(queue: &Arc<Queue>, regs: &Registrations, req: &Ukevent) -> Outcome {
    let key = Key::of(req);
    if req.req_flags & !uapi::REQ_MASK != 0 {
        return Outcome::Failed(EINVAL);
    }
    let Some(reg) = regs.tree.get(&key) else {
        return Outcome::Failed(ENOENT);
    };
    let mut ready = queue.ready.lock();
    let st = reg.state.access_mut(&mut ready);
    if st.detached {
        return Outcome::Failed(ENOENT);
    }
    if let Err(e) = reg.watch.modify(st, req) {
        return Outcome::Failed(e);
    }
    st.event = req.event;
    st.req_flags = req.req_flags;
    st.user = req.user;
    ready.enable(reg);
    drop(ready);
    // A source whose events are confirmed reports one that is ready now at once, as after ADD
    // with `ALWAYS_QUEUE`.
    if reg.confirmed {
        if let Some(report) = reg.watch.confirm(regs, req.event) {
            Registration::fire(reg.as_arc_borrow(), |st| {
                st.report(report);
                true
            });
        }
    }
    Outcome::Quiet
}

fn make_ready(regs: &Registrations, req: &Ukevent) -> Outcome {
    let key = Key::of(req);
    let Some(reg) = regs.tree.get(&key) else {
        return Outcome::Failed(ENOENT);
    };
    Registration::fire(reg.as_arc_borrow(), |st| {
        st.count(1);
        st.ret_data[1] = req.ret_data[1];
        true
    });
    Outcome::Quiet
}
