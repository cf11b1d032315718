// SPDX-License-Identifier: GPL-2.0

//! Wait queues that can be polled, and poll tables.
//!
//! C header: [`include/linux/wait.h`](srctree/include/linux/wait.h) and
//! [`include/linux/poll.h`](srctree/include/linux/poll.h).

use super::{file::File, rcu, user_gfp};
use core::{
    marker::PhantomPinned,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{
    bindings,
    init::PinInit,
    prelude::*,
    sync::{Arc, ArcBorrow, LockClassKey},
    types::Opaque,
};

/// Poll mask bits.
pub(crate) const EPOLLIN: u32 = bindings::EPOLLIN;
/// Poll mask bits.
pub(crate) const EPOLLRDNORM: u32 = bindings::EPOLLRDNORM;
/// Poll mask bits.
pub(crate) const EPOLLOUT: u32 = bindings::EPOLLOUT;
/// Poll mask bits.
pub(crate) const EPOLLWRNORM: u32 = bindings::EPOLLWRNORM;
/// Poll mask bits.
pub(crate) const EPOLLERR: u32 = bindings::EPOLLERR;
/// Poll mask bits.
pub(crate) const EPOLLHUP: u32 = bindings::EPOLLHUP;
/// Poll mask bits.
pub(crate) const EPOLLRDHUP: u32 = bindings::EPOLLRDHUP;
/// Wake-up key of a wait queue that is about to be freed.
const POLLFREE: u32 = bindings::POLLFREE;

/// A wait queue head that sleepers and pollers (`poll`, `select`, `epoll`) can wait on.
///
/// Unlike the 6.12 `CondVar`, it exposes itself to poll tables, like `PollCondVar` of newer
/// kernels.
///
/// # Invariants
///
/// `inner` is an initialised `struct wait_queue_head` that is never moved.
#[pin_data]
pub(crate) struct WaitQueue {
    #[pin]
    inner: Opaque<bindings::wait_queue_head>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: A `struct wait_queue_head` is protected by its own spinlock and may be used from any
// thread.
unsafe impl Send for WaitQueue {}
// SAFETY: As above, all operations on it are thread safe.
unsafe impl Sync for WaitQueue {}

/// Why [`WaitQueue::wait_until`] returned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitResult {
    /// The condition became true.
    Ready,
    /// The deadline passed.
    TimedOut,
    /// A signal is pending.
    Interrupted,
}

impl WaitQueue {
    /// Creates an initialiser for a wait queue with the given lockdep name and class.
    pub(crate) fn new(name: &'static CStr, key: &'static LockClassKey) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes; `name` and `key` live forever, and
            // `LockClassKey` is a transparent wrapper of `struct lock_class_key`.
            inner <- Opaque::ffi_init(|slot| unsafe {
                bindings::__init_waitqueue_head(
                    slot,
                    name.as_char_ptr(),
                    key as *const LockClassKey as *mut bindings::lock_class_key,
                )
            }),
            _pin: PhantomPinned,
        })
    }

    fn as_ptr(&self) -> *mut bindings::wait_queue_head {
        self.inner.get()
    }

    /// Sleeps as an exclusive waiter until `ready()` returns true, the absolute
    /// `CLOCK_MONOTONIC` `deadline` (nanoseconds) passes, or a signal is pending.
    ///
    /// `ready()` is called after the task is queued and marked sleeping, so a wake-up that
    /// follows a state change it checks cannot be lost. It must not sleep.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<i64>,
        mut ready: impl FnMut() -> bool,
    ) -> WaitResult {
        let entry = Opaque::<bindings::wait_queue_entry>::uninit();
        // SAFETY: `entry` lives on this stack frame until `finish_wait` below removes it from the
        // queue, and is not moved in between.
        unsafe { bindings::init_wait_entry(entry.get(), 0) };
        let result = loop {
            // SAFETY: The queue head is initialised (type invariant), the entry is initialised.
            unsafe {
                bindings::prepare_to_wait_exclusive(
                    self.as_ptr(),
                    entry.get(),
                    bindings::TASK_INTERRUPTIBLE as i32,
                )
            };
            if ready() {
                break WaitResult::Ready;
            }
            if super::task::signal_pending() {
                break WaitResult::Interrupted;
            }
            match deadline {
                // SAFETY: The task is marked sleeping and queued; `schedule` may be called.
                None => unsafe { bindings::schedule() },
                Some(mut expires) => {
                    // Slack as `epoll_wait` gives its sleeps.
                    let slack = super::task::timer_slack(expires - super::task::ktime_get());
                    // SAFETY: `expires` is a valid absolute time; the task is queued as above.
                    let ret = unsafe {
                        bindings::schedule_hrtimeout_range(
                            &mut expires,
                            slack,
                            bindings::hrtimer_mode_HRTIMER_MODE_ABS,
                        )
                    };
                    if ret == 0 {
                        break if ready() {
                            WaitResult::Ready
                        } else {
                            WaitResult::TimedOut
                        };
                    }
                }
            }
        };
        // SAFETY: The entry was queued on this head by `prepare_to_wait_exclusive`.
        unsafe { bindings::finish_wait(self.as_ptr(), entry.get()) };
        result
    }

    /// Wakes up every poller and `nr_exclusive` sleepers (0: all of them) with poll mask `mask`.
    pub(crate) fn wake_up(&self, nr_exclusive: i32, mask: u32) {
        // SAFETY: The wait queue head is initialised (type invariant). The key is the poll mask
        // encoded as a pointer, as `wake_up_poll()` does.
        unsafe {
            bindings::__wake_up(
                self.as_ptr(),
                bindings::TASK_NORMAL,
                nr_exclusive,
                mask as usize as *mut core::ffi::c_void,
            )
        };
    }

    /// Wakes up every poller and sleeper with poll mask `mask`, taking the queue's lock with
    /// lockdep nesting level `subclass`: for a wait queue of one lock class whose wake-up may
    /// run inside the wake-up of another queue of the same class (queues watching queues), the
    /// level says how deep it is, as epoll does for its `poll_wait`.
    pub(crate) fn wake_up_nested(&self, mask: u32, subclass: u32) {
        let head = self.as_ptr();
        // SAFETY: The wait queue head is initialised (type invariant), so its lock is too.
        let flags = unsafe {
            bindings::spin_lock_irqsave_nested(&mut (*head).lock, subclass.min(7) as i32)
        };
        // SAFETY: The queue's lock is held, as `__wake_up_locked_key` requires; the key is the
        // poll mask encoded as a pointer, as `wake_up_locked_poll()` does.
        unsafe {
            bindings::__wake_up_locked_key(
                head,
                bindings::TASK_NORMAL,
                mask as usize as *mut core::ffi::c_void,
            )
        };
        // SAFETY: Taken above, with these flags.
        unsafe { bindings::spin_unlock_irqrestore(&mut (*head).lock, flags) };
    }

    /// Whether anyone (a sleeper or a poller) waits on the queue, without a memory barrier
    /// (`waitqueue_active`).
    ///
    /// Only exact when the caller has just changed, under some lock, the state that waiters
    /// check under that same lock after queueing themselves: a waiter that checked before the
    /// change released the lock after queueing itself, and the caller acquired it later, so the
    /// caller sees it queued (epoll's callback relies on `ep->lock` the same way). Otherwise
    /// a check with a full barrier (`wq_has_sleeper`) is needed.
    pub(crate) fn is_active_after_lock(&self) -> bool {
        // SAFETY: The wait queue head is initialised (type invariant), so `head` is a valid list
        // head; reading its `next` pointer races only with (un)queueing, as `READ_ONCE` allows.
        unsafe {
            let head = core::ptr::addr_of_mut!((*self.as_ptr()).head);
            core::ptr::read_volatile(core::ptr::addr_of!((*head).next)) != head
        }
    }
}

