// SPDX-License-Identifier: GPL-2.0

//! User events (`KEVENT_UNOTIFY`): nothing in the kernel makes them ready; `KEVENT_CTL_READY`
//! does, counting into `ret_data[0]` and passing `ret_data[1]` through.

use super::Source;
use crate::{
    compat::uapi::Ukevent,
    ctl::{self, Outcome},
    queue::{Queue, Registrations},
    registration::Registration,
};
use kernel::{prelude::*, sync::Arc};

/// A user event keeps nothing.
pub(crate) struct UserEvent;

impl Source for UserEvent {
    fn add(queue: &Arc<Queue>, regs: &mut Registrations, req: &Ukevent) -> Result<Outcome> {
        ctl::register::<Self>(queue, regs, req, UserEvent, |_| Ok(None))
    }

    fn disarm(_reg: &Registration<Self>) {}
}
