// SPDX-License-Identifier: GPL-2.0

//! Storage attached to kernel objects: the registrations that watch an inode's files, a socket
//! or a process.
//!
//! A socket's or process's kevent slot points to a [`Watchers`] list, which hooks walk: created
//! by the first registration and freed (after an RCU grace period, since atomic hooks read the
//! slot under RCU) when the last one leaves. An inode's slot points to a [`FileWatchers`] tree
//! that only `file_release` consults, keyed by file: every anonymous-inode file (eventfds,
//! timerfds, epoll and kevent queues, ...) shares one inode, and closing one of them must find
//! its own registrations without walking everybody else's. Attaching and detaching are
//! serialised by one module-wide mutex, [`StorageLock`]; notifications only take a list's
//! irqsave spinlock.
//!
//! Lock order: `Queue::registrations`, then [`StorageLock`], then `FileWatchers::files` or
//! `Watchers::list`, then `Queue::ready` (hooks enter at `Watchers::list`).

use crate::{
    compat::{
        file::{File, WatchedFile},
        global::ModuleGlobal,
        lock::{new_spinlock_irq, SpinLockIrq},
        rcu::{self, HasRcuHead, RcuHead},
        slot::Slot,
        user_gfp,
    },
    registration::{Registration, Source},
};
use core::sync::atomic::Ordering;
use kernel::{
    error::code::*,
    list::{List, ListArc, ListArcSafe, ListItem},
    new_mutex,
    prelude::*,
    rbtree::RBTree,
    sync::{Arc, ArcBorrow, Mutex},
};

/// List id of a registration's place on its source (socket or process).
pub(crate) const ON_SOURCE: u64 = 1;
/// List id of a registration's place on its file's inode.
pub(crate) const ON_INODE: u64 = 2;

/// The module-wide lock of storage attachment.
#[pin_data]
pub(crate) struct StorageLock {
    #[pin]
    lock: Mutex<()>,
}

/// The module's storage lock, published while the module is loaded.
pub(crate) static STORAGE: ModuleGlobal<StorageLock> = ModuleGlobal::new();

impl StorageLock {
    /// Creates the lock.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                lock <- new_mutex!((), "StorageLock"),
            }),
            GFP_KERNEL,
        )
    }
}

/// Runs `f` with the storage lock held. `ENODEV` if the module is going away.
pub(crate) fn with_lock<R>(f: impl FnOnce(&Attached) -> R) -> Result<R> {
    let global = STORAGE.get().ok_or(ENODEV)?;
    let _guard = global.lock.lock();
    Ok(f(&Attached(())))
}

/// Proof that the storage lock is held.
pub(crate) struct Attached(());

/// The registrations watching a socket or a process.
#[pin_data]
pub(crate) struct Watchers {
    #[pin]
    list: SpinLockIrq<List<Registration, ON_SOURCE>>,
    rcu: RcuHead,
}

impl HasRcuHead for Watchers {
    fn rcu_head(&self) -> &RcuHead {
        &self.rcu
    }
}

impl Watchers {
    /// Adds `reg` to the watchers of the object behind `slot`, creating the storage.
    pub(crate) fn attach(_: &Attached, slot: &Slot, reg: &Arc<Registration>) -> Result {
        let item =
            ListArc::<Registration, ON_SOURCE>::try_from_arc(reg.clone()).map_err(|_| EBUSY)?;
        let mut current = slot.load::<Self>();
        if current.is_null() {
            let storage = KBox::pin_init(
                pin_init!(Self {
                    list <- new_spinlock_irq!(List::new(), "Watchers::list"),
                    rcu: RcuHead::new(),
                }),
                user_gfp(),
            )?;
            // SAFETY: The storage is never moved out of its box: the slot keeps its address
            // until `detach` frees it in place.
            current = KBox::into_raw(unsafe { Pin::into_inner_unchecked(storage) });
            slot.store(current);
        }
        // SAFETY: Under the storage lock, a non-null slot points to live storage of this type
        // (only this type stores pointers in slots of this list id, and only `detach` frees it,
        // under the same lock).
        let storage = unsafe { &*current };
        storage.list.lock().push_back(item);
        Ok(())
    }

