// SPDX-License-Identifier: GPL-2.0

//! Registration with the kevent hook layer of the patched kernel.
//!
//! C header: [`include/linux/kevent.h`](srctree/include/linux/kevent.h).
//!
//! The hook layer owns the system call entry points and calls the module through a
//! `struct kevent_ops`. This file builds that table ([`HookOps`]) from the [`Syscalls`] trait,
//! converting raw arguments into safe ones at the edge, and the event-source hooks from the
//! [`Hooks`] trait; the module instantiates it once, in its crate root. The kernel takes a module
//! reference around every system call and sleepable hook.

use super::{
    file::File,
    posix_timer::PosixTimer,
    signal::Task,
    sock::{Sock, SockLocked},
    uapi::WaitArg,
};
use kernel::ffi::c_long;
use kernel::{
    bindings, error::to_result, prelude::*, sync::ArcBorrow, uaccess::UserPtr, ThisModule,
};

/// The kevent system calls, implemented by the module.
///
/// Every function returns the system call's result or an error; user pointers are unchecked
/// addresses, to be used only through `UserSlice`.
pub(crate) trait Syscalls {
    /// `kevent_init(ring_size, flags)`.
    fn init(ring_size: u32, flags: u32) -> Result<i32>;
    /// `kevent_ctl(fd, cmd, num, arg)`.
    fn ctl(fd: i32, cmd: u32, num: u32, arg: UserPtr) -> Result<i32>;
    /// `kevent_get_events(fd, min_nr, max_nr, buf, arg)`.
    fn get_events(
        fd: i32,
        min_nr: u32,
        max_nr: u32,
        buf: UserPtr,
        arg: Option<WaitArg>,
    ) -> Result<i32>;
    /// `kevent_wait(fd, num, old_uidx, arg)`.
    fn wait(fd: i32, num: u32, old_uidx: u32, arg: Option<WaitArg>) -> Result<i32>;
    /// `kevent_commit(fd, new_uidx, over)`.
    fn commit(fd: i32, new_uidx: u32, over: u32) -> Result<i32>;
    /// `aio_send(kfd, sock, buf, len, flags)`.
    fn aio_send(kfd: i32, sock: i32, buf: UserPtr, len: usize, flags: u32) -> Result<i64>;
    /// `aio_recv(kfd, sock, buf, len, flags)`.
    fn aio_recv(kfd: i32, sock: i32, buf: UserPtr, len: usize, flags: u32) -> Result<i64>;
    /// `aio_sendfile(kfd, sock, in_fd, offset, count)`.
    fn aio_sendfile(kfd: i32, sock: i32, in_fd: i32, offset: UserPtr, count: usize) -> Result<i64>;
    /// `aio_read(kfd, fd, buf, len, offset)`.
    fn aio_read(kfd: i32, fd: i32, buf: UserPtr, len: usize, offset: UserPtr) -> Result<i64>;
    /// `aio_write(kfd, fd, buf, len, offset)`.
    fn aio_write(kfd: i32, fd: i32, buf: UserPtr, len: usize, offset: UserPtr) -> Result<i64>;
}

/// Converts a result into the value a system call returns.
fn ret<T: TryInto<c_long>>(r: Result<T>) -> c_long {
    match r {
        Ok(v) => v.try_into().unwrap_or(c_long::MAX),
        Err(e) => e.to_errno() as c_long,
    }
}

/// Reads the optional, already copied-in wait argument.
///
/// # Safety
///
/// `arg` must be null or valid for reads during the call.
unsafe fn wait_arg(arg: *const bindings::kevent_wait_arg) -> Option<WaitArg> {
    // SAFETY: Guaranteed by the caller.
    unsafe { arg.as_ref() }.map(WaitArg::from_raw)
}

unsafe extern "C" fn init<T: Syscalls>(ring_size: u32, flags: u32) -> c_long {
    ret(T::init(ring_size, flags))
}

unsafe extern "C" fn ctl<T: Syscalls>(
    fd: i32,
    cmd: u32,
    num: u32,
    arg: *mut bindings::ukevent,
) -> c_long {
    ret(T::ctl(fd, cmd, num, arg as UserPtr))
}

unsafe extern "C" fn get_events<T: Syscalls>(
    fd: i32,
    min_nr: u32,
    max_nr: u32,
    buf: *mut bindings::ukevent,
    arg: *const bindings::kevent_wait_arg,
) -> c_long {
    // SAFETY: The hook layer passes null or its own kernel copy of the argument.
    let arg = unsafe { wait_arg(arg) };
    ret(T::get_events(fd, min_nr, max_nr, buf as UserPtr, arg))
}

unsafe extern "C" fn wait<T: Syscalls>(
    fd: i32,
    num: u32,
    old_uidx: u32,
    arg: *const bindings::kevent_wait_arg,
) -> c_long {
    // SAFETY: The hook layer passes null or its own kernel copy of the argument.
    let arg = unsafe { wait_arg(arg) };
    ret(T::wait(fd, num, old_uidx, arg))
}

