// SPDX-License-Identifier: GPL-2.0

//! The kevent system calls: argument checks and dispatch to the queue.

use crate::{
    compat::{
        errno::eopnotsupp,
        file::{install_queue, queue_from_fd, FileRef},
        hooks::Syscalls,
        uapi::{self, WaitArg},
    },
    queue::Queue,
};
use kernel::{error::code::*, prelude::*, uaccess::UserPtr};

/// Implements [`Syscalls`] for the hook layer.
pub(crate) struct Kevent;

/// Nanoseconds in a second; a timeout's `tv_nsec` must be below it.
const NSEC_PER_SEC: i64 = 1_000_000_000;

/// Checks the flags and timeout of a wait argument.
fn check_wait_arg(arg: Option<WaitArg>) -> Result {
    let Some(arg) = arg else { return Ok(()) };
    if arg.flags & !uapi::WAIT_MASK != 0 {
        return Err(EINVAL);
    }
    if arg.flags & uapi::WAIT_TIMEOUT != 0
        && (arg.tv_sec < 0 || arg.tv_nsec < 0 || arg.tv_nsec >= NSEC_PER_SEC)
    {
        return Err(EINVAL);
    }
    Ok(())
}

/// Checks the descriptors of an AIO call: `kfd` must be a queue and `fd` open.
fn check_aio_fds(kfd: i32, fd: i32) -> Result {
    queue_from_fd(kfd)?;
    FileRef::fget(fd)?;
    Ok(())
}

impl Syscalls for Kevent {
    fn init(ring_size: u32, flags: u32) -> Result<i32> {
        if flags & !(uapi::O_CLOEXEC | uapi::O_NONBLOCK) != 0 {
            return Err(EINVAL);
        }
        if ring_size != 0 && (!ring_size.is_power_of_two() || ring_size > uapi::MAX_RING_SIZE) {
            return Err(EINVAL);
        }
        install_queue(Queue::new(ring_size)?, flags)
    }

    fn ctl(fd: i32, cmd: u32, num: u32, arg: UserPtr) -> Result<i32> {
        let _queue = queue_from_fd(fd)?;
        if cmd > uapi::CTL_READY || num > uapi::MAX_CTL_BATCH {
            return Err(EINVAL);
        }
        if num != 0 && arg == 0 {
            return Err(EFAULT);
        }
        Err(eopnotsupp())
    }

    fn get_events(
        fd: i32,
        min_nr: u32,
        max_nr: u32,
        buf: UserPtr,
        arg: Option<WaitArg>,
    ) -> Result<i32> {
        let _queue = queue_from_fd(fd)?;
        if max_nr == 0 || min_nr > max_nr || i32::try_from(max_nr).is_err() {
            return Err(EINVAL);
        }
        check_wait_arg(arg)?;
        if buf == 0 {
            return Err(EFAULT);
        }
        Err(eopnotsupp())
    }

    fn wait(fd: i32, _num: u32, _old_uidx: u32, arg: Option<WaitArg>) -> Result<i32> {
        let queue = queue_from_fd(fd)?;
        if !queue.has_ring() {
            return Err(EINVAL);
        }
        check_wait_arg(arg)?;
        Err(eopnotsupp())
    }

    fn commit(fd: i32, _new_uidx: u32, _over: u32) -> Result<i32> {
        let queue = queue_from_fd(fd)?;
        if !queue.has_ring() {
            return Err(EINVAL);
        }
        Err(eopnotsupp())
    }

    fn aio_send(kfd: i32, sock: i32, _buf: UserPtr, _len: usize, _flags: u32) -> Result<i64> {
        check_aio_fds(kfd, sock)?;
        Err(eopnotsupp())
    }

    fn aio_recv(kfd: i32, sock: i32, _buf: UserPtr, _len: usize, _flags: u32) -> Result<i64> {
        check_aio_fds(kfd, sock)?;
        Err(eopnotsupp())
    }

    fn aio_sendfile(
        kfd: i32,
        sock: i32,
        in_fd: i32,
        _offset: UserPtr,
        _count: usize,
    ) -> Result<i64> {
        check_aio_fds(kfd, sock)?;
        FileRef::fget(in_fd)?;
        Err(eopnotsupp())
    }

    fn aio_read(kfd: i32, fd: i32, _buf: UserPtr, _len: usize, _offset: UserPtr) -> Result<i64> {
        check_aio_fds(kfd, fd)?;
        Err(eopnotsupp())
    }
}
