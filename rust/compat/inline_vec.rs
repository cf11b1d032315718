// SPDX-License-Identifier: GPL-2.0

//! A fixed-capacity vector kept inline (on the stack), whose free slots are never written.
//!
//! A harvest collects its events, and the registrations they come from, in a batch on the
//! stack. Building that batch as arrays (`[Ukevent::default(); N]`, `[None; N]`) writes every
//! slot first, and dropping an array of `Option`s tests every slot again: work in proportion to
//! the capacity on every call, most of whose slots a call that takes one event never uses.

use core::mem::MaybeUninit;

/// Up to `N` values, stored inline; creating one writes nothing but its length, and dropping
/// it drops only the values it holds.
///
/// # Invariants
///
/// `len <= N`, and the first `len` elements of `slots` are initialised.
pub(crate) struct InlineVec<T, const N: usize> {
    // One uninitialised array, not an array of uninitialised slots: rustc 1.85 builds the latter
    // (`[const { MaybeUninit::uninit() }; N]`) with a `memset`.
    slots: MaybeUninit<[T; N]>,
    len: usize,
}

impl<T, const N: usize> InlineVec<T, N> {
    /// An empty vector.
    pub(crate) const fn new() -> Self {
        // INVARIANT: no element is initialised, and none needs to be.
        Self {
            slots: MaybeUninit::uninit(),
            len: 0,
        }
    }

    /// The number of values held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `value`; returns it back if the vector is full.
    pub(crate) fn push(&mut self, value: T) -> core::result::Result<(), T> {
        if self.len >= N {
            return Err(value);
        }
        let first = self.slots.as_mut_ptr().cast::<T>();
        // SAFETY: `len < N`, so the element at `len` lies inside the array that `slots` holds,
        // and it is not initialised (type invariant): writing it overwrites no value.
        unsafe { first.add(self.len).write(value) };
        // INVARIANT: the element at the old `len` was just initialised, and it is below `N`.
        self.len += 1;
        Ok(())
    }

    /// Keeps the first `len` values (all of them if there are fewer) and drops the others.
    pub(crate) fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let old = self.len;
        // INVARIANT: a shorter prefix of initialised slots is still initialised. The length is
        // lowered first, so that a panicking destructor cannot lead to a second drop.
        self.len = len;
        let first = self.slots.as_mut_ptr().cast::<T>();
        // SAFETY: the elements from `len` to `old` were initialised (type invariant, `old` being
        // the length until now) and are no longer counted, so they are dropped exactly once.
        unsafe {
            core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(
                first.add(len),
                old - len,
            ))
        };
    }

    /// The values held, in order.
    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: by the type invariants the first `len` elements of the array are initialised
        // (`[T; N]` lays them out as a slice does); the slice borrows `self`.
        unsafe { core::slice::from_raw_parts(self.slots.as_ptr().cast::<T>(), self.len) }
    }

    /// The values held, in order, to be changed in place.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`; the slice borrows `self` mutably, and writing through it
        // keeps the elements initialised.
        unsafe { core::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<T>(), self.len) }
    }
}

impl<T, const N: usize> Drop for InlineVec<T, N> {
    fn drop(&mut self) {
        self.truncate(0);
    }
}
