// SPDX-License-Identifier: GPL-2.0

//! High-resolution timers embedded in pinned objects.
//!
//! C header: [`include/linux/hrtimer.h`](srctree/include/linux/hrtimer.h).
//!
//! Shaped like `kernel::time::hrtimer::HrTimer` of newer kernels: the timer is a field of its
//! owner, which implements [`HrTimerCallback`]; the callback runs in hard-IRQ context with a
//! shared reference to the owner.

use core::marker::PhantomPinned;
use kernel::{bindings, init::PinInit, prelude::*, sync::ArcBorrow, types::Opaque};

/// A relative `CLOCK_MONOTONIC` hrtimer, embedded in an object of type `T`.
///
/// # Invariants
///
/// `timer` is initialised by `hrtimer_init` with [`run::<T>`] as its function, and is never
/// moved (it is pinned).
#[pin_data]
#[repr(C)]
pub(crate) struct HrTimer {
    #[pin]
    timer: Opaque<bindings::hrtimer>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The C hrtimer API may be used from any thread; it has its own locking.
unsafe impl Send for HrTimer {}
// SAFETY: As above, `start`, `cancel` and `forward_now` are thread safe.
unsafe impl Sync for HrTimer {}

/// Types with an [`HrTimer`] field; implement it with [`impl_has_hr_timer!`].
///
/// # Safety
///
/// `OFFSET` must be the offset of a field of type [`HrTimer`] in `Self`.
pub(crate) unsafe trait HasHrTimer {
    /// Offset of the timer field.
    const OFFSET: usize;
}

/// Declares which field of a type (possibly a field of a field) is its [`HrTimer`].
macro_rules! impl_has_hr_timer {
    ($t:ty, $($field:ident).+) => {
        // SAFETY: `offset_of!` is the offset of the (possibly nested) field, which the closure
        // below proves to be an `HrTimer`.
        unsafe impl $crate::compat::hrtimer::HasHrTimer for $t {
            const OFFSET: usize = ::core::mem::offset_of!($t, $($field).+);
        }
        const _: fn(&$t) -> &$crate::compat::hrtimer::HrTimer = |owner| &owner.$($field).+;
    };
}
pub(crate) use impl_has_hr_timer;

/// Implemented by the owner of an [`HrTimer`] to receive its expirations. Owners always live in
/// an `Arc` (like `HrTimerPointer for Arc<T>` of newer kernels).
pub(crate) trait HrTimerCallback: HasHrTimer + Sized {
    /// Called in hard-IRQ context when the timer expires. Returns `true` to restart the timer,
    /// after moving its expiry forward (see [`HrTimer::forward_now`]).
    fn expired(this: ArcBorrow<'_, Self>, timer: &HrTimer) -> bool;
}

impl HrTimer {
    /// Creates an initialiser of a stopped timer that calls `T::expired`.
    pub(crate) fn new<T: HrTimerCallback>() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes; `hrtimer_init` initialises every field, then
            // the function is set before the timer can be started.
            timer <- Opaque::ffi_init(|slot: *mut bindings::hrtimer| unsafe {
                bindings::hrtimer_init(
                    slot,
                    bindings::CLOCK_MONOTONIC as bindings::clockid_t,
                    bindings::hrtimer_mode_HRTIMER_MODE_REL,
                );
                (*slot).function = Some(run::<T>);
            }),
            _pin: PhantomPinned,
        })
    }

    fn as_ptr(&self) -> *mut bindings::hrtimer {
        self.timer.get()
    }

    /// Starts (or restarts) the timer to expire `ns` nanoseconds from now.
    pub(crate) fn start(&self, ns: i64) {
        // SAFETY: The timer is initialised (type invariant).
        unsafe {
            bindings::hrtimer_start_range_ns(
                self.as_ptr(),
                ns,
                0,
                bindings::hrtimer_mode_HRTIMER_MODE_REL,
            )
        };
    }

    /// Stops the timer, waiting for a running callback to finish. Returns whether it was active.
    ///
    /// Must not be called with a lock that the callback takes.
    pub(crate) fn cancel(&self) -> bool {
        // SAFETY: The timer is initialised (type invariant).
        unsafe { bindings::hrtimer_cancel(self.as_ptr()) != 0 }
    }

    /// From the callback: moves the expiry forward by whole `interval_ns` periods until it is in
    /// the future. Returns the number of periods, i.e. the expirations since the last one.
    pub(crate) fn forward_now(&self, interval_ns: i64) -> u64 {
        // SAFETY: The timer is initialised (type invariant); called from its own callback.
        unsafe { bindings::hrtimer_forward_now(self.as_ptr(), interval_ns) }
    }
}

/// The C callback of every [`HrTimer`] owned by a `T`.
///
/// # Safety
///
/// Called by the hrtimer core for a timer initialised by [`HrTimer::new::<T>`], whose owner lives
/// in an `Arc` and stays alive while the timer is active (owners cancel their timers before their
/// last reference goes away).
unsafe extern "C" fn run<T: HrTimerCallback>(
    timer: *mut bindings::hrtimer,
) -> bindings::hrtimer_restart {
    let timer = timer.cast::<HrTimer>().cast_const();
    // SAFETY: `HrTimer` is `repr(C)` with the `hrtimer` first, so the pointers are the same; the
    // timer is the field at `T::OFFSET` of a `T` that lives in an `Arc` and is alive while its
    // timer runs (see above).
    let (owner, timer) = unsafe {
        let owner = timer.cast::<u8>().sub(T::OFFSET).cast::<T>();
        (ArcBorrow::from_raw(owner), &*timer)
    };
    if T::expired(owner, timer) {
        bindings::hrtimer_restart_HRTIMER_RESTART
    } else {
        bindings::hrtimer_restart_HRTIMER_NORESTART
    }
}
