// SPDX-License-Identifier: GPL-2.0

//! Zero-copy transmission notifiers (`struct ubuf_info` with the caller's own operations).
//!
//! C header: [`include/linux/skbuff.h`](srctree/include/linux/skbuff.h).
//!
//! A send that attaches user pages to skbs (`MSG_ZEROCOPY` with `msghdr::msg_ubuf`) gives the
//! stack a `ubuf_info`; every skb holding the pages takes a reference to it, and the last one
//! released calls `ubuf_info_ops::complete`. That moment is when the pages are no longer used by
//! the stack: the modern form of the 2006 kevent's `sock_wfree` idea, and what io_uring's
//! `SEND_ZC` uses. [`ZeroCopy`] is the sender's reference to such a notifier; the notifier keeps
//! its owner (an `Arc<T>`) and a module reference until [`ZeroCopyOwner::released`] has run.

use core::{
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{bindings, prelude::*, sync::Arc, ThisModule};

/// The owner of a zero-copy notifier.
pub(crate) trait ZeroCopyOwner: Send + Sync + Sized + 'static {
    /// The stack released its last reference to the pages. `copied`: the data were copied on
    /// their way (local delivery copies the pages of skbs it receives, or the route could not
    /// carry pages) rather than transmitted from the pages. Runs once, in any context except
    /// hard IRQ (softirq when an ACK or a transmit completion frees the last skb, process
    /// context otherwise), possibly with a socket lock held.
    fn released(this: Arc<Self>, copied: bool);
}

/// The notifier: a `ubuf_info` followed by what its completion needs.
///
/// # Invariants
///
/// `ubuf` is the first field (a `*mut ubuf_info` given to the stack is a `*mut Notifier<T>`);
/// `ubuf.ops` is `Ops::<T>::OPS`; the notifier is a leaked `KBox`, freed by the completion that
/// drops `ubuf.refcnt` to zero; it holds a reference to `module`.
#[repr(C)]
struct Notifier<T: ZeroCopyOwner> {
    ubuf: bindings::ubuf_info,
    /// An skb released its reference after transmitting from the pages.
    used: AtomicBool,
    /// An skb's pages were copied.
    copied: AtomicBool,
    owner: Arc<T>,
    module: *mut bindings::module,
    /// What the notifier charged to its sender's `RLIMIT_MEMLOCK` (as `MSG_ZEROCOPY` charges
    /// the pages its skbs hold), given back when it completes.
    account: bindings::ubuf_info_msgzc_mmpin,
}

/// The operations table of notifiers owned by `T`.
struct Ops<T>(PhantomData<T>);

impl<T: ZeroCopyOwner> Ops<T> {
    const OPS: bindings::ubuf_info_ops = bindings::ubuf_info_ops {
        complete: Some(complete::<T>),
        link_skb: None,
    };
}

/// The sender's reference to a notifier; dropping it gives up that reference (the last
/// reference completes the notifier).
///
/// # Invariants
///
/// `ptr` points to a live [`Notifier<T>`] on which this object holds one reference.
pub(crate) struct ZeroCopy<T: ZeroCopyOwner> {
    ptr: NonNull<Notifier<T>>,
}

// SAFETY: The reference may be dropped from any thread (the completion runs in any context).
unsafe impl<T: ZeroCopyOwner> Send for ZeroCopy<T> {}
// SAFETY: Shared access only reads the pointer.
unsafe impl<T: ZeroCopyOwner> Sync for ZeroCopy<T> {}