/// A poll table passed to a file's `poll` operation.
///
/// # Invariants
///
/// `ptr` is null or a valid `poll_table` for the duration of the `poll` call.
pub(crate) struct PollTable {
    ptr: *mut bindings::poll_table,
}

impl PollTable {
    /// Wraps the poll table of a `poll` callback.
    ///
    /// # Safety
    ///
    /// `ptr` must be null or valid until the `poll` callback returns.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::poll_table) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self { ptr }
    }

    /// Registers the poller of `file` on `wq`, so that a wake-up on `wq` reaches it.
    pub(crate) fn register_wait(&self, file: &File, wq: &WaitQueue) {
        // SAFETY: `file` is valid, `self.ptr` is null or valid (type invariant) and `wq` is an
        // initialised wait queue that outlives the poller: pollers drop their entries before the
        // file, which owns the queue, is released.
        unsafe { bindings::poll_wait(file.as_ptr(), wq.as_ptr(), self.ptr) };
    }
}

/// Something woken through [`PollEntries`] when a watched file's wait queue is woken.
pub(crate) trait PollWaiter: Send + Sync + Sized {
    /// Called with the wait queue's lock held, in any context: must not sleep. `key` is the
    /// poll mask passed to the wake-up, 0 when the waker did not say.
    fn woken(this: ArcBorrow<'_, Self>, key: u32);
}

/// One entry on a watched file's wait queue.
///
/// # Invariants
///
/// - `wait` is initialised with [`wake_entry`] as its function.
/// - `head` is the wait queue the entry is on, or null once the queue announced that it goes
///   away (`POLLFREE`) and the entry was taken off it.
/// - `owner` comes from `Arc::into_raw` and that reference belongs to the entry.
#[repr(C)]
struct WaitEntry<T> {
    wait: Opaque<bindings::wait_queue_entry>,
    head: AtomicPtr<bindings::wait_queue_head>,
    owner: *const T,
    /// The watcher's next entry on the same file (a file may use several wait queues).
    next: Option<KBox<WaitEntry<T>>>,
}

/// The wait queue entries that one watcher has on one file, like an epoll item's: a list
/// through the entries themselves, one word in the watcher (most files use one wait queue).
///
/// Entries are boxed, so they never move while on a wait queue.
pub(crate) struct PollEntries<T: PollWaiter> {
    first: Option<KBox<WaitEntry<T>>>,
}

// SAFETY: The entries are only touched by their owner and, under the wait queues' locks, by
// wake-ups, which only read them.
unsafe impl<T: PollWaiter> Send for PollEntries<T> {}
// SAFETY: As above.
unsafe impl<T: PollWaiter> Sync for PollEntries<T> {}

/// A poll table that installs [`WaitEntry`]s.
#[repr(C)]
struct WatchTable<'a, T: PollWaiter> {
    table: bindings::poll_table_struct,
    owner: &'a Arc<T>,
    first: &'a mut Option<KBox<WaitEntry<T>>>,
    failed: bool,
}

