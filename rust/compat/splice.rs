// SPDX-License-Identifier: GPL-2.0

//! Sending a file's page-cache pages on a socket without copying them.
//!
//! C headers: [`include/linux/splice.h`](srctree/include/linux/splice.h) and
//! [`include/linux/pipe_fs_i.h`](srctree/include/linux/pipe_fs_i.h).
//!
//! `splice_direct_to_actor` reads a piece of the file into the calling task's internal pipe
//! (the file's own `splice_read`: page references, no copy) and hands the pipe to an actor;
//! [`sendfile_nowait`]'s actor attaches the pipe's pages to skbs (`MSG_SPLICE_PAGES`, as
//! `splice_to_socket` does) without blocking on the socket, and gives back the buffers the socket
//! took. What it did not take is dropped from the pipe and read again next time (from the page
//! cache). Reading may wait for the file's I/O: call it from a context that may block.

use super::{file::File, sock::socket_of};
use kernel::{bindings, error::code::*, prelude::*};

/// `FMODE_READ` (`include/linux/fs.h`; a `__force` cast that bindgen cannot evaluate).
const FMODE_READ: u32 = 1 << 0;
/// `FMODE_LSEEK`: the file is seekable.
const FMODE_LSEEK: u32 = 1 << 2;

/// Pipe buffers one actor call sends at most (the default pipe size).
const MAX_SEGMENTS: usize = 16;

/// Sends up to `len` bytes of `file` from offset `*pos` on the socket behind `sock`, without
/// copying and without blocking on the socket (`MSG_DONTWAIT`, `MSG_NOSIGNAL`). Returns the bytes
/// the socket took (advancing `*pos`), 0 at the end of the file, `EAGAIN` when the socket's send
/// buffer is full, or the read's or the send's error. Process context; may block on the file.
pub(crate) fn sendfile_nowait(
    sock: &File,
    file: &File,
    pos: &mut i64,
    len: usize,
) -> Result<usize> {
    socket_of(sock)?;
    // SAFETY: All-zero is an empty descriptor (no callback, no cookie).
    let mut sd: bindings::splice_desc = unsafe { core::mem::zeroed() };
    sd.total_len = len;
    sd.pos = *pos;
    sd.u.data = sock.as_ptr().cast();
    // SAFETY: `file` is valid for the call; `sd` is a complete descriptor whose cookie is the
    // socket file `send_pipe` expects, valid for the call.
    let ret = unsafe { bindings::splice_direct_to_actor(file.as_ptr(), &mut sd, Some(send_pipe)) };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    *pos = sd.pos;
    Ok(ret as usize)
}

/// The actor: sends the pipe's buffers on the socket in `sd.u.data`, releases those the socket
/// took whole and trims a partly taken one; returns the bytes taken or a negative errno.
///
/// # Safety
///
/// Called by `splice_direct_to_actor` with the task's internal pipe, filled by the read, and the
/// descriptor [`sendfile_nowait`] passed, whose cookie is a valid socket file.
unsafe extern "C" fn send_pipe(
    pipe: *mut bindings::pipe_inode_info,
    sd: *mut bindings::splice_desc,
) -> core::ffi::c_int {
    // SAFETY: Valid for the call (function safety); nobody else uses the internal pipe.
    let (pipe, sd) = unsafe { (&mut *pipe, &*sd) };
    // SAFETY: The cookie is a socket file (function safety).
    let socket = unsafe { bindings::sock_from_file(sd.u.data.cast()) };
    let mask = pipe.ring_size.wrapping_sub(1);
    // SAFETY: All-zero segments are empty; only the first `n` are used.
    let mut segments: [bindings::bio_vec; MAX_SEGMENTS] = unsafe { core::mem::zeroed() };
    let (mut n, mut total, mut tail) = (0usize, 0usize, pipe.tail);
    while tail != pipe.head && n < MAX_SEGMENTS {
        // SAFETY: Slots from `tail` to `head` (masked by the power-of-two ring size) hold the
        // buffers the read filled.
        let buf = unsafe { &mut *pipe.bufs.add((tail & mask) as usize) };
        // SAFETY: A filled buffer has operations; `confirm` waits until its page is up to date.
        if let Some(confirm) = unsafe { (*buf.ops).confirm } {
            // SAFETY: As above.
            if unsafe { confirm(pipe, buf) } != 0 {
                break;
            }
        }
        segments[n] = bindings::bio_vec {
            bv_page: buf.page,
            bv_len: buf.len,
            bv_offset: buf.offset,
        };
        total += buf.len as usize;
        n += 1;
        tail = tail.wrapping_add(1);
    }
    if n == 0 {
        return -(bindings::EIO as core::ffi::c_int);
    }
    // SAFETY: All-zero is an empty message.
    let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
    // SAFETY: The segments describe pages the pipe holds references to until released below;
    // the stack takes its own references for what it keeps (`MSG_SPLICE_PAGES`).
    unsafe {
        bindings::iov_iter_bvec(
            &mut msg.msg_iter,
            bindings::ITER_SOURCE,
            segments.as_ptr(),
            n as _,
            total,
        )
    };
    msg.msg_flags = bindings::MSG_SPLICE_PAGES | bindings::MSG_DONTWAIT | bindings::MSG_NOSIGNAL;
    if sd.flags & bindings::SPLICE_F_MORE != 0 {
        msg.msg_flags |= bindings::MSG_MORE;
    }
    // SAFETY: `socket` belongs to the socket file, alive for the call; `msg` is complete.
    let sent = unsafe { bindings::sock_sendmsg(socket, &mut msg) };
    if sent <= 0 {
        return if sent == 0 { EAGAIN.to_errno() } else { sent };
    }
    let mut left = sent as u32;
    while left > 0 {
        // SAFETY: As above: the first buffers are the ones just sent.
        let buf = unsafe { &mut *pipe.bufs.add((pipe.tail & mask) as usize) };
        if buf.len > left {
            buf.offset += left;
            buf.len -= left;
            break;
        }
        left -= buf.len;
        let ops = buf.ops;
        buf.ops = core::ptr::null();
        // SAFETY: The buffer is filled (it has `ops`) and released once, as `pipe_buf_release`.
        if let Some(release) = unsafe { (*ops).release } {
            // SAFETY: As above.
            unsafe { release(pipe, buf) };
        }
        pipe.tail = pipe.tail.wrapping_add(1);
    }
    sent
}

/// Checks that [`sendfile_nowait`] can read `file`: `EBADF` if it was not opened for reading,
/// `EINVAL` if it cannot be spliced from at an offset (no `splice_read`, or not seekable).
pub(crate) fn check_can_splice_read(file: &File) -> Result {
    // SAFETY: `file` is valid (type invariant of `File`); its mode and operations are fixed
    // once it is open.
    let (mode, splice_read) = unsafe {
        let f = file.as_ptr();
        ((*f).f_mode, (*(*f).f_op).splice_read)
    };
    if mode & FMODE_READ == 0 {
        return Err(EBADF);
    }
    if mode & FMODE_LSEEK == 0 || splice_read.is_none() {
        return Err(EINVAL);
    }
    Ok(())
}
