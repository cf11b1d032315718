// SPDX-License-Identifier: GPL-2.0

//! A counted reference to a module, for objects whose callbacks run module code after every
//! system call that made them has returned (I/O completions).
//!
//! C header: [`include/linux/module.h`](srctree/include/linux/module.h).

use kernel::{bindings, ThisModule};

/// A reference to a module: while it lives, the module cannot be unloaded.
///
/// # Invariants
///
/// `module` is a live module on which this object holds one reference.
pub(crate) struct ModuleRef {
    module: *mut bindings::module,
}

// SAFETY: Module references are atomic counts, taken and given back from any thread.
unsafe impl Send for ModuleRef {}
// SAFETY: Shared references do nothing with the pointer.
unsafe impl Sync for ModuleRef {}

impl ModuleRef {
    /// Takes a reference to `module`, whose code is running (so it is live).
    pub(crate) fn new(module: &'static ThisModule) -> Self {
        // SAFETY: The module is live (its code is running), so a reference may be taken without
        // checking whether it is being unloaded.
        unsafe { bindings::__module_get(module.as_ptr()) };
        // INVARIANT: The reference was taken just above.
        Self {
            module: module.as_ptr(),
        }
    }
}

impl Drop for ModuleRef {
    /// Gives the reference back. The module's code that runs after the last one is given back
    /// must be kept by other means: drop it in a system call (whose stub holds the module) or
    /// in work on a `ModuleWorkqueue` (which unloading drains).
    fn drop(&mut self) {
        // SAFETY: Gives back the reference this object holds (type invariant).
        unsafe { bindings::module_put(self.module) };
    }
}