    /// Removes `reg` from the watchers of the object behind `slot`, freeing the storage when it
    /// becomes empty. `reg` must have been attached to this object.
    pub(crate) fn detach(_: &Attached, slot: &Slot, reg: &Registration) {
        let current = slot.load::<Self>();
        if current.is_null() {
            return;
        }
        // SAFETY: As in `attach`.
        let storage = unsafe { &*current };
        let empty = {
            let mut list = storage.list.lock();
            // SAFETY: A registration is attached to at most one object per list id, and this
            // is the object it was attached to (caller's guarantee).
            drop(unsafe { list.remove(reg) });
            list.is_empty()
        };
        if empty {
            Self::free(slot, current);
        }
    }

    /// Detaches every registration and returns them.
    pub(crate) fn take_all(_: &Attached, slot: &Slot) -> List<Registration, ON_SOURCE> {
        let current = slot.load::<Self>();
        if current.is_null() {
            return List::new();
        }
        // SAFETY: As in `attach`.
        let storage = unsafe { &*current };
        let taken = core::mem::replace(&mut *storage.list.lock(), List::new());
        Self::free(slot, current);
        taken
    }

    /// Calls `f` on every registration, with the list locked: any context, must not sleep.
    pub(crate) fn for_each(&self, mut f: impl FnMut(ArcBorrow<'_, Registration>)) {
        let list = self.list.lock();
        for reg in list.iter() {
            f(reg);
        }
    }

    fn free(slot: &Slot, current: *mut Self) {
        slot.store::<Self>(core::ptr::null_mut());
        // SAFETY: `current` came from `KBox::into_raw` in `attach` and is no longer reachable
        // from the slot; hooks that read it before are RCU readers, and the free waits for
        // them. The list is empty, so dropping the storage would only free memory.
        unsafe { rcu::free_after_grace_period(KBox::from_raw(current)) };
    }
}

/// The registrations watching the open files of one inode, by file.
#[pin_data]
pub(crate) struct FileWatchers {
    /// Registrations by the address of the file they watch.
    #[pin]
    files: Mutex<RBTree<usize, List<Registration, ON_INODE>>>,
}

impl FileWatchers {
    /// Adds `reg`, watching `file`, to the inode behind `slot`, creating the storage.
    fn attach(_: &Attached, slot: &Slot, file: usize, reg: &Arc<Registration>) -> Result {
        let item =
            ListArc::<Registration, ON_INODE>::try_from_arc(reg.clone()).map_err(|_| EBUSY)?;
        let mut current = slot.load::<Self>();
        if current.is_null() {
            let storage = KBox::pin_init(
                pin_init!(Self {
                    files <- new_mutex!(RBTree::new(), "FileWatchers::files"),
                }),
                user_gfp(),
            )?;
            // SAFETY: The storage is never moved out of its box: the slot keeps its address
            // until `free` drops it in place.
            current = KBox::into_raw(unsafe { Pin::into_inner_unchecked(storage) });
            slot.store(current);
        }
        // SAFETY: Under the storage lock, a non-null inode slot points to live storage of this
        // type (only this type is stored in inode slots, and only `free` frees it, under the
        // same lock).
        let storage = unsafe { &*current };
        let mut files = storage.files.lock();
        if let Some(list) = files.get_mut(&file) {
            list.push_back(item);
            return Ok(());
        }
        let mut list = List::new();
        list.push_back(item);
        match files.try_create_and_insert(file, list, user_gfp()) {
            Ok(_) => Ok(()),
            Err(e) => {
                let empty = files.iter().next().is_none();
                drop(files);
                if empty {
                    Self::free(slot, current);
                }
                Err(e)
            }
        }
    }

    /// Removes `reg`, which watches `file`, from the inode behind `slot`; frees the storage
    /// when it becomes empty.
    fn detach(_: &Attached, slot: &Slot, file: usize, reg: &Registration) {
        let current = slot.load::<Self>();
        if current.is_null() {
            return;
        }
        // SAFETY: As in `attach`.
        let storage = unsafe { &*current };
        let empty = {
            let mut files = storage.files.lock();
            let now_empty = files.get_mut(&file).is_some_and(|list| {
                // SAFETY: `reg` was attached to this inode for this file (caller's guarantee),
                // so if it is on a list of the inode's files, it is on this one.
                drop(unsafe { list.remove(reg) });
                list.is_empty()
            });
            if now_empty {
                drop(files.remove(&file));
            }
            files.iter().next().is_none()
        };
        if empty {
            Self::free(slot, current);
        }
    }

