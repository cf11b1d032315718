// SPDX-License-Identifier: GPL-2.0

//! Module parameters, which the 6.12 `module!` macro cannot declare.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h).
//!
//! Each parameter is a `struct kernel_param` in the `__param` section, as `module_param()` emits
//! it; the module loader parses `insmod kevent.ko name=value` into it, and sysfs shows it under
//! `/sys/module/kevent/parameters/`.

use super::AssertSync;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::bindings;

/// Registrations one user may hold across all queues (`ENOSPC` beyond).
static MAX_USER_KEVENTS: AtomicUsize = AtomicUsize::new(1 << 20);

#[link_section = "__param"]
#[used]
static MAX_USER_KEVENTS_PARAM: AssertSync<bindings::kernel_param> =
    AssertSync(bindings::kernel_param {
        name: c"max_user_kevents".as_ptr().cast(),
        mod_: crate::THIS_MODULE.as_ptr(),
        // SAFETY: Only the address of the exported C ops table is taken.
        ops: unsafe { &bindings::param_ops_ulong },
        perm: 0o644,
        level: -1,
        flags: 0,
        __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
            arg: MAX_USER_KEVENTS.as_ptr().cast(),
        },
    });

/// The current value of `max_user_kevents`; root may change it at run time through sysfs.
pub(crate) fn max_user_kevents() -> usize {
    MAX_USER_KEVENTS.load(Ordering::Relaxed)
}