impl<T: ZeroCopyOwner> ZeroCopy<T> {
    /// A notifier for `owner`, holding a reference to `module` (whose code its completion runs)
    /// until it completes, and charging `charge` bytes to the calling user's `RLIMIT_MEMLOCK`
    /// until then (`ENOBUFS` beyond it; 0 charges nothing).
    pub(crate) fn new(owner: Arc<T>, module: &'static ThisModule, charge: usize) -> Result<Self> {
        // SAFETY: All-zero is an empty account (no user, no pages).
        let mut account: bindings::ubuf_info_msgzc_mmpin = unsafe { core::mem::zeroed() };
        if charge > 0 {
            // SAFETY: `account` is a valid, empty account of the current user.
            let ret = unsafe { bindings::mm_account_pinned_pages(&mut account, charge) };
            if ret < 0 {
                return Err(Error::from_errno(ret));
            }
        }
        let notifier = KBox::new(
            Notifier {
                ubuf: bindings::ubuf_info {
                    ops: &Ops::<T>::OPS,
                    // SAFETY: `REFCOUNT_INIT` only builds a value.
                    refcnt: unsafe { bindings::REFCOUNT_INIT(1) },
                    // `SKBFL_ZEROCOPY_FRAG | SKBFL_DONT_ORPHAN`, as io_uring's notifiers.
                    flags: (bindings::SKBFL_ZEROCOPY_ENABLE
                        | bindings::SKBFL_SHARED_FRAG
                        | bindings::SKBFL_DONT_ORPHAN) as u8,
                },
                used: AtomicBool::new(false),
                copied: AtomicBool::new(false),
                owner,
                module: module.as_ptr(),
                account,
            },
            GFP_KERNEL,
        )
        .inspect_err(|_| {
            // SAFETY: `account` holds what was charged just above (or nothing), given back once.
            unsafe { bindings::mm_unaccount_pinned_pages(&mut account) };
        })?;
        // SAFETY: The module is live (its code is running), so a reference may be taken without
        // checking; it is given back by the completion.
        unsafe { bindings::__module_get(module.as_ptr()) };
        // INVARIANT: Leaked with its one reference, owned by the result.
        Ok(Self {
            // SAFETY: `KBox::into_raw` never returns null.
            ptr: unsafe { NonNull::new_unchecked(KBox::into_raw(notifier)) },
        })
    }

    /// The `ubuf_info` to put in `msghdr::msg_ubuf`; valid while `self` is.
    pub(super) fn as_ubuf(&self) -> *mut bindings::ubuf_info {
        // `ubuf` is the first field of a `repr(C)` struct (type invariant).
        self.ptr.as_ptr().cast()
    }
}

impl<T: ZeroCopyOwner> Drop for ZeroCopy<T> {
    fn drop(&mut self) {
        // SAFETY: `self` holds a reference to a live notifier (type invariant), given up here
        // as `net_zcopy_put` does.
        unsafe { complete::<T>(core::ptr::null_mut(), self.as_ubuf(), true) };
    }
}

/// `ubuf_info_ops::complete`: drops one reference; the last one reports to the owner and frees
/// the notifier.
///
/// # Safety
///
/// `uarg` is a notifier of owner type `T` on which the caller gives up one reference; `skb` is
/// null or the skb that held that reference.
unsafe extern "C" fn complete<T: ZeroCopyOwner>(
    skb: *mut bindings::sk_buff,
    uarg: *mut bindings::ubuf_info,
    zerocopy_success: bool,
) {
    let notifier = uarg.cast::<Notifier<T>>();
    {
        // SAFETY: The caller holds a reference, so the notifier is alive.
        let n = unsafe { &*notifier };
        if !skb.is_null() {
            if zerocopy_success {
                n.used.store(true, Ordering::Relaxed);
            } else {
                n.copied.store(true, Ordering::Relaxed);
            }
        }
    }
    // SAFETY: `refcnt` is the notifier's counter; the caller's reference is given up here.
    if !unsafe { bindings::refcount_dec_and_test(core::ptr::addr_of_mut!((*uarg).refcnt)) } {
        return;
    }
    // SAFETY: The last reference is gone: nothing else uses the notifier, which came from
    // `KBox::into_raw` (type invariant of `Notifier`).
    let notifier = unsafe { KBox::from_raw(notifier) };
    // The counter's release ordering made the other references' stores visible.
    let copied = notifier.copied.load(Ordering::Relaxed) || !notifier.used.load(Ordering::Relaxed);
    let module = notifier.module;
    let Notifier {
        owner, mut account, ..
    } = KBox::into_inner(notifier);
    // SAFETY: `account` holds what `ZeroCopy::new` charged, given back once; this takes only
    // atomics and the uid hash lock (irqsave), as `MSG_ZEROCOPY`'s own completion does.
    unsafe { bindings::mm_unaccount_pinned_pages(&mut account) };
    T::released(owner, copied);
    // What follows the put is the return. `free_module` waits for an RCU grace period, which a
    // softirq caller holds off; a preemptible process-context caller leaves that window open.
    // SAFETY: The notifier held this module reference since `ZeroCopy::new`.
    unsafe { bindings::module_put(module) };
}
