// SPDX-License-Identifier: GPL-2.0

//! Kernel pages shared with user space through `mmap`.
//!
//! C headers: [`include/linux/vmalloc.h`](srctree/include/linux/vmalloc.h) and
//! [`include/linux/mm.h`](srctree/include/linux/mm.h).
//!
//! The pages are charged to the caller's memory cgroup, zeroed, mapped contiguously in the kernel
//! (`vm_map_ram`) so that a record may straddle a page boundary, and inserted into user mappings
//! with `vm_insert_page`. Access goes through bounds-checked methods: user space may write the
//! memory at any time, so the kernel only ever reads it with single loads.

use core::{
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{
    alloc::flags::__GFP_ZERO,
    bindings,
    error::code::*,
    page::{Page, PAGE_SIZE},
    prelude::*,
};

/// Zeroed pages, mapped contiguously in the kernel, that user space may map.
///
/// # Invariants
///
/// `vaddr` is the `vm_map_ram` mapping of all of `pages`, `pages.len() * PAGE_SIZE` bytes long,
/// valid until `Drop`.
pub(crate) struct SharedPages {
    pages: KVec<Page>,
    vaddr: NonNull<u8>,
}

// SAFETY: The mapping and the pages may be used and freed from any thread.
unsafe impl Send for SharedPages {}
// SAFETY: All accessors are single loads and stores, safe to race with each other.
unsafe impl Sync for SharedPages {}

impl SharedPages {
    /// Allocates enough pages for `bytes` bytes. Must be called in process context.
    pub(crate) fn new(bytes: usize) -> Result<Self> {
        let count = bytes.div_ceil(PAGE_SIZE);
        let mut pages = KVec::with_capacity(count, super::user_gfp())?;
        let mut raw = KVec::with_capacity(count, super::user_gfp())?;
        for _ in 0..count {
            let page = Page::alloc_page(super::user_gfp() | __GFP_ZERO)?;
            raw.push(page.as_ptr(), super::user_gfp())?;
            pages.push(page, super::user_gfp())?;
        }
        let count_u32 = u32::try_from(count).map_err(|_| EINVAL)?;
        // SAFETY: `raw` holds `count` valid pages that outlive the mapping (unmapped in `Drop`).
        let vaddr = unsafe { bindings::vm_map_ram(raw.as_mut_ptr(), count_u32, -1) };
        // INVARIANT: A non-null result maps all pages.
        Ok(Self {
            pages,
            vaddr: NonNull::new(vaddr.cast()).ok_or(ENOMEM)?,
        })
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// Returns the address of a naturally aligned `u32` at `offset`, if it is in bounds.
    fn u32_at(&self, offset: usize) -> Option<&AtomicU32> {
        if offset % 4 != 0 || offset.checked_add(4)? > self.len() {
            return None;
        }
        // SAFETY: In bounds and aligned (checked above) within the mapping (type invariant),
        // which lives as long as `self`; `AtomicU32` may alias memory written by user space.
        Some(unsafe { AtomicU32::from_ptr(self.vaddr.as_ptr().add(offset).cast()) })
    }

    /// Loads the `u32` at `offset` with acquire ordering (0 if out of bounds).
    pub(crate) fn load_acquire(&self, offset: usize) -> u32 {
        self.u32_at(offset).map_or(0, |a| a.load(Ordering::Acquire))
    }

    /// Stores `value` at `offset` with release ordering (ignored if out of bounds).
    pub(crate) fn store_release(&self, offset: usize, value: u32) {
        if let Some(a) = self.u32_at(offset) {
            a.store(value, Ordering::Release);
        }
    }

    /// Copies `data` to `offset`; returns false (copying nothing) if it does not fit.
    pub(crate) fn write(&self, offset: usize, data: &[u8]) -> bool {
        match offset.checked_add(data.len()) {
            Some(end) if end <= self.len() => {
                // SAFETY: The destination range is inside the mapping (checked above, type
                // invariant). User space may read it concurrently, which is harmless for plain
                // bytes that it only trusts after the release store of the producer index.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        data.as_ptr(),
                        self.vaddr.as_ptr().add(offset),
                        data.len(),
                    )
                };
                true
            }
            _ => false,
        }
    }

    /// Maps the pages into `vma` from its start; the mapping must not be larger than the pages.
    pub(crate) fn map_into(&self, vma: &Vma) -> Result {
        let start = vma.start();
        let pages = (vma.end() - start) / PAGE_SIZE;
        if vma.pgoff() != 0 || pages > self.pages.len() {
            return Err(EINVAL);
        }
        for (i, page) in self.pages.iter().take(pages).enumerate() {
            // SAFETY: `vma` is being set up by `mmap` with the mmap lock held, the address is
            // inside it and the page is valid; `vm_insert_page` takes its own page reference.
            let ret = unsafe {
                bindings::vm_insert_page(vma.as_ptr(), start + i * PAGE_SIZE, page.as_ptr())
            };
            if ret < 0 {
                return Err(Error::from_errno(ret));
            }
        }
        Ok(())
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        // The page count was checked to fit in a `u32` when mapping.
        let count = self.pages.len() as u32;
        // SAFETY: `vaddr` maps `count` pages (type invariant) and is not used after this.
        unsafe { bindings::vm_unmap_ram(self.vaddr.as_ptr().cast(), count) };
        // The pages are freed when `self.pages` drops; user mappings hold their own references.
    }
}

