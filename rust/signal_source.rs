// SPDX-License-Identifier: GPL-2.0

//! Signals as event sources (`KEVENT_SIGNAL`).
//!
//! A registration watches one signal number sent to the process that made it. The process's
//! kevent slot holds the list of its watchers; the signal hook walks it for every signal sent to
//! the process, before the kernel decides whether the signal is ignored, with the process's
//! siglock held and interrupts off. `ret_data[0]` counts the deliveries coalesced into one
//! event and `ret_data[1]` is the last sender's pid. With `KEVENT_SIGNAL_NOMASK` in the id the
//! signal is consumed: it neither runs a handler nor stays pending. The hook layer decides which
//! signals may be consumed at all: never `SIGKILL`, the stop signals, `SIGCONT` or a fault raised
//! by the kernel; those are reported and delivered as usual.
//!
//! Registrations belong to the program that made them: they end when the process exits and when
//! it calls `execve`, so a new program never has its signals observed or taken by a watcher it
//! did not make.

use crate::{
    compat::{
        signal::{self, Task},
        uapi::{self, Ukevent},
    },
    registration::{Registration, Source},
    storage::{self, Watchers},
};
use kernel::{error::code::*, prelude::*};

/// Checks an ADD of `KEVENT_SIGNAL` and returns its source.
pub(crate) fn source_of(req: &Ukevent) -> Result<Source> {
    let nomask = req.id & uapi::SIGNAL_NOMASK != 0;
    let signo = u32::try_from(req.id & !uapi::SIGNAL_NOMASK).map_err(|_| EINVAL)?;
    if !signal::watchable(signo) || req.event != uapi::SIGNAL_DELIVERY {
        return Err(EINVAL);
    }
    Ok(Source::Signal {
        signo,
        nomask,
        process: signal::current_signal_slot(),
    })
}

/// The signal hook. Returns true to consume the signal.
pub(crate) fn signal(watchers: &Watchers, sig: u32, sender: i32) -> bool {
    let mut consume = false;
    watchers.for_each(|reg| {
        let Source::Signal { signo, nomask, .. } = reg.source else {
            return;
        };
        if signo != sig {
            return;
        }
        consume |= nomask;
        Registration::fire(reg, |st| {
            st.ret_data[0] = st.ret_data[0].saturating_add(1);
            st.ret_data[1] = sender as u32;
            true
        });
    });
    consume
}

/// The process of `task` exits or executes a new program: its signal registrations go away.
pub(crate) fn forget_process(task: &Task) {
    let slot = task.signal_slot();
    if slot.load::<Watchers>().is_null() {
        return;
    }
    if let Ok(taken) = storage::take_process(&slot) {
        storage::forget_all(taken);
    }
}
