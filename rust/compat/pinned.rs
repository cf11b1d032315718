// SPDX-License-Identifier: GPL-2.0

//! User pages pinned for I/O that outlives the system call.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h) (`pin_user_pages_fast`) and
//! [`include/linux/skbuff.h`](srctree/include/linux/skbuff.h) (`mm_account_pinned_pages`).
//!
//! Shaped like the pinned-pages abstractions of newer kernels: the pages are pinned with
//! `FOLL_LONGTERM` (they may stay pinned as long as a request is pending) and charged against the
//! caller's `RLIMIT_MEMLOCK` as `MSG_ZEROCOPY` charges them; [`PinnedPages::release`] gives them
//! back (dirty, for pages written by the kernel) in process context.

use super::{sock::SkBuff, user_gfp};
use kernel::{bindings, error::code::*, prelude::*, uaccess::UserPtr};

/// Bytes in a page.
const PAGE_SIZE: usize = bindings::PAGE_SIZE;

/// Buffers of at most this many pages keep their page and segment arrays inline, with no
/// allocation: a page-aligned 4 KiB read is the common request. One page, because a
/// [`PinnedPages`] is moved a few times before it reaches its request and every inline page
/// makes each move copy more: with room for four, the copies cost what the two allocations saved
/// (`fileio` at depth 128).
const INLINE_PAGES: usize = 1;

/// An array of at most [`INLINE_PAGES`] items kept inline, or a longer one on the heap.
///
/// # Invariants
///
/// For `Inline`, `len <= INLINE_PAGES` and the first `len` items are the array's.
enum PageArray<T: Copy> {
    Inline {
        items: [T; INLINE_PAGES],
        len: usize,
    },
    Heap(KVec<T>),
}

impl<T: Copy> PageArray<T> {
    /// An empty inline array; `blank` fills its unused slots.
    fn empty(blank: T) -> Self {
        Self::Inline {
            items: [blank; INLINE_PAGES],
            len: 0,
        }
    }

    /// An empty array with room for `n` items; `blank` fills the unused inline slots.
    fn with_capacity(n: usize, blank: T) -> Result<Self> {
        Ok(if n <= INLINE_PAGES {
            Self::empty(blank)
        } else {
            Self::Heap(KVec::with_capacity(n, user_gfp())?)
        })
    }

    fn as_slice(&self) -> &[T] {
        match self {
            Self::Inline { items, len } => &items[..*len],
            Self::Heap(v) => v,
        }
    }

    /// The start of the array's room, for C code to fill.
    fn as_mut_ptr(&mut self) -> *mut T {
        match self {
            Self::Inline { items, .. } => items.as_mut_ptr(),
            Self::Heap(v) => v.as_mut_ptr(),
        }
    }

    /// Sets the length to `n`.
    ///
    /// # Safety
    ///
    /// `n` is at most the capacity and the first `n` items are initialised.
    unsafe fn set_len(&mut self, n: usize) {
        match self {
            // INVARIANT: `n` is within the room (the capacity of an inline array).
            Self::Inline { len, .. } => *len = n.min(INLINE_PAGES),
            // SAFETY: As guaranteed by the caller.
            Self::Heap(v) => unsafe { v.set_len(n) },
        }
    }

    /// Appends `item`; `ENOMEM` if there is no room.
    fn push(&mut self, item: T) -> Result {
        match self {
            Self::Inline { items, len } => {
                let slot = items.get_mut(*len).ok_or(ENOMEM)?;
                *slot = item;
                *len += 1;
                Ok(())
            }
            Self::Heap(v) => Ok(v.push(item, user_gfp())?),
        }
    }
}

