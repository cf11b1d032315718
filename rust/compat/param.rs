// SPDX-License-Identifier: GPL-2.0

//! Module parameters, which the 6.12 `module!` macro cannot declare.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h).
//!
//! Each parameter is a `struct kernel_param` in the `__param` section, as `module_param()` emits
//! it; the module loader parses `insmod kevent.ko name=value` into it, and sysfs shows it under
//! `/sys/module/kevent/parameters/`.

use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{bindings, ThisModule};

/// An `unsigned long` module parameter, placed by the module in the `__param` section:
///
/// ```ignore
/// #[link_section = "__param"]
/// #[used]
/// static PARAM: UlongParam = UlongParam::new(c"name", &VALUE, &THIS_MODULE);
/// ```
///
/// # Invariants
///
/// `param` names a static `AtomicUsize` and is never changed by Rust (the loader and sysfs write
/// the value through `param_ops_ulong`, which is as wide as `usize`).
#[repr(transparent)]
pub(crate) struct UlongParam {
    param: bindings::kernel_param,
}

// SAFETY: The descriptor is never mutated from Rust (type invariant); the value it points to is
// an atomic.
unsafe impl Sync for UlongParam {}

impl UlongParam {
    /// A parameter `name` of `module` whose value is `value`, writable by root (`0644`).
    pub(crate) const fn new(
        name: &'static core::ffi::CStr,
        value: &'static AtomicUsize,
        module: &'static ThisModule,
    ) -> Self {
        Self {
            param: bindings::kernel_param {
                name: name.as_ptr().cast(),
                mod_: module.as_ptr(),
                // SAFETY: Only the address of the exported C ops table is taken.
                ops: unsafe { &bindings::param_ops_ulong },
                perm: 0o644,
                level: -1,
                flags: 0,
                __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
                    arg: value.as_ptr().cast(),
                },
            },
        }
    }
}

/// Reads a parameter's current value; root may change it at run time through sysfs.
pub(crate) fn get(value: &AtomicUsize) -> usize {
    value.load(Ordering::Relaxed)
}