impl<T: PollWaiter> PollEntries<T> {
    /// No entries.
    pub(crate) fn new() -> Self {
        Self { first: None }
    }

    /// Calls `file`'s `->poll` with a table that puts an entry waking `owner` on every wait
    /// queue the file uses, and returns the file's current poll mask. `key` is the mask of
    /// interesting events, which a file may use to skip wake-ups. Fails with `ENOMEM` if an
    /// entry could not be allocated (the entries added so far stay, for [`Self::clear`]).
    pub(crate) fn watch(&mut self, file: &File, owner: &Arc<T>, key: u32) -> Result<u32> {
        let mut table = WatchTable {
            // SAFETY: An all-zero poll table is valid (no function, no key).
            table: unsafe { core::mem::zeroed() },
            owner,
            first: &mut self.first,
            failed: false,
        };
        // SAFETY: `table.table` is a valid poll table to initialise.
        unsafe { bindings::init_poll_funcptr(&mut table.table, Some(queue_entry::<T>)) };
        table.table._key = key;
        // SAFETY: `file` is alive (type invariant of `File`) and the table is valid during the
        // call; `queue_entry` finds the rest of `table` around `table.table` (repr(C), first
        // field).
        let mask = unsafe { bindings::vfs_poll(file.as_ptr(), &mut table.table) };
        if table.failed {
            return Err(ENOMEM);
        }
        Ok(mask)
    }