/// A user buffer whose pages are pinned.
///
/// # Invariants
///
/// `pages` holds the pinned pages of `len` bytes starting `first_offset` bytes into the first
/// page (each pin taken by `pin_user_pages_fast`, released once); `account` holds what
/// `mm_account_pinned_pages` charged for them. The arrays of a buffer of at most
/// [`INLINE_PAGES`] pages are inside the value: whoever lends [`PinnedPages::segments`] to an
/// I/O keeps the value in place until the I/O ends.
pub(crate) struct PinnedPages {
    pages: PageArray<*mut bindings::page>,
    first_offset: usize,
    len: usize,
    writable: bool,
    account: bindings::ubuf_info_msgzc_mmpin,
    /// For pages pinned to be sent: one segment per page, covering exactly the buffer.
    segments: PageArray<bindings::bio_vec>,
}

// SAFETY: Pinned pages may be used and released from any thread; the account holds a reference
// to its user, which may be dropped anywhere.
unsafe impl Send for PinnedPages {}
// SAFETY: Shared references only copy into the pages, which any thread may do.
unsafe impl Sync for PinnedPages {}

impl PinnedPages {
    /// Pins the `len` bytes at user address `addr` for the kernel to write into (`FOLL_WRITE`).
    /// `EINVAL` for an empty or overflowing range, `EFAULT` if a page cannot be pinned (not
    /// mapped, not writable, `PROT_NONE`), `ENOBUFS` beyond `RLIMIT_MEMLOCK`, `ENOMEM`.
    pub(crate) fn pin_for_write(addr: UserPtr, len: usize) -> Result<Self> {
        Self::pin(addr, len, true, true)
    }

    /// Pins the `len` bytes at user address `addr` for the kernel to read (send) from. Errors
    /// as [`PinnedPages::pin_for_write`], except that read-only pages can be pinned. `charge`:
    /// whether to charge them to `RLIMIT_MEMLOCK` (not when something else carries the charge
    /// for them already).
    pub(crate) fn pin_for_read(addr: UserPtr, len: usize, charge: bool) -> Result<Self> {
        let mut pinned = Self::pin(addr, len, false, charge)?;
        pinned.build_segments()?;
        Ok(pinned)
    }

    /// Pins the `len` bytes at user address `addr` for the kernel to write into, like
    /// [`PinnedPages::pin_for_write`], and describes them as segments for block and file I/O
    /// (a read into the buffer).
    pub(crate) fn pin_for_write_io(addr: UserPtr, len: usize) -> Result<Self> {
        let mut pinned = Self::pin(addr, len, true, true)?;
        pinned.build_segments()?;
        Ok(pinned)
    }

    /// Describes the pinned buffer as one segment per page.
    fn build_segments(&mut self) -> Result {
        let pages = self.pages.as_slice();
        let mut segments = PageArray::with_capacity(pages.len(), bindings::bio_vec::default())?;
        let (mut offset, mut left) = (self.first_offset, self.len);
        for &page in pages {
            let n = left.min(PAGE_SIZE - offset);
            segments.push(bindings::bio_vec {
                bv_page: page,
                bv_len: n as u32,
                bv_offset: offset as u32,
            })?;
            left -= n;
            offset = 0;
        }
        self.segments = segments;
        Ok(())
    }

    /// The segments of a buffer pinned with [`PinnedPages::pin_for_read`] or
    /// [`PinnedPages::pin_for_write_io`], and its length.
    pub(super) fn segments(&self) -> (&[bindings::bio_vec], usize) {
        (self.segments.as_slice(), self.len)
    }