unsafe extern "C" fn commit<T: Syscalls>(fd: i32, new_uidx: u32, over: u32) -> c_long {
    ret(T::commit(fd, new_uidx, over))
}

unsafe extern "C" fn aio_send<T: Syscalls>(
    kfd: i32,
    sock: i32,
    buf: *const core::ffi::c_void,
    len: usize,
    flags: u32,
) -> c_long {
    ret(T::aio_send(kfd, sock, buf as UserPtr, len, flags))
}

unsafe extern "C" fn aio_recv<T: Syscalls>(
    kfd: i32,
    sock: i32,
    buf: *mut core::ffi::c_void,
    len: usize,
    flags: u32,
) -> c_long {
    ret(T::aio_recv(kfd, sock, buf as UserPtr, len, flags))
}

unsafe extern "C" fn aio_sendfile<T: Syscalls>(
    kfd: i32,
    sock: i32,
    in_fd: i32,
    offset: *const u64,
    count: usize,
) -> c_long {
    ret(T::aio_sendfile(kfd, sock, in_fd, offset as UserPtr, count))
}

unsafe extern "C" fn aio_read<T: Syscalls>(
    kfd: i32,
    fd: i32,
    buf: *mut core::ffi::c_void,
    len: usize,
    offset: *const u64,
) -> c_long {
    ret(T::aio_read(kfd, fd, buf as UserPtr, len, offset as UserPtr))
}

unsafe extern "C" fn aio_write<T: Syscalls>(
    kfd: i32,
    fd: i32,
    buf: *const core::ffi::c_void,
    len: usize,
    offset: *const u64,
) -> c_long {
    ret(T::aio_write(
        kfd,
        fd,
        buf as UserPtr,
        len,
        offset as UserPtr,
    ))
}

/// The event-source hooks, implemented by the module.
///
/// # Safety
///
/// Implementations store in a socket's or process's kevent slot only pointers to a live
/// `SockStorage` or `SignalStorage` respectively, in a POSIX timer's slot only references from
/// `Arc::<TimerStorage>::into_raw`, and free such an object (or drop such a reference) no
/// earlier than an RCU grace period after clearing the slot (atomic hooks read the slots
/// under `rcu_read_lock()`).
pub(crate) unsafe trait Hooks {
    /// What a socket slot points to.
    type SockStorage: Sync;
    /// What a process's slot points to.
    type SignalStorage: Sync;
    /// What a POSIX timer's slot points to.
    type TimerStorage: Sync;

