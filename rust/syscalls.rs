// SPDX-License-Identifier: GPL-2.0

//! The kevent system calls: argument checks and dispatch.

use crate::{
    compat::{
        file::install_queue,
        hooks::Syscalls,
        uapi::{self, WaitArg},
    },
    ctl,
    harvest::{self, Wait},
    queue::Queue,
    sources::{faio, naio, send},
};
use kernel::{error::code::*, prelude::*, uaccess::UserPtr};

/// Implements [`Syscalls`] for the hook layer.
pub(crate) struct Kevent;

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
        let queue = Queue::from_fd(fd)?;
        ctl::ctl(&queue, cmd, num, arg)
    }

    fn get_events(
        fd: i32,
        min_nr: u32,
        max_nr: u32,
        buf: UserPtr,
        arg: Option<WaitArg>,
    ) -> Result<i32> {
        let queue = Queue::from_fd(fd)?;
        if max_nr == 0 || min_nr > max_nr || i32::try_from(max_nr).is_err() {
            return Err(EINVAL);
        }
        let wait = Wait::from_arg(arg, queue.is_nonblocking())?;
        if buf == 0 {
            return Err(EFAULT);
        }
        harvest::get_events(&queue, min_nr, max_nr, buf, wait)
    }

    fn wait(fd: i32, num: u32, old_uidx: u32, arg: Option<WaitArg>) -> Result<i32> {
        let queue = Queue::from_fd(fd)?;
        if !queue.has_ring() {
            return Err(EINVAL);
        }
        let wait = Wait::from_arg(arg, queue.is_nonblocking())?;
        harvest::wait(&queue, num, old_uidx, wait)
    }

    fn commit(fd: i32, new_uidx: u32, over: u32) -> Result<i32> {
        let queue = Queue::from_fd(fd)?;
        if !queue.has_ring() {
            return Err(EINVAL);
        }
        harvest::commit(&queue, new_uidx, over)
    }

    fn aio_send(kfd: i32, sock: i32, buf: UserPtr, len: usize, flags: u32) -> Result<i64> {
        let queue = Queue::from_fd(kfd)?;
        send::send(&queue, sock, buf, len, flags)
    }

    fn aio_recv(kfd: i32, sock: i32, buf: UserPtr, len: usize, flags: u32) -> Result<i64> {
        let queue = Queue::from_fd(kfd)?;
        naio::recv(&queue, sock, buf, len, flags)
    }

    fn aio_sendfile(kfd: i32, sock: i32, in_fd: i32, offset: UserPtr, count: usize) -> Result<i64> {
        let queue = Queue::from_fd(kfd)?;
        send::sendfile(&queue, sock, in_fd, offset, count)
    }

    fn aio_read(kfd: i32, fd: i32, buf: UserPtr, len: usize, offset: UserPtr) -> Result<i64> {
        let queue = Queue::from_fd(kfd)?;
        faio::submit(&queue, fd, buf, len, offset, false)
    }

    fn aio_write(kfd: i32, fd: i32, buf: UserPtr, len: usize, offset: UserPtr) -> Result<i64> {
        let queue = Queue::from_fd(kfd)?;
        faio::submit(&queue, fd, buf, len, offset, true)
    }
}