    /// Takes every entry off its wait queue. On return no wake-up runs for them any more.
    pub(crate) fn clear(&mut self) {
        let mut next = self.first.take();
        while let Some(mut entry) = next {
            next = entry.next.take();
            {
                // The queue of a `POLLFREE` waker is freed after a grace period: hold it
                // across the removal.
                let _rcu = rcu::ReadGuard::new();
                let head = entry.head.load(Ordering::Acquire);
                if !head.is_null() {
                    // SAFETY: `head` is the live queue the entry is on (type invariant of
                    // `WaitEntry`); removing takes its lock, so a running wake-up is finished
                    // afterwards.
                    unsafe { bindings::remove_wait_queue(head, entry.wait.get()) };
                }
            }
            // SAFETY: The entry owns this reference (type invariant) and is off every queue.
            drop(unsafe { Arc::from_raw(entry.owner) });
        }
    }
}

impl<T: PollWaiter> Drop for PollEntries<T> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The `_qproc` of a [`WatchTable`]: adds one entry on `head`.
unsafe extern "C" fn queue_entry<T: PollWaiter>(
    _file: *mut bindings::file,
    head: *mut bindings::wait_queue_head,
    pt: *mut bindings::poll_table_struct,
) {
    // SAFETY: `pt` is the first field of the `WatchTable` passed to `vfs_poll` in `watch`,
    // which is alive and not otherwise accessed during the call.
    let table = unsafe { &mut *pt.cast::<WatchTable<'_, T>>() };
    if table.failed {
        return;
    }
    // INVARIANT: The reference is taken once the allocation succeeded, after which nothing can
    // fail (a `WaitEntry` does not release it on drop); `clear` gives it back.
    let entry = WaitEntry {
        wait: Opaque::uninit(),
        head: AtomicPtr::new(head),
        owner: core::ptr::null(),
        next: None,
    };
    let Ok(mut entry) = KBox::new(entry, user_gfp()) else {
        table.failed = true;
        return;
    };
    entry.owner = Arc::into_raw(table.owner.clone());
    entry.next = table.first.take();
    let entry = table.first.insert(entry);
    let wait = entry.wait.get();
    // SAFETY: `wait` is the entry's own, not yet queued.
    unsafe { bindings::init_waitqueue_func_entry(wait, Some(wake_entry::<T>)) };
    // SAFETY: `head` is the file's live wait queue (the file is being polled); `wait` is boxed
    // and stays there until `clear` removes it.
    unsafe { bindings::add_wait_queue(head, wait) };
}

/// The wake function of a [`WaitEntry`].
unsafe extern "C" fn wake_entry<T: PollWaiter>(
    wait: *mut bindings::wait_queue_entry,
    _mode: core::ffi::c_uint,
    _flags: core::ffi::c_int,
    key: *mut core::ffi::c_void,
) -> core::ffi::c_int {
    // SAFETY: `wait` is the first field of a repr(C) `WaitEntry<T>` queued by `queue_entry`;
    // it stays valid while queued, and we run under the queue's lock.
    let entry = unsafe { &*wait.cast::<WaitEntry<T>>() };
    let key = key as usize as u32;
    // SAFETY: The entry owns a reference to `owner` (type invariant).
    let owner = unsafe { ArcBorrow::from_raw(entry.owner) };
    T::woken(owner, key & !POLLFREE);
    if key & POLLFREE != 0 {
        // The queue goes away: leave it now (its lock is held), then let `clear` know. After
        // the release store the entry may be freed, so nothing touches it any more.
        // SAFETY: `wait` is on the queue whose lock we hold.
        unsafe { list_del_init(&mut (*wait).entry) };
        entry.head.store(core::ptr::null_mut(), Ordering::Release);
    }
    0
}

/// `list_del_init()`.
///
/// # Safety
///
/// `entry` must be on a list whose lock the caller holds.
unsafe fn list_del_init(entry: *mut bindings::list_head) {
    // SAFETY: `entry` and its neighbours are valid list nodes, protected by the caller's lock.
    unsafe {
        let (prev, next) = ((*entry).prev, (*entry).next);
        (*next).prev = prev;
        core::ptr::write_volatile(&mut (*prev).next, next);
        (*entry).next = entry;
        (*entry).prev = entry;
    }
}

/// Calls `file`'s `->poll` without waiting on anything and returns its poll mask.
pub(crate) fn poll_now(file: &File) -> u32 {
    // SAFETY: `file` is alive (type invariant of `File`); a null table only asks for the mask.
    unsafe { bindings::vfs_poll(file.as_ptr(), core::ptr::null_mut()) }
}