    /// A socket's readiness changed (`KEVENT_SK_*` in `what`). Any context; must not sleep.
    fn sock_event(sk: &Sock, st: &Self::SockStorage, what: u32);
    /// In-order data (or a FIN) was queued on a TCP socket, which `locked` proves locked;
    /// returns true when the module consumed it and readers need no wake-up. Softirq, or
    /// process context while the socket's backlog is processed; must not sleep.
    fn tcp_data_ready(sk: &Sock, locked: &mut SockLocked<'_>, st: &Self::SockStorage) -> bool;
    /// Signal `sig` is being sent to the process by `sender` (0: the kernel); returns true to
    /// consume it, which the hook layer refuses for signals that must reach the process. IRQs
    /// off, the target's siglock held.
    fn signal(st: &Self::SignalStorage, sig: u32, sender: i32) -> bool;
    /// A `SIGEV_KEVENT` POSIX timer expired. Hard-IRQ context possible.
    fn posix_timer_fire(st: ArcBorrow<'_, Self::TimerStorage>);
    /// The last reference to a file whose inode carries kevent storage is going away.
    fn file_release(file: &File);
    /// A task of a process with kevent storage is exiting; `group_dead` when it is the last of
    /// its process.
    fn task_exit(task: &Task, group_dead: bool);
    /// The only task of a process with kevent storage is executing a new program (past the
    /// point of no return).
    fn task_exec(task: &Task);
    /// `timer_create()` with `SIGEV_KEVENT` on queue `kfd`.
    fn posix_timer_create(timer: &PosixTimer, kfd: i32) -> Result;
    /// A POSIX timer that carries kevent storage is being freed.
    fn posix_timer_free(timer: &PosixTimer);
}

unsafe extern "C" fn sock_event<T: Hooks>(
    sk: *mut bindings::sock,
    st: *mut bindings::kevent_storage,
    what: u32,
) {
    // SAFETY: The hook layer passes a live socket, and its slot's non-null value read under
    // RCU, which is a `SockStorage` not freed before the hook returns (trait safety rules).
    let (sk, st) = unsafe { (Sock::from_raw(sk), &*st.cast::<T::SockStorage>()) };
    T::sock_event(sk, st, what);
}

unsafe extern "C" fn tcp_data_ready<T: Hooks>(
    sk: *mut bindings::sock,
    st: *mut bindings::kevent_storage,
) -> bool {
    // SAFETY: As in `sock_event`; `tcp_data_ready()` runs with the socket locked (bh-locked in
    // softirq, or owned while `release_sock()` processes the backlog).
    let (sk, st) = unsafe { (Sock::from_raw(sk), &*st.cast::<T::SockStorage>()) };
    // SAFETY: See above: locked for the duration of the hook.
    let mut locked = unsafe { SockLocked::assume(sk) };
    T::tcp_data_ready(sk, &mut locked, st)
}

unsafe extern "C" fn signal<T: Hooks>(
    _t: *mut bindings::task_struct,
    st: *mut bindings::kevent_storage,
    sig: i32,
    _code: i32,
    sender: bindings::pid_t,
) -> bool {
    // SAFETY: As in `sock_event`, for the target process's slot.
    let st = unsafe { &*st.cast::<T::SignalStorage>() };
    T::signal(st, sig as u32, sender)
}

unsafe extern "C" fn posix_timer_fire<T: Hooks>(
    _timr: *mut bindings::k_itimer,
    st: *mut bindings::kevent_storage,
) {
    // SAFETY: As in `sock_event`, for the timer's slot, which holds a reference from
    // `Arc::into_raw` that stays valid during the hook (trait safety rules).
    let st = unsafe { ArcBorrow::from_raw(st.cast::<T::TimerStorage>()) };
    T::posix_timer_fire(st);
}

unsafe extern "C" fn file_release<T: Hooks>(file: *mut bindings::file) {
    // SAFETY: `__fput()` calls the hook on a file that stays alive until it returns.
    T::file_release(unsafe { File::from_raw(file) });
}

unsafe extern "C" fn task_exit<T: Hooks>(tsk: *mut bindings::task_struct, group_dead: bool) {
    // SAFETY: `do_exit()` passes the exiting task, alive during the call.
    T::task_exit(unsafe { Task::from_raw(tsk) }, group_dead);
}

unsafe extern "C" fn task_exec<T: Hooks>(tsk: *mut bindings::task_struct) {
    // SAFETY: `begin_new_exec()` passes the current task, alive during the call.
    T::task_exec(unsafe { Task::from_raw(tsk) });
}

unsafe extern "C" fn posix_timer_create<T: Hooks>(timr: *mut bindings::k_itimer, kfd: i32) -> i32 {
    // SAFETY: `timer_create()` passes its new timer, alive during the call.
    match T::posix_timer_create(unsafe { PosixTimer::from_raw(timr) }, kfd) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn posix_timer_free<T: Hooks>(timr: *mut bindings::k_itimer) {
    // SAFETY: The timer is alive until its RCU-deferred free, queued after the hook returns.
    T::posix_timer_free(unsafe { PosixTimer::from_raw(timr) });
}

/// The table of system calls and hooks registered with the hook layer, built from the module's
/// [`Syscalls`] and [`Hooks`] implementations; one static instance in the module.
///
/// Every hook is present: the hook layer calls a hook, without checking for `NULL`, whenever
/// an object carries kevent storage.
///
/// # Invariants
///
/// `ops` never changes (so sharing it is sound).
pub(crate) struct HookOps {
    ops: bindings::kevent_ops,
}

// SAFETY: The table is never mutated (type invariant); C only reads it.
unsafe impl Sync for HookOps {}

impl HookOps {
    /// The table for system calls `S` and hooks `H`, owned by `module`.
    pub(crate) const fn new<S: Syscalls, H: Hooks>(module: &'static ThisModule) -> Self {
        Self {
            ops: bindings::kevent_ops {
                owner: module.as_ptr(),
                init: Some(init::<S>),
                ctl: Some(ctl::<S>),
                get_events: Some(get_events::<S>),
                wait: Some(wait::<S>),
                commit: Some(commit::<S>),
                aio_send: Some(aio_send::<S>),
                aio_recv: Some(aio_recv::<S>),
                aio_sendfile: Some(aio_sendfile::<S>),
                aio_read: Some(aio_read::<S>),
                aio_write: Some(aio_write::<S>),
                sock_event: Some(sock_event::<H>),
                tcp_data_ready: Some(tcp_data_ready::<H>),
                signal: Some(signal::<H>),
                posix_timer_fire: Some(posix_timer_fire::<H>),
                file_release: Some(file_release::<H>),
                task_exit: Some(task_exit::<H>),
                task_exec: Some(task_exec::<H>),
                posix_timer_create: Some(posix_timer_create::<H>),
                posix_timer_free: Some(posix_timer_free::<H>),
            },
        }
    }
}

/// The module's registration with the hook layer; dropping it unregisters.
///
/// # Invariants
///
/// `ops` is registered with the hook layer while this object exists.
pub(crate) struct Registration {
    ops: &'static HookOps,
}

impl Registration {
    /// Registers the module's system calls and hooks.
    pub(crate) fn new(ops: &'static HookOps) -> Result<Self> {
        // SAFETY: `ops` is a static, valid for as long as the module is loaded, and `Drop`
        // unregisters it before the module goes away.
        to_result(unsafe { bindings::kevent_register_ops(&ops.ops) })?;
        // INVARIANT: Registration succeeded.
        Ok(Self { ops })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `ops` is registered (type invariant). On return no hook or system call runs in
        // the module any more.
        unsafe { bindings::kevent_unregister_ops(&self.ops.ops) };
    }
}
