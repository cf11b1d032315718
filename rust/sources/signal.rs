// SPDX-License-Identifier: GPL-2.0

//! Signals as event sources (`KEVENT_SIGNAL`).
//!
//! A registration watches one signal number sent to the process that made it. The process's
//! kevent slot holds the list of its watchers ([`ProcessWatchers`]); the signal hook walks it for
//! every signal sent to the process, before the kernel decides whether the signal is ignored,
//! with the process's siglock held and interrupts off. `ret_data[0]` counts the deliveries
//! coalesced into one event and `ret_data[1]` is the last sender's pid. With
//! `KEVENT_SIGNAL_NOMASK` in the id the signal is consumed: it neither runs a handler nor stays
//! pending. The hook layer decides which signals may be consumed at all: never `SIGKILL`, the
//! stop signals, `SIGCONT` or a fault raised by the kernel; those are reported and delivered as
//! usual.
//!
//! Registrations belong to the program that made them: they end when the process exits and when
//! it calls `execve`, so a new program never has its signals observed or taken by a watcher it
//! did not make.

use super::Source;
use crate::{
    compat::{
        signal::{self, Task},
        slot::Slot,
        uapi::{self, Ukevent},
    },
    ctl::{self, Outcome},
    queue::{Queue, Registrations},
    registration::Registration,
    storage::{self, Watchers},
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    error::code::*,
    list::{
        impl_has_list_links, impl_list_arc_safe, impl_list_item, AtomicTracker, List, ListLinks,
        TryNewListArc,
    },
    prelude::*,
    sync::Arc,
};

/// List id of a signal registration's place on its process's storage.
pub(crate) const ON_PROCESS: u64 = 1;

/// A signal registration.
pub(crate) type SignalReg = Registration<SignalWatch>;
/// What a process's slot holds: its signal registrations.
pub(crate) type ProcessWatchers = Watchers<List<SignalReg, ON_PROCESS>>;

/// What a signal registration keeps.
#[pin_data]
pub(crate) struct SignalWatch {
    /// The signal number.
    signo: u32,
    /// Consume the signal (`KEVENT_SIGNAL_NOMASK`).
    nomask: bool,
    /// The registering process's slot, valid while `attached`.
    process: Slot,
    /// Whether it is on the process's list (changed under the storage lock).
    attached: AtomicBool,
    #[pin]
    links: ListLinks<ON_PROCESS>,
    #[pin]
    tracker: AtomicTracker<ON_PROCESS>,
}

impl_list_arc_safe! {
    impl ListArcSafe<ON_PROCESS> for SignalWatch { tracked_by tracker: AtomicTracker<ON_PROCESS>; }
    impl ListArcSafe<ON_PROCESS> for SignalReg { tracked_by watch: SignalWatch; }
}
impl_has_list_links! {
    impl HasListLinks<ON_PROCESS> for Registration<SignalWatch> { self.watch.links }
}
impl_list_item! {
    impl ListItem<ON_PROCESS> for SignalReg { using ListLinks; }
}

impl Source for SignalWatch {
    fn add(queue: &Arc<Queue>, regs: &mut Registrations, req: &Ukevent) -> Result<Outcome> {
        let nomask = req.id & uapi::SIGNAL_NOMASK != 0;
        let signo = u32::try_from(req.id & !uapi::SIGNAL_NOMASK).map_err(|_| EINVAL)?;
        if !signal::watchable(signo) || req.event != uapi::SIGNAL_DELIVERY {
            return Err(EINVAL);
        }
        let watch = try_pin_init!(SignalWatch {
            signo,
            nomask,
            process: signal::current_signal_slot(),
            attached: AtomicBool::new(false),
            links <- ListLinks::new(),
            tracker <- AtomicTracker::new(),
        }? Error);
        ctl::register::<Self>(queue, regs, req, watch, |reg| {
            storage::with_lock(|locked| {
                ProcessWatchers::attach(locked, &reg.watch.process, reg, |l| l)?;
                reg.watch.attached.store(true, Ordering::Relaxed);
                Ok(None)
            })?
        })
    }

    fn disarm(reg: &SignalReg) {
        // Only fails when the module is going away, when nothing is attached any more.
        let _ = storage::with_lock(|locked| {
            if reg.watch.attached.swap(false, Ordering::Relaxed) {
                ProcessWatchers::detach(locked, &reg.watch.process, reg, |l| l);
            }
        });
    }
}

/// The signal hook. Returns true to consume the signal.
pub(super) fn signal(watchers: &ProcessWatchers, sig: u32, sender: i32) -> bool {
    let mut consume = false;
    watchers.with(|list| {
        for reg in list.iter() {
            if reg.watch.signo != sig {
                continue;
            }
            consume |= reg.watch.nomask;
            Registration::notify(reg, |st| {
                st.count(1);
                st.ret_data[1] = sender as u32;
                true
            });
        }
    });
    consume
}

/// The process of `task` exits or executes a new program: its signal registrations go away.
pub(super) fn forget_process(task: &Task) {
    let slot = task.signal_slot();
    if slot.load::<ProcessWatchers>().is_null() {
        return;
    }
    let taken = storage::with_lock(|locked| {
        let taken = ProcessWatchers::take_all(locked, &slot);
        for reg in taken.iter() {
            reg.watch.attached.store(false, Ordering::Relaxed);
        }
        taken
    });
    if let Ok(taken) = taken {
        super::forget_all(taken);
    }
}
