// SPDX-License-Identifier: GPL-2.0

//! Timers (`KEVENT_TIMER`): the id is the period (`id.raw[0]` seconds, `id.raw[1]`
//! nanoseconds); periodic unless `ONESHOT` at ADD. An hrtimer embedded in the registration fires
//! in hard-IRQ context and counts the expirations coalesced into one event in `ret_data[0]`.

use super::Source;
use crate::{
    compat::{
        hrtimer::{impl_has_hr_timer, HrTimer, HrTimerCallback},
        uapi::{self, Ukevent},
    },
    ctl::{self, Outcome},
    queue::{Queue, Registrations},
    registration::{Registration, State},
};
use kernel::{
    error::code::*,
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// Nanoseconds in a second.
const NSEC_PER_SEC: u32 = 1_000_000_000;

/// What a timer registration keeps.
#[pin_data]
pub(crate) struct Timer {
    /// The period.
    interval_ns: i64,
    /// Whether it re-arms itself after each expiry.
    periodic: bool,
    #[pin]
    timer: HrTimer,
}

impl_has_hr_timer!(Registration<Timer>, watch.timer);

impl Source for Timer {
    fn add(queue: &Arc<Queue>, regs: &mut Registrations, req: &Ukevent) -> Result<Outcome> {
        let (sec, nsec) = (req.id_lo(), req.id_hi());
        if req.event & !uapi::TIMER_FIRED != 0 || req.event == 0 || nsec >= NSEC_PER_SEC {
            return Err(EINVAL);
        }
        let mut interval_ns = i64::from(sec) * i64::from(NSEC_PER_SEC) + i64::from(nsec);
        if interval_ns == 0 {
            return Err(EINVAL);
        }
        let periodic = req.req_flags & uapi::REQ_ONESHOT == 0;
        if periodic {
            // A period of a few nanoseconds would keep a CPU in the timer interrupt.
            interval_ns = interval_ns.max(uapi::TIMER_MIN_PERIOD_NS);
        }
        let watch = try_pin_init!(Timer {
            interval_ns,
            periodic,
            timer <- HrTimer::new::<Registration<Timer>>(),
        }? Error);
        ctl::register::<Self>(queue, regs, req, watch, |reg| {
            reg.watch.timer.start(interval_ns);
            Ok(None)
        })
    }

    fn disarm(reg: &Registration<Self>) {
        reg.watch.timer.cancel();
    }

    /// `MODIFY` restarts the timer, as `timerfd_settime` re-arms a timerfd: its next expiry is
    /// one period from now (and `MODIFY` re-enables a `DISPATCH`-disabled one). The period and
    /// periodicity stay those of the ADD (the id is the period). Runs under the ready lock,
    /// which the expiry callback also takes: restarting does not wait for a running callback
    /// (the hrtimer base lock is released around callbacks, so the order is ready lock, then
    /// base lock, never the reverse).
    fn modify(&self, st: &State, req: &Ukevent) -> Result {
        if (st.req_flags ^ req.req_flags) & uapi::REQ_ONESHOT != 0 {
            return Err(EINVAL);
        }
        self.timer.start(self.interval_ns);
        Ok(())
    }
}

impl HrTimerCallback for Registration<Timer> {
    fn expired(this: ArcBorrow<'_, Self>, timer: &HrTimer) -> bool {
        let (interval_ns, periodic) = (this.watch.interval_ns, this.watch.periodic);
        let periods = if periodic {
            timer.forward_now(interval_ns)
        } else {
            1
        };
        let expirations = u32::try_from(periods).unwrap_or(u32::MAX);
        Registration::notify(this, |st| {
            st.count(expirations);
            true
        });
        periodic
    }
}
