// SPDX-License-Identifier: GPL-2.0

//! The per-user registration limit (module parameter `max_user_kevents`).
//!
//! Each queue charges its registrations to the user who created it, like epoll's
//! `max_user_watches`: ADD beyond the limit fails with `ENOSPC`. The per-user counters live in a
//! module-wide table, looked up once per queue; charging is a single atomic operation.

use crate::{
    compat::{global::ModuleGlobal, param, task},
    THIS_MODULE,
};
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{
    error::code::*,
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{Arc, Mutex},
};

/// Registrations one user may hold across all queues (`ENOSPC` beyond): module parameter
/// `max_user_kevents`.
static MAX_USER_KEVENTS: AtomicUsize = AtomicUsize::new(1 << 20);

#[link_section = "__param"]
#[used]
static MAX_USER_KEVENTS_PARAM: param::UlongParam =
    param::UlongParam::new(c"max_user_kevents", &MAX_USER_KEVENTS, &THIS_MODULE);

/// Registrations held by one user across all queues.
pub(crate) struct UserCount {
    count: AtomicUsize,
}

impl UserCount {
    /// Charges `n` registrations; `ENOSPC` if that would exceed the limit.
    pub(crate) fn charge(&self, n: usize) -> Result {
        let max = param::get(&MAX_USER_KEVENTS);
        self.count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                c.checked_add(n).filter(|&total| total <= max)
            })
            .map(|_| ())
            .map_err(|_| ENOSPC)
    }

    /// Returns `n` registrations charged earlier.
    pub(crate) fn uncharge(&self, n: usize) {
        self.count.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The table of users, by user id.
#[pin_data]
pub(crate) struct Users {
    #[pin]
    by_uid: Mutex<RBTree<u32, Arc<UserCount>>>,
}

/// The module's table, published while the module is loaded.
pub(crate) static USERS: ModuleGlobal<Users> = ModuleGlobal::new();

impl Users {
    /// Creates an empty table.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                by_uid <- new_mutex!(RBTree::new(), "Users::by_uid"),
            }),
            GFP_KERNEL,
        )
    }
}

/// Returns the counter of the current user, creating it if needed.
pub(crate) fn current_user() -> Result<Arc<UserCount>> {
    let users = USERS.get().ok_or(ENODEV)?;
    let uid = task::current_uid();
    if let Some(found) = users.by_uid.lock().get(&uid) {
        return Ok(found.clone());
    }
    // Allocate outside the lock; another thread may win the race, then ours is dropped.
    let fresh = Arc::new(
        UserCount {
            count: AtomicUsize::new(0),
        },
        GFP_KERNEL,
    )?;
    let node = RBTreeNode::new(uid, fresh.clone(), GFP_KERNEL)?;
    let mut by_uid = users.by_uid.lock();
    if let Some(found) = by_uid.get(&uid) {
        return Ok(found.clone());
    }
    by_uid.insert(node);
    Ok(fresh)
}
