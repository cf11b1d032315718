// SPDX-License-Identifier: GPL-2.0

//! Files as event sources: `KEVENT_POLL` (any file with `->poll`), `KEVENT_PIPE` and
//! `KEVENT_SOCKET`.
//!
//! A registration remembers its file without holding a reference, like an epoll item; the
//! kernel's `file_release` hook removes it before the file goes away ([`file_release`]).
//! Notifications arrive without locks we own: from the file's wait queues through
//! [`PollEntries`](crate::compat::poll::PollEntries) (poll and pipes), or from the socket hooks
//! ([`sock_event`]). Both only use the poll mask they are given (or the socket's lockless state)
//! and never call `->poll`; readiness is confirmed with `->poll` in process context, at ADD and
//! at harvest ([`confirm`]), with the queue's registration mutex held and no spinlock.

use crate::{
    compat::{
        errno,
        file::{File, WatchedFile},
        poll::{
            poll_now, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLRDNORM, EPOLLWRNORM,
        },
        slot::Slot,
        sock::{Sock, SK_ERROR, SK_READABLE, SK_WRITABLE},
        uapi::{self, Ukevent},
    },
    nesting,
    queue::{Queue, Registrations},
    registration::{Registration, Source},
    storage::{self, Watchers},
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    error::code::*,
    prelude::*,
    sync::{Arc, ArcBorrow},
};

/// What a ready file event reports: `(ret_flags, ret_data)`.
pub(crate) type Report = (u32, [u32; 2]);

/// The kind of file registration.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// `KEVENT_POLL`: `ret_data[0]` is the poll mask.
    Poll,
    /// `KEVENT_PIPE`: `RECV`/`SEND`, other end closed is `BROKEN`.
    Pipe,
    /// `KEVENT_SOCKET`: `RECV`/`ACCEPT`/`SEND`, errors and hang-ups are `BROKEN`.
    Socket,
}

/// What a file registration watches.
pub(crate) struct FileSource {
    /// The file, alive while the registration is in its queue.
    pub(crate) file: WatchedFile,
    /// How its events are reported.
    pub(crate) kind: FileKind,
    /// The file's inode slot (for `file_release`).
    pub(crate) inode: Slot,
    /// The socket's slot, for `KEVENT_SOCKET`.
    pub(crate) sock: Option<Slot>,
    /// The queue behind the file, when a queue watches a queue.
    nested: Option<Arc<Queue>>,
    /// Whether the link to `nested` is recorded in the graph of nested queues.
    linked: AtomicBool,
}

/// Poll bits a `KEVENT_POLL` registration may ask for.
const POLL_EVENTS: u32 = 0xffff;
/// Events that are reported whether asked for or not.
const ALWAYS: u32 = EPOLLERR | EPOLLHUP;

/// Checks an ADD of a file type for `file` (open as the request's id) and returns its source.
pub(crate) fn source_of(queue: &Arc<Queue>, req: &Ukevent, file: &File) -> Result<Source> {
    let (kind, valid) = match req.type_ {
        uapi::TYPE_POLL => (FileKind::Poll, POLL_EVENTS),
        uapi::TYPE_PIPE => (FileKind::Pipe, uapi::SOCKET_RECV | uapi::SOCKET_SEND),
        _ => (
            FileKind::Socket,
            uapi::SOCKET_RECV | uapi::SOCKET_ACCEPT | uapi::SOCKET_SEND,
        ),
    };
    if req.event == 0 || req.event & !valid != 0 {
        return Err(EINVAL);
    }
    let mut sock = None;
    match kind {
        FileKind::Poll if !file.can_poll() => return Err(EINVAL),
        FileKind::Pipe if !file.is_fifo() => return Err(EINVAL),
        FileKind::Socket => sock = Some(Sock::of_file(file).ok_or_else(errno::enotsock)?.slot()),
        _ => {}
    }
    let nested = file.queue();
    if nested.as_ref().is_some_and(|t| Arc::ptr_eq(t, queue)) {
        // A queue watching itself would always be ready.
        return Err(EINVAL);
    }
    Ok(Source::File(FileSource {
        file: WatchedFile::new(file),
        kind,
        inode: file.inode_slot(),
        sock,
        nested,
        linked: AtomicBool::new(false),
    }))
}

/// Starts watching: attaches the registration to the file's storage and, for poll and pipes,
/// puts it on the file's wait queues. Returns the initial readiness.
pub(crate) fn arm(reg: &Arc<Registration>, fs: &FileSource, file: &File) -> Result<Option<Report>> {
    if let Some(child) = &fs.nested {
        // Before the registration can be woken: a cycle would deadlock the first wake-up.
        nesting::link(&reg.queue, child)?;
        fs.linked.store(true, Ordering::Relaxed);
    }
    storage::attach(reg)?;
    let event = reg.state_event();
    let revents = match fs.kind {
        FileKind::Socket => poll_now(file),
        FileKind::Poll => reg.entries.lock().watch(file, reg, event | ALWAYS)?,
        FileKind::Pipe => reg
            .entries
            .lock()
            .watch(file, reg, pipe_mask(event) | ALWAYS)?,
    };
    Ok(evaluate(fs.kind, event, revents, Sock::of_file(file)))
}

