// SPDX-License-Identifier: GPL-2.0

//! The event queue behind a kevent file descriptor.
//!
//! Locks: `registrations` (mutex) and `ready` (irqsave spinlock), in the module's lock order
//! (see the crate documentation). Harvesters sleep on `wait`; pollers (`poll`, epoll, and other
//! kevent queues watching this one with `KEVENT_POLL`) on `poll_wait`, a wait queue of another
//! lock class, taken at the queue's nesting level.

use crate::{
    compat::{
        file::{queue_from_fd, File, QueueFile, QueueFops, QueueRef},
        lock::{new_spinlock_irq, SpinLockIrq},
        poll::{PollTable, WaitQueue, EPOLLIN, EPOLLRDNORM},
        shared_pages::{vm_flags, SharedPages, Vma},
        user_gfp,
    },
    limits::{self, UserCount},
    nesting::Node,
    ready::{Ready, RingState, FLUSH_CHUNK},
    registration::{Key, Registration},
    sources::faio::Plug,
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    c_str,
    error::code::*,
    init::InPlaceInit,
    list::ListArc,
    new_mutex,
    prelude::*,
    rbtree::{Entry, RBTree, RBTreeNode, RBTreeNodeReservation},
    static_lock_class,
    sync::{Arc, Mutex},
};

/// A registration's node in its queue's tree.
pub(crate) type RegNode = RBTreeNode<Key, Arc<Registration>>;

/// The allocation of a tree node, kept for reuse.
type SpareNode = RBTreeNodeReservation<Key, Arc<Registration>>;

/// How many tree nodes of reaped registrations a queue keeps for reuse: enough for a batch of
/// requests in flight (the AIO benchmarks keep 128), so that a new AIO request or a re-added
/// `ONESHOT` registration finds its node allocated.
const SPARE_NODES: usize = 128;

/// The registrations of a queue, by key.
///
/// # Invariants
///
/// `spare[..nr_spare]` are `Some`, the rest of `spare` is `None`; `spare` holds at most
/// [`SPARE_NODES`] entries.
pub(crate) struct Registrations {
    /// Live registrations (and delivered `ONESHOT` ones until they are reaped).
    pub(crate) tree: RBTree<Key, Arc<Registration>>,
    /// The queue was released: nothing can be added.
    pub(crate) dead: bool,
    /// The nodes of reaped registrations, for [`Registrations::node`]. Empty until the first
    /// is kept: a queue that never reaps pays nothing for it.
    spare: KVec<Option<SpareNode>>,
    nr_spare: usize,
}

impl Registrations {
    fn new() -> Self {
        Self {
            tree: RBTree::new(),
            dead: false,
            spare: KVec::new(),
            nr_spare: 0,
        }
    }

    /// A tree node holding `reg` under `key`: a spare one if there is one, else a new one.
    pub(crate) fn node(&mut self, key: Key, reg: Arc<Registration>) -> Result<RegNode> {
        let spare = match self.nr_spare.checked_sub(1) {
            // INVARIANT: The last `Some` is taken and the count lowered with it.
            Some(last) => self
                .spare
                .get_mut(last)
                .and_then(Option::take)
                .inspect(|_| self.nr_spare = last),
            None => None,
        };
        let spare = match spare {
            Some(spare) => spare,
            None => SpareNode::new(user_gfp())?,
        };
        Ok(spare.into_node(key, reg))
    }

    /// Takes the registration under `key` out of the tree if `which` accepts it, and keeps the
    /// node's allocation for [`Registrations::node`] if there is room. Returns whether it was
    /// taken out.
    pub(crate) fn remove_if(
        &mut self,
        key: Key,
        which: impl FnOnce(&Registration) -> bool,
    ) -> bool {
        let Entry::Occupied(cur) = self.tree.entry(key) else {
            return false;
        };
        if !which(cur.get()) {
            return false;
        }
        let node = cur.remove_node().into_reservation();
        if let Some(slot) = self.spare.get_mut(self.nr_spare) {
            // INVARIANT: The first `None` becomes `Some` and the count grows with it.
            *slot = Some(node);
            self.nr_spare += 1;
        } else if self.spare.len() < SPARE_NODES && self.spare.push(Some(node), user_gfp()).is_ok()
        {
            // INVARIANT: Every entry was `Some`; the new last one is too, and counted. Without
            // room to grow, the node is freed instead (`push` dropped it).
            self.nr_spare += 1;
        }
        true
    }
}

