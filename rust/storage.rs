// SPDX-License-Identifier: GPL-2.0

//! Storage attached to kernel objects: the registrations that watch a socket, a process or the
//! open files of an inode.
//!
//! A socket's or process's kevent slot points to a [`Watchers`] list, which hooks walk: created
//! by the first registration and freed (after an RCU grace period, since atomic hooks read the
//! slot under RCU) when the last one leaves. An inode's slot points to a [`FileWatchers`] tree
//! that only `file_release` consults, keyed by file: every anonymous-inode file (eventfds,
//! timerfds, epoll and kevent queues, ...) shares one inode, and closing one of them must find
//! its own registrations without walking everybody else's. Attaching and detaching are
//! serialised by one module-wide mutex, [`StorageLock`]; notifications only take a list's
//! irqsave spinlock. Both containers are generic over the item (a source's registration type)
//! and the list it uses; which object holds which container is the sources' business.

use crate::compat::{
    global::ModuleGlobal,
    lock::{new_spinlock_irq, SpinLockIrq},
    rcu::{self, HasRcuHead, RcuHead},
    slot::Slot,
    user_gfp,
};
use kernel::{
    error::code::*,
    list::{List, ListArc, ListArcSafe, ListItem, TryNewListArc},
    new_mutex,
    prelude::*,
    rbtree::RBTree,
    sync::{Arc, Mutex},
};

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

/// Items that storage can hold on list `ID`.
pub(crate) trait Item<const ID: u64>:
    ListItem<ID> + ListArcSafe<ID> + TryNewListArc<ID> + Send + Sync
{
}

impl<T: ListItem<ID> + ListArcSafe<ID> + TryNewListArc<ID> + Send + Sync, const ID: u64> Item<ID>
    for T
{
}

/// Makes the list reference of `item` for list `ID`; `EBUSY` if it is on such a list already.
fn list_arc<T: Item<ID>, const ID: u64>(item: &Arc<T>) -> Result<ListArc<T, ID>> {
    ListArc::try_from_arc(item.clone()).map_err(|_| EBUSY)
}

/// Allocates storage with `init` and stores it in `slot`; returns it.
fn create<S, E>(slot: &Slot, init: impl PinInit<S, E>) -> Result<*mut S>
where
    Error: From<E>,
{
    let storage = KBox::pin_init(init, user_gfp())?;
    // SAFETY: The storage is never moved out of its box: the slot keeps its address until it is
    // freed in place.
    let ptr = KBox::into_raw(unsafe { Pin::into_inner_unchecked(storage) });
    slot.store(ptr);
    Ok(ptr)
}

/// What the storage of a socket or a process holds: one or more lists.
pub(crate) trait Lists: Send + Sync + Sized {
    /// Empty lists.
    fn new() -> Self;
    /// Whether every list is empty.
    fn is_empty(&self) -> bool;
}

impl<T: Item<ID>, const ID: u64> Lists for List<T, ID> {
    fn new() -> Self {
        List::new()
    }

    fn is_empty(&self) -> bool {
        List::is_empty(self)
    }
}

/// The items watching a socket or a process, walked by its hooks.
///
/// # Invariants
///
/// Lives behind exactly one slot, from the first [`Watchers::attach`] until it is found empty
/// under the storage lock.
#[pin_data]
pub(crate) struct Watchers<C: Lists> {
    #[pin]
    lists: SpinLockIrq<C>,
    rcu: RcuHead,
}

impl<C: Lists> HasRcuHead for Watchers<C> {
    fn rcu_head(&self) -> &RcuHead {
        &self.rcu
    }
}