    fn pin(addr: UserPtr, len: usize, writable: bool, charge: bool) -> Result<Self> {
        let end = addr.checked_add(len).ok_or(EFAULT)?;
        if len == 0 {
            return Err(EINVAL);
        }
        let first = addr & !(PAGE_SIZE - 1);
        let nr = (end - first).div_ceil(PAGE_SIZE);
        let nr_c = i32::try_from(nr).map_err(|_| EINVAL)?;
        let mut pages = PageArray::with_capacity(nr, core::ptr::null_mut())?;
        // SAFETY: All-zero is an empty account (no user, no pages).
        let mut account: bindings::ubuf_info_msgzc_mmpin = unsafe { core::mem::zeroed() };
        if charge {
            // SAFETY: `account` is a valid, empty account of the current user.
            let ret = unsafe { bindings::mm_account_pinned_pages(&mut account, len) };
            if ret < 0 {
                return Err(Error::from_errno(ret));
            }
        }
        let mut flags = bindings::FOLL_LONGTERM;
        if writable {
            flags |= bindings::FOLL_WRITE;
        }
        // SAFETY: `pages` has room for `nr` pointers; the range is the caller's user memory,
        // which `pin_user_pages_fast` checks.
        let got = unsafe { bindings::pin_user_pages_fast(first, nr_c, flags, pages.as_mut_ptr()) };
        let got = usize::try_from(got).unwrap_or(0);
        // SAFETY: `pin_user_pages_fast` initialised the first `got` entries.
        unsafe { pages.set_len(got) };
        // INVARIANT: `pages` holds what was pinned, `account` what was charged; on error the
        // drop below gives both back.
        let pinned = Self {
            pages,
            first_offset: addr - first,
            len,
            writable,
            account,
            segments: PageArray::empty(bindings::bio_vec::default()),
        };
        if got != nr {
            return Err(EFAULT);
        }
        Ok(pinned)
    }

    /// Copies `len` bytes at `offset` of `skb` into the buffer at `at`. Any context, including
    /// softirq. `EINVAL` if the range does not fit, `EFAULT` if the skb is shorter.
    pub(crate) fn copy_from_skb(
        &self,
        at: usize,
        skb: &SkBuff,
        offset: usize,
        len: usize,
    ) -> Result {
        if !self.writable || at.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(EINVAL);
        }
        let (mut at, mut offset, mut left) = (at + self.first_offset, offset, len);
        while left > 0 {
            let page = *self.pages.as_slice().get(at / PAGE_SIZE).ok_or(EINVAL)?;
            let in_page = at % PAGE_SIZE;
            let n = left.min(PAGE_SIZE - in_page);
            // SAFETY: `page` is pinned (type invariant), so mapping it is valid in any context;
            // the mapping is released below.
            let base = unsafe { bindings::kmap_local_page(page) }.cast::<u8>();
            // SAFETY: `base + in_page` is valid for `n <= PAGE_SIZE - in_page` bytes of the
            // mapped page; `skb_copy_bits` checks the skb range.
            let ret = unsafe {
                bindings::skb_copy_bits(
                    skb.as_ptr(),
                    offset as i32,
                    base.add(in_page).cast(),
                    n as i32,
                )
            };
            // SAFETY: `base` was returned by `kmap_local_page` above, unmapped once.
            unsafe { bindings::kunmap_local(base.cast()) };
            if ret < 0 {
                return Err(EFAULT);
            }
            at += n;
            offset += n;
            left -= n;
        }
        Ok(())
    }

    /// Unpins the pages (marking them dirty if the kernel wrote into them) and returns the
    /// charge. Process context: dirtying a page may sleep.
    pub(crate) fn release(mut self) {
        // SAFETY: The pages are pinned once each (type invariant) and forgotten here.
        unsafe {
            bindings::unpin_user_pages_dirty_lock(
                self.pages.as_mut_ptr(),
                self.pages.as_slice().len() as _,
                self.writable,
            )
        };
        // SAFETY: The pins were given back just above.
        unsafe { self.pages.set_len(0) };
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        let nr = self.pages.as_slice().len();
        if nr > 0 {
            // Not released (an error path, or a teardown that cannot sleep): unpin without
            // dirtying, which never sleeps.
            // SAFETY: As in `release`.
            unsafe { bindings::unpin_user_pages(self.pages.as_mut_ptr(), nr as _) };
        }
        // SAFETY: `account` holds exactly what `mm_account_pinned_pages` charged (type
        // invariant), returned once.
        unsafe { bindings::mm_unaccount_pinned_pages(&mut self.account) };
    }
}