/// One kevent queue.
#[pin_data]
pub(crate) struct Queue {
    /// Registrations by key; see the lock order in the module documentation.
    #[pin]
    pub(crate) registrations: Mutex<Registrations>,
    /// Ready list and ring producer.
    #[pin]
    pub(crate) ready: SpinLockIrq<Ready>,
    /// File AIO requests held by `KEVENT_CTL_PLUG`.
    #[pin]
    pub(crate) aio_plug: Plug,
    /// Harvesters (exclusive) wait here.
    #[pin]
    wait: WaitQueue,
    /// Pollers of the queue file wait here.
    #[pin]
    poll_wait: WaitQueue,
    /// The user whose registration limit this queue charges.
    pub(crate) user: Arc<UserCount>,
    /// Its place among queues watching queues.
    pub(crate) nest: Node,
    /// Entries of the ring, or 0 when the queue has no ring.
    ring_size: u32,
    /// Whether the ready list may hold something: see [`Queue::may_have_pending`].
    pending_hint: Arc<AtomicBool>,
}

impl Queue {
    /// Creates an empty queue, with a ring of `ring_size` entries unless it is 0. Its memory is
    /// charged to the caller's memory cgroup.
    pub(crate) fn new(ring_size: u32) -> Result<Arc<Self>> {
        let user = limits::current_user()?;
        let nest = Node::new()?;
        let ring = if ring_size == 0 {
            None
        } else {
            let pages = Arc::new(SharedPages::new(RingState::bytes(ring_size))?, user_gfp())?;
            Some(RingState::new(pages, ring_size))
        };
        let pending_hint = Arc::new(AtomicBool::new(false), user_gfp())?;
        let hint = pending_hint.clone();
        Arc::pin_init(
            pin_init!(Self {
                registrations <- new_mutex!(
                    Registrations::new(),
                    "Queue::registrations"
                ),
                ready <- new_spinlock_irq!(Ready::new(ring, hint), "Queue::ready"),
                pending_hint,
                aio_plug <- Plug::new(),
                wait <- WaitQueue::new(c_str!("Queue::wait"), static_lock_class!()),
                poll_wait <- WaitQueue::new(c_str!("Queue::poll_wait"), static_lock_class!()),
                user,
                nest,
                ring_size,
            }),
            user_gfp(),
        )
    }

    /// The queue open as `fd`, held for the duration of a system call: `EBADF` if `fd` is not
    /// open, `EINVAL` if it is not a kevent queue.
    pub(crate) fn from_fd(fd: i32) -> Result<QueueRef<Queue>> {
        queue_from_fd(fd)
    }

    /// False only if the ready list was empty at some moment between the call and its return
    /// (the ready state keeps the flag: see `Ready`'s `hint`). Read without the lock, as
    /// `epoll_wait` reads `ep_events_available`: an event that becomes ready while it is read
    /// counts as ready after it.
    pub(crate) fn may_have_pending(&self) -> bool {
        self.pending_hint.load(Ordering::Relaxed)
    }

    /// Whether the queue was created with a ring.
    pub(crate) fn has_ring(&self) -> bool {
        self.ring_size != 0
    }

    /// The wait queue of harvesters.
    pub(crate) fn wait_queue(&self) -> &WaitQueue {
        &self.wait
    }

    /// Wakes every poller and `nr_exclusive` harvesters (0: all). Called right after a change
    /// made under the ready lock (an event queued or published, a kick, the shutdown): harvesters
    /// and pollers queue themselves first and then check under that lock, so the lock orders
    /// the check for waiters and no barrier is needed (see `WaitQueue::is_active_after_lock`).
    pub(crate) fn wake_waiters(&self, nr_exclusive: i32) {
        if self.wait.is_active_after_lock() {
            self.wait.wake_up(nr_exclusive, EPOLLIN | EPOLLRDNORM);
        }
        if self.poll_wait.is_active_after_lock() {
            self.poll_wait
                .wake_up_nested(EPOLLIN | EPOLLRDNORM, self.nest.level());
        }
    }