impl<C: Lists> Watchers<C> {
    /// The storage behind `slot`, if any.
    ///
    /// Callers hold the storage lock (`_`); `slot` only ever holds this type.
    fn get<'a>(_: &'a Attached, slot: &Slot) -> Option<&'a Self> {
        let current = slot.load::<Self>();
        // SAFETY: Under the storage lock, a non-null slot of an object that holds `Watchers<C>`
        // points to live storage of this type (one source owns each kind of slot and stores
        // only this type in it, and only `free` frees it, under the same lock).
        unsafe { current.as_ref() }
    }

    /// Adds `item` to the list of the storage behind `slot` that `which` picks, creating the
    /// storage.
    pub(crate) fn attach<T: Item<ID>, const ID: u64>(
        locked: &Attached,
        slot: &Slot,
        item: &Arc<T>,
        which: impl FnOnce(&mut C) -> &mut List<T, ID>,
    ) -> Result {
        let item = list_arc(item)?;
        let storage = match Self::get(locked, slot) {
            Some(storage) => storage,
            None => {
                let init = pin_init!(Self {
                    lists <- new_spinlock_irq!(C::new(), "Watchers::lists"),
                    rcu: RcuHead::new(),
                });
                // SAFETY: Just created and stored in the slot; freed only by `free`, under the
                // storage lock that the caller holds.
                unsafe { &*create(slot, init)? }
            }
        };
        which(&mut storage.lists.lock()).push_back(item);
        Ok(())
    }

    /// Removes `item` from the list `which` picks of the storage behind `slot`, freeing the
    /// storage when it becomes empty. `item` must have been attached to this object, and may
    /// have left the list already.
    pub(crate) fn detach<T: Item<ID>, const ID: u64>(
        locked: &Attached,
        slot: &Slot,
        item: &T,
        which: impl FnOnce(&mut C) -> &mut List<T, ID>,
    ) {
        let Some(storage) = Self::get(locked, slot) else {
            return;
        };
        let empty = {
            let mut lists = storage.lists.lock();
            // SAFETY: An item is on at most one list `ID`, and if it is on one, it is this
            // object's (caller's guarantee).
            drop(unsafe { which(&mut lists).remove(item) });
            lists.is_empty()
        };
        if empty {
            Self::free(slot);
        }
    }

    /// Detaches every item and returns the lists.
    pub(crate) fn take_all(locked: &Attached, slot: &Slot) -> C {
        let Some(storage) = Self::get(locked, slot) else {
            return C::new();
        };
        let taken = core::mem::replace(&mut *storage.lists.lock(), C::new());
        Self::free(slot);
        taken
    }

    /// Runs `f` on the storage behind `slot`, if any, as the hooks see it: inside an RCU read-side
    /// section, so `f` must not sleep. The storage may be found empty and freed meanwhile (then
    /// `f` sees empty lists).
    pub(crate) fn with_current<R>(slot: &Slot, f: impl FnOnce(&Self) -> R) -> Option<R> {
        let _rcu = rcu::ReadGuard::new();
        let current = slot.load::<Self>();
        // SAFETY: A slot of an object that holds `Watchers<C>` holds only this type (see `get`),
        // and storage is freed after a grace period (`free`), which cannot end while we are in
        // a read-side section.
        unsafe { current.as_ref() }.map(f)
    }

    /// Runs `f` on the lists, locked: any context, must not sleep.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut C) -> R) -> R {
        f(&mut self.lists.lock())
    }

    /// Clears the slot and frees the (empty) storage after a grace period.
    fn free(slot: &Slot) {
        let current = slot.load::<Self>();
        slot.store::<Self>(core::ptr::null_mut());
        // SAFETY: `current` came from `KBox::into_raw` in `create` and is no longer reachable
        // from the slot; hooks that read it before are RCU readers, and the free waits for
        // them. The lists are empty, so dropping the storage only frees memory.
        unsafe { rcu::free_after_grace_period(KBox::from_raw(current)) };
    }
}

/// The items watching the open files of one inode, by file.
#[pin_data]
pub(crate) struct FileWatchers<T: Item<ID>, const ID: u64> {
    /// Items by the address of the file they watch.
    #[pin]
    files: Mutex<RBTree<usize, List<T, ID>>>,
}

impl<T: Item<ID>, const ID: u64> FileWatchers<T, ID> {
    /// The storage behind `slot`, if any; as [`Watchers::get`].
    fn get<'a>(_: &'a Attached, slot: &Slot) -> Option<&'a Self> {
        let current = slot.load::<Self>();
        // SAFETY: Under the storage lock, a non-null inode slot points to live storage of this
        // type (only this type is stored in inode slots, and only `free` frees it, under the
        // same lock).
        unsafe { current.as_ref() }
    }

    /// Adds `item`, watching the file at address `file`, to the inode behind `slot`.
    pub(crate) fn attach(locked: &Attached, slot: &Slot, file: usize, item: &Arc<T>) -> Result {
        let item = list_arc(item)?;
        let storage = match Self::get(locked, slot) {
            Some(storage) => storage,
            None => {
                let init = pin_init!(Self {
                    files <- new_mutex!(RBTree::new(), "FileWatchers::files"),
                });
                // SAFETY: As in `Watchers::attach`.
                unsafe { &*create(slot, init)? }
            }
        };
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
                    Self::free(slot);
                }
                Err(e)
            }
        }
    }

    /// Removes `item`, which watches `file`, from the inode behind `slot`; frees the storage
    /// when it becomes empty.
    pub(crate) fn detach(locked: &Attached, slot: &Slot, file: usize, item: &T) {
        let Some(storage) = Self::get(locked, slot) else {
            return;
        };
        let empty = {
            let mut files = storage.files.lock();
            let now_empty = files.get_mut(&file).is_some_and(|list| {
                // SAFETY: `item` was attached to this inode for this file (caller's guarantee),
                // so if it is on a list of the inode's files, it is on this one.
                drop(unsafe { list.remove(item) });
                list.is_empty()
            });
            if now_empty {
                drop(files.remove(&file));
            }
            files.iter().next().is_none()
        };
        if empty {
            Self::free(slot);
        }
    }

    /// Detaches every item watching `file` and returns them.
    pub(crate) fn take(locked: &Attached, slot: &Slot, file: usize) -> List<T, ID> {
        let Some(storage) = Self::get(locked, slot) else {
            return List::new();
        };
        let (taken, empty) = {
            let mut files = storage.files.lock();
            let taken = files.remove(&file).unwrap_or_else(List::new);
            (taken, files.iter().next().is_none())
        };
        if empty {
            Self::free(slot);
        }
        taken
    }

    /// Clears the slot and frees the (empty) storage.
    fn free(slot: &Slot) {
        let current = slot.load::<Self>();
        slot.store::<Self>(core::ptr::null_mut());
        // SAFETY: `current` came from `KBox::into_raw` in `create` and is no longer reachable
        // from the slot. The hook layer only tests an inode's slot for null and never reads
        // through it, so no grace period is needed; the tree is empty.
        drop(unsafe { KBox::from_raw(current) });
    }
}