/// Stops watching: takes the registration off the file's wait queues and storage and out of
/// the graph of nested queues. Idempotent.
pub(crate) fn disarm(reg: &Registration, fs: &FileSource) {
    reg.entries.lock().clear();
    storage::detach(reg);
    if let Some(child) = &fs.nested {
        if fs.linked.swap(false, Ordering::Relaxed) {
            nesting::unlink(&reg.queue, child);
        }
    }
}

/// The poll bits that mean `RECV`/`SEND` on a pipe.
fn pipe_mask(event: u32) -> u32 {
    let mut mask = 0;
    if event & uapi::SOCKET_RECV != 0 {
        mask |= EPOLLIN | EPOLLRDNORM;
    }
    if event & uapi::SOCKET_SEND != 0 {
        mask |= EPOLLOUT | EPOLLWRNORM;
    }
    mask
}

/// Decides whether poll mask `revents` makes a registration of `kind` for `event` ready, and
/// what it reports. `sock` is the socket of a `KEVENT_SOCKET` registration.
pub(crate) fn evaluate(
    kind: FileKind,
    event: u32,
    revents: u32,
    sock: Option<&Sock>,
) -> Option<Report> {
    match kind {
        FileKind::Poll => {
            let hit = revents & (event | ALWAYS);
            (hit != 0).then_some((0, [hit, 0]))
        }
        FileKind::Pipe => {
            let recv = event & uapi::SOCKET_RECV != 0;
            let send = event & uapi::SOCKET_SEND != 0;
            // No writers left: EPOLLHUP; no readers left: EPOLLERR.
            let broken = (recv && revents & EPOLLHUP != 0) || (send && revents & EPOLLERR != 0);
            let ready = (recv && revents & EPOLLIN != 0) || (send && revents & EPOLLOUT != 0);
            if broken {
                Some((uapi::RET_BROKEN, [0, 0]))
            } else {
                ready.then_some((0, [0, 0]))
            }
        }
        FileKind::Socket => {
            let readable = event & (uapi::SOCKET_RECV | uapi::SOCKET_ACCEPT) != 0
                && revents & (EPOLLIN | EPOLLRDNORM) != 0;
            let writable = event & uapi::SOCKET_SEND != 0 && revents & EPOLLOUT != 0;
            let broken = revents & (EPOLLERR | EPOLLHUP | EPOLLRDHUP) != 0;
            if !(readable || writable || broken) {
                return None;
            }
            let flags = if broken { uapi::RET_BROKEN } else { 0 };
            let data = sock.map_or([0, 0], |sk| [sk.backlog(), sk.error() as u32]);
            Some((flags, data))
        }
    }
}

/// Confirms at harvest that a file registration is still ready, with `->poll`. Called with
/// the queue's registrations locked (`_regs`), for a registration found live in its tree.
pub(crate) fn confirm(_regs: &Registrations, fs: &FileSource, event: u32) -> Option<Report> {
    // SAFETY: The caller holds the registrations lock and saw the registration live;
    // `file_release` detaches it under that same lock before the file goes away.
    let file = unsafe { fs.file.get() };
    evaluate(fs.kind, event, poll_now(file), Sock::of_file(file))
}

/// Applies a notification's poll mask to a registration; ignored if it does not concern it.
fn notify(reg: ArcBorrow<'_, Registration>, revents: u32, sock: Option<&Sock>) {
    let Some(fs) = reg.file_source() else {
        return;
    };
    let kind = fs.kind;
    Registration::fire(reg, |st| match evaluate(kind, st.event, revents, sock) {
        Some((flags, data)) => {
            st.ret_flags = flags;
            st.ret_data = data;
            true
        }
        None => false,
    });
}

/// A wake-up on a watched file's wait queue. A wake-up without a key says nothing about the
/// events: it counts as all of them, and the harvest confirms.
pub(crate) fn woken(reg: ArcBorrow<'_, Registration>, key: u32) {
    let revents = if key == 0 { u32::MAX } else { key };
    notify(reg, revents, None);
}

/// The socket hooks: readiness of a watched socket changed.
pub(crate) fn sock_event(sk: &Sock, watchers: &Watchers, what: u32) {
    let mut revents = sk.revents_hint(what);
    if what & !(SK_READABLE | SK_WRITABLE | SK_ERROR) != 0 {
        // A state change (connected, closed, ...): let the harvest find out which.
        revents |= EPOLLIN | EPOLLOUT;
    }
    watchers.for_each(|reg| notify(reg, revents, Some(sk)));
}

/// The last reference to `file` is going away: remove every registration watching it.
pub(crate) fn file_release(file: &File) {
    if let Ok(taken) = storage::take_file(file) {
        storage::forget_all(taken);
    }
}