    /// Moves up to `max` ready events into free ring slots, a chunk per hold of the ready lock.
    /// Returns how many moved.
    pub(crate) fn flush_to_ring(&self, max: usize) -> usize {
        let mut moved = 0;
        while moved < max {
            let chunk = (max - moved).min(FLUSH_CHUNK);
            let n = self.ready.lock().flush_to_ring(chunk);
            moved += n;
            if n < chunk {
                break;
            }
        }
        moved
    }

    /// Removes `reg`, whose source went away (its file was closed, its process exited, its
    /// POSIX timer was deleted), from the queue.
    pub(crate) fn forget(&self, reg: &Registration) {
        let mut regs = self.registrations.lock();
        if !regs.dead && regs.remove_if(reg.key, |cur| cur.is(reg)) {
            self.user.uncharge(1);
        }
        // Still under the lock: a harvester confirming a file event sees it detached.
        self.retire(reg);
    }

    /// Stops `reg`'s source and takes it off the ready list for good. Called in process
    /// context with the registrations locked and without the ready lock.
    pub(crate) fn retire(&self, reg: &Registration) {
        reg.disarm();
        self.ready.lock().detach(reg);
    }

    /// Removes delivered `ONESHOT` registrations from the tree. Called with the tree locked.
    pub(crate) fn reap(&self, regs: &mut Registrations) {
        // All of them in one hold of the ready lock; those delivered meanwhile wait for the next
        // reap.
        let mut reaped = self.ready.lock().take_reaped();
        while let Some(reg) = reaped.pop_front().map(ListArc::into_arc) {
            // The key may have been taken over by a newer registration, which stays.
            if regs.remove_if(reg.key, |cur| cur.is(&reg)) {
                self.user.uncharge(1);
            }
            reg.disarm();
            Registration::reaped(self, reg);
        }
    }
}

impl QueueFile for Queue {
    fn fops() -> &'static QueueFops<Self> {
        &crate::QUEUE_FOPS
    }

    fn poll(&self, file: &File, table: &PollTable) -> u32 {
        table.register_wait(file, &self.poll_wait);
        let mut ready = self.ready.lock();
        let in_ring = ready.ring_status().map_or(0, |(unconsumed, _)| unconsumed);
        if ready.pending() > 0 || in_ring > 0 {
            EPOLLIN | EPOLLRDNORM
        } else {
            0
        }
    }

    fn mmap(&self, vma: &Vma) -> Result {
        let pages: Arc<SharedPages> = self.ready.lock().ring_pages().ok_or(ENODEV)?;
        let flags = vma.flags();
        if flags & vm_flags::SHARED == 0 {
            // A private copy would never see the kernel's updates.
            return Err(EINVAL);
        }
        if flags & vm_flags::EXEC != 0 {
            return Err(EPERM);
        }
        if vma.end() - vma.start() > pages.len() {
            return Err(EINVAL);
        }
        // Never executable, not inherited by `fork` (a child maps the queue again if it wants
        // the ring), never grown.
        vma.update_flags(vm_flags::DONTCOPY | vm_flags::DONTEXPAND, vm_flags::MAYEXEC);
        pages.map_into(vma)
    }

    fn release(&self) {
        let tree = {
            let mut regs = self.registrations.lock();
            regs.dead = true;
            core::mem::replace(&mut regs.tree, RBTree::new())
        };
        // Once dead, the queue ignores notifications and its lists are empty: the registrations
        // only need their sources stopped.
        let pages = self.ready.lock().shutdown();
        let mut count = 0;
        for reg in tree.values() {
            reg.disarm();
            count += 1;
        }
        self.user.uncharge(count);
        // Held file AIO requests were disarmed with the others.
        self.aio_plug.close();
        drop(tree);
        drop(pages);
        self.wake_waiters(0);
    }
}