    /// Detaches every registration watching `file` and returns them.
    fn take(_: &Attached, slot: &Slot, file: usize) -> List<Registration, ON_INODE> {
        let current = slot.load::<Self>();
        if current.is_null() {
            return List::new();
        }
        // SAFETY: As in `attach`.
        let storage = unsafe { &*current };
        let (taken, empty) = {
            let mut files = storage.files.lock();
            let taken = files.remove(&file).unwrap_or_else(List::new);
            (taken, files.iter().next().is_none())
        };
        if empty {
            Self::free(slot, current);
        }
        taken
    }

    fn free(slot: &Slot, current: *mut Self) {
        slot.store::<Self>(core::ptr::null_mut());
        // SAFETY: `current` came from `KBox::into_raw` in `attach` and is no longer reachable
        // from the slot. The hook layer only tests an inode's slot for null and never reads
        // through it, so no grace period is needed; the tree is empty.
        drop(unsafe { KBox::from_raw(current) });
    }
}

/// Attaches `reg` to the storage of the object its source watches: the file's inode (and the
/// socket), the registering process, or the POSIX timer (whose slot then holds a reference).
pub(crate) fn attach(reg: &Arc<Registration>) -> Result {
    with_lock(|locked| {
        match &reg.source {
            Source::File(fs) => {
                let file = fs.file.addr();
                FileWatchers::attach(locked, &fs.inode, file, reg)?;
                if let Some(sock) = &fs.sock {
                    if let Err(e) = Watchers::attach(locked, sock, reg) {
                        FileWatchers::detach(locked, &fs.inode, file, reg);
                        return Err(e);
                    }
                }
            }
            Source::Signal { process, .. } => Watchers::attach(locked, process, reg)?,
            Source::PosixTimer { timer } => timer.store_arc(reg.clone()),
            Source::User | Source::Timer { .. } => return Ok(()),
        }
        reg.attached.store(true, Ordering::Relaxed);
        Ok(())
    })?
}

/// Detaches every registration watching `file` (the last reference to it is going away).
pub(crate) fn take_file(file: &File) -> Result<List<Registration, ON_INODE>> {
    with_lock(|locked| {
        let taken = FileWatchers::take(locked, &file.inode_slot(), WatchedFile::new(file).addr());
        for reg in taken.iter() {
            if let Some(sock) = reg.file_source().and_then(|fs| fs.sock.as_ref()) {
                Watchers::detach(locked, sock, &reg);
            }
            reg.attached.store(false, Ordering::Relaxed);
        }
        taken
    })
}

/// Detaches every registration watching the process behind `slot` (it is exiting).
pub(crate) fn take_process(slot: &Slot) -> Result<List<Registration, ON_SOURCE>> {
    with_lock(|locked| {
        let taken = Watchers::take_all(locked, slot);
        for reg in taken.iter() {
            reg.attached.store(false, Ordering::Relaxed);
        }
        taken
    })
}

/// Removes registrations taken off a dying object's storage from their queues.
pub(crate) fn forget_all<const ID: u64>(mut taken: List<Registration, ID>)
where
    Registration: ListItem<ID> + ListArcSafe<ID>,
{
    while let Some(item) = taken.pop_front() {
        let reg = item.into_arc();
        reg.queue.forget(&reg);
    }
}

/// Detaches `reg` from the storage of the object it watches. Idempotent; may sleep.
pub(crate) fn detach(reg: &Registration) {
    let timer_ref = with_lock(|locked| {
        if !reg.attached.swap(false, Ordering::Relaxed) {
            return None;
        }
        match &reg.source {
            Source::File(fs) => {
                FileWatchers::detach(locked, &fs.inode, fs.file.addr(), reg);
                if let Some(sock) = &fs.sock {
                    Watchers::detach(locked, sock, reg);
                }
                None
            }
            Source::Signal { process, .. } => {
                Watchers::detach(locked, process, reg);
                None
            }
            // SAFETY: A POSIX timer's slot only ever holds a reference to its registration,
            // stored by `attach`.
            Source::PosixTimer { timer } => unsafe { timer.take_arc::<Registration>() },
            Source::User | Source::Timer { .. } => None,
        }
    });
    if let Ok(Some(timer_ref)) = timer_ref {
        // The timer may be firing right now, under RCU, with the reference it read.
        rcu::synchronize();
        drop(timer_ref);
    }
}