/// A memory area that a `mmap` call is setting up.
///
/// # Invariants
///
/// `ptr` is valid, and the mmap lock is held for writing, for the lifetime of the wrapper.
pub(crate) struct Vma {
    ptr: *mut bindings::vm_area_struct,
}

/// Flags of a memory area.
pub(crate) mod vm_flags {
    use kernel::bindings;
    /// Executable.
    pub(crate) const EXEC: usize = bindings::VM_EXEC as usize;
    /// Shared between processes mapping the same object.
    pub(crate) const SHARED: usize = bindings::VM_SHARED as usize;
    /// May become executable with `mprotect`.
    pub(crate) const MAYEXEC: usize = bindings::VM_MAYEXEC as usize;
    /// Not copied into a child by `fork`.
    pub(crate) const DONTCOPY: usize = bindings::VM_DONTCOPY as usize;
    /// Cannot grow with `mremap`.
    pub(crate) const DONTEXPAND: usize = bindings::VM_DONTEXPAND as usize;
}

impl Vma {
    /// Wraps the area passed to a file's `mmap` operation.
    ///
    /// # Safety
    ///
    /// `ptr` must be the area of an ongoing `mmap` call, valid until the wrapper is dropped.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::vm_area_struct) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self { ptr }
    }

    fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.ptr
    }

    /// First address.
    pub(crate) fn start(&self) -> usize {
        // SAFETY: The area is valid (type invariant).
        unsafe { (*self.ptr).__bindgen_anon_1.__bindgen_anon_1.vm_start }
    }

    /// One past the last address.
    pub(crate) fn end(&self) -> usize {
        // SAFETY: The area is valid (type invariant).
        unsafe { (*self.ptr).__bindgen_anon_1.__bindgen_anon_1.vm_end }
    }

    /// Offset into the file, in pages.
    pub(crate) fn pgoff(&self) -> usize {
        // SAFETY: The area is valid (type invariant).
        unsafe { (*self.ptr).vm_pgoff }
    }

    /// The `VM_*` flags.
    pub(crate) fn flags(&self) -> usize {
        // SAFETY: The area is valid (type invariant).
        unsafe { (*self.ptr).__bindgen_anon_2.vm_flags }
    }

    /// Sets and clears `VM_*` flags.
    pub(crate) fn update_flags(&self, set: usize, clear: usize) {
        // SAFETY: The area is valid and its mmap lock is held for writing (type invariant).
        unsafe {
            bindings::vm_flags_set(self.ptr, set);
            bindings::vm_flags_clear(self.ptr, clear);
        }
    }
}
