// SPDX-License-Identifier: GPL-2.0

//! What a socket's kevent slot holds, shared by the sources that use it: the `KEVENT_SOCKET`
//! registrations its readiness hooks notify (`file.rs`) and the network AIO requests pending on
//! it (receives, `naio.rs`; sends, `send.rs`).

use super::{file::FileReg, naio::NaioReg, send::SendReg};
use crate::storage::{Lists, Watchers};
use kernel::list::List;

/// List id of a registration's place on its socket's storage.
pub(crate) const ON_SOCKET: u64 = 2;

/// The lists of one socket.
pub(crate) struct SocketLists {
    /// `KEVENT_SOCKET` registrations.
    pub(crate) readiness: List<FileReg, ON_SOCKET>,
    /// Pending receive requests, in submission order.
    pub(crate) receives: List<NaioReg, ON_SOCKET>,
    /// Pending send requests, in submission order.
    pub(crate) sends: List<SendReg, ON_SOCKET>,
}

impl Lists for SocketLists {
    fn new() -> Self {
        Self {
            readiness: List::new(),
            receives: List::new(),
            sends: List::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.readiness.is_empty() && self.receives.is_empty() && self.sends.is_empty()
    }
}

/// A socket's storage.
pub(crate) type SocketStorage = Watchers<SocketLists>;
