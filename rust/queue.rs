// SPDX-License-Identifier: GPL-2.0

//! The event queue behind a kevent file descriptor.

use crate::compat::{
    file::{File, QueueFile},
    poll::{PollTable, WaitQueue},
};
use kernel::{c_str, init::InPlaceInit, prelude::*, static_lock_class, sync::Arc};

/// One kevent queue.
#[pin_data]
pub(crate) struct Queue {
    /// Pollers of the queue file (`poll`, `select`, `epoll`) wait here.
    #[pin]
    pollers: WaitQueue,
    /// Entries of the mmap'd ring, or 0 when the queue has no ring.
    ring_size: u32,
}

impl Queue {
    /// Creates an empty queue; its memory is charged to the caller's memory cgroup.
    pub(crate) fn new(ring_size: u32) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                pollers <- WaitQueue::new(c_str!("kevent_queue_pollers"), static_lock_class!()),
                ring_size,
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// Whether the queue was created with a ring.
    pub(crate) fn has_ring(&self) -> bool {
        self.ring_size != 0
    }
}

impl QueueFile for Queue {
    fn poll(&self, file: &File, table: &PollTable) -> u32 {
        table.register_wait(file, &self.pollers);
        // No event source exists yet, so nothing is ever ready.
        0
    }
}
