// SPDX-License-Identifier: GPL-2.0

//! A spinlock that masks interrupts while held.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h).
//!
//! Events become ready in hard-IRQ context (hrtimer callbacks, signal generation with IRQs off),
//! so the state they touch must be protected by `spin_lock_irqsave`, which the 6.12 `SpinLock`
//! does not offer. This plugs an irqsave backend into the kernel crate's generic [`Lock`].

use kernel::{
    bindings,
    ffi::{c_char, c_ulong},
    sync::lock::{Backend, Lock},
};

/// The `spin_lock_irqsave` backend of [`Lock`].
pub(crate) struct IrqSpinLockBackend;

/// A spinlock that disables interrupts on the local CPU while held.
pub(crate) type SpinLockIrq<T> = Lock<T, IrqSpinLockBackend>;

/// Creates a [`SpinLockIrq`] initialiser with a lockdep class of its own for each call site.
macro_rules! new_spinlock_irq {
    ($inner:expr, $name:literal) => {
        $crate::compat::lock::SpinLockIrq::new(
            $inner,
            kernel::c_str!($name),
            kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_spinlock_irq;

// SAFETY: `spin_lock_irqsave` grants mutual exclusion between CPUs and, by masking interrupts,
// against interrupt handlers of the owning CPU. The guard state is the saved interrupt flags,
// which `unlock` restores for the same lock.
unsafe impl Backend for IrqSpinLockBackend {
    type State = bindings::spinlock_t;
    type GuardState = c_ulong;

    unsafe fn init(ptr: *mut Self::State, name: *const c_char, key: *mut bindings::lock_class_key) {
        // SAFETY: The caller passes a valid, writable lock and a name and key that live forever.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The caller guarantees that `init` was called on `ptr`.
        unsafe { bindings::spin_lock_irqsave(ptr) }
    }

    unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
        // SAFETY: The caller owns the lock; `guard_state` holds the flags saved when locking it.
        unsafe { bindings::spin_unlock_irqrestore(ptr, *guard_state) }
    }
}
