// SPDX-License-Identifier: GPL-2.0

//! Files as event sources: `KEVENT_POLL` (any file with `->poll`), `KEVENT_PIPE`,
//! `KEVENT_SOCKET` and `KEVENT_INODE` (file and directory events).
//!
//! A registration remembers its file without holding a reference, like an epoll item; the
//! kernel's `file_release` hook removes it before the file goes away ([`file_release`]).
//! Notifications arrive without locks we own: from the file's wait queues through
//! [`PollEntries`] (poll and pipes), or from the socket hooks ([`sock_event`]). Both only use
//! the poll mask they are given (or the socket's lockless state) and never call `->poll`;
//! readiness is confirmed with `->poll` in process context, at ADD and at harvest
//! ([`Source::confirm`]), with the queue's registration mutex held and no spinlock.
//!
//! `KEVENT_INODE` registrations watch the file's inode through a mark of the module's fsnotify
//! group ([`INODE_GROUP`]), as inotify does. Their events are occurrences, not states: they are
//! not confirmed; an event reports the events that happened (`ret_data[0]`, a mask) and how
//! many notifications it stands for (`ret_data[1]`) since the last delivery.
//!
//! Storage: the file's inode holds a [`FileWatchers`] tree (list [`ON_INODE`]) for
//! `file_release`, a socket's slot its [`SocketStorage`] (list [`ON_SOCKET`]) for its hooks.

use super::{
    socket::{SocketStorage, ON_SOCKET},
    Source,
};
use crate::{
    compat::{
        errno,
        file::{File, FileRef, WatchedFile},
        fsnotify::{MarkOwner, MarkSlot, NotifyGroup},
        poll::{
            poll_now, PollEntries, PollWaiter, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP,
            EPOLLRDNORM, EPOLLWRNORM,
        },
        slot::Slot,
        sock::{Sock, SK_ERROR, SK_READABLE, SK_WRITABLE},
        uapi::{self, Ukevent},
    },
    ctl::{self, Outcome},
    nesting,
    queue::{Queue, Registrations},
    registration::{Registration, Report},
    storage::{self, FileWatchers},
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    error::code::*,
    list::{
        impl_has_list_links, impl_list_arc_safe, impl_list_item, AtomicTracker, ListLinks,
        TryNewListArc,
    },
    new_mutex,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
};

/// List id of a file registration's place on its inode's storage.
pub(crate) const ON_INODE: u64 = 1;

/// A file registration.
pub(crate) type FileReg = Registration<FileWatch>;
/// What an inode's slot holds: the file registrations of its open files.
type InodeWatchers = FileWatchers<FileReg, ON_INODE>;

/// The fsnotify group of `KEVENT_INODE` registrations, started at load.
pub(crate) static INODE_GROUP: NotifyGroup<FileReg> = NotifyGroup::new();

/// The kind of file registration.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// `KEVENT_POLL`: `ret_data[0]` is the poll mask.
    Poll,
    /// `KEVENT_PIPE`: `RECV`/`SEND`, other end closed is `BROKEN`.
    Pipe,
    /// `KEVENT_SOCKET`: `RECV`/`ACCEPT`/`SEND`, errors and hang-ups are `BROKEN`.
    Socket,
    /// `KEVENT_INODE`: `KEVENT_INODE_*` events, through an fsnotify mark.
    Inode,
}

/// What a file registration keeps.
#[pin_data]
pub(crate) struct FileWatch {
    /// The file, alive while the registration is in its queue.
    file: WatchedFile,
    /// How its events are reported.
    kind: FileKind,
    /// The file's inode slot (for `file_release`).
    inode: Slot,
    /// The socket's slot, for `KEVENT_SOCKET`.
    sock: Option<Slot>,
    /// The queue behind the file, when a queue watches a queue.
    nested: Option<Arc<Queue>>,
    /// Whether the link to `nested` is recorded in the graph of nested queues.
    linked: AtomicBool,
    /// Whether it is on the storage lists (changed under the storage lock).
    attached: AtomicBool,
    /// Set by `disarm`, which runs with the queue's registrations locked (or once the queue is
    /// dead and nothing harvests it): under that lock it says whether the file may still be
    /// polled.
    disarmed: AtomicBool,
    /// Wait queue entries of `KEVENT_POLL` and `KEVENT_PIPE` on the file.
    #[pin]
    entries: Mutex<PollEntries<FileReg>>,
    /// The fsnotify mark of `KEVENT_INODE`.
    mark: MarkSlot<FileReg>,
    #[pin]
    inode_links: ListLinks<ON_INODE>,
    #[pin]
    inode_tracker: AtomicTracker<ON_INODE>,
    #[pin]
    sock_links: ListLinks<ON_SOCKET>,
    #[pin]
    sock_tracker: AtomicTracker<ON_SOCKET>,
}

impl_list_arc_safe! {
    impl ListArcSafe<ON_INODE> for FileWatch { tracked_by inode_tracker: AtomicTracker<ON_INODE>; }
    impl ListArcSafe<ON_SOCKET> for FileWatch { tracked_by sock_tracker: AtomicTracker<ON_SOCKET>; }
    impl ListArcSafe<ON_INODE> for FileReg { tracked_by watch: FileWatch; }
    impl ListArcSafe<ON_SOCKET> for FileReg { tracked_by watch: FileWatch; }
}
impl_has_list_links! {
    impl HasListLinks<ON_INODE> for Registration<FileWatch> { self.watch.inode_links }
    impl HasListLinks<ON_SOCKET> for Registration<FileWatch> { self.watch.sock_links }
}
impl_list_item! {
    impl ListItem<ON_INODE> for FileReg { using ListLinks; }
    impl ListItem<ON_SOCKET> for FileReg { using ListLinks; }
}

// A file registration and its `Arc`'s count fit in kmalloc-256, half of the next size up
// (`memwatch` measures the memory per watched file). Lock debugging makes locks larger.
#[cfg(not(any(CONFIG_DEBUG_SPINLOCK, CONFIG_DEBUG_MUTEXES, CONFIG_DEBUG_LOCK_ALLOC)))]
const _: () = assert!(core::mem::size_of::<FileReg>() + 8 <= 256);

/// Poll bits a `KEVENT_POLL` registration may ask for.
const POLL_EVENTS: u32 = 0xffff;
/// Events that are reported whether asked for or not.
const ALWAYS: u32 = EPOLLERR | EPOLLHUP;

impl Source for FileWatch {
    const CONFIRMED: bool = true;

    /// Inode events are occurrences: there is no state to confirm.
    fn confirmed_for(req: &Ukevent) -> bool {
        req.type_ != uapi::TYPE_INODE
    }

    fn add(queue: &Arc<Queue>, regs: &mut Registrations, req: &Ukevent) -> Result<Outcome> {
        let fd = i32::try_from(req.id).map_err(|_| EBADF)?;
        let file = FileRef::fget(fd)?;
        let (kind, valid) = match req.type_ {
            uapi::TYPE_POLL => (FileKind::Poll, POLL_EVENTS),
            uapi::TYPE_PIPE => (FileKind::Pipe, uapi::SOCKET_RECV | uapi::SOCKET_SEND),
            uapi::TYPE_INODE => (FileKind::Inode, uapi::INODE_ALL),
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
            FileKind::Socket => {
                sock = Some(Sock::of_file(&file).ok_or_else(errno::enotsock)?.slot());
            }
            _ => {}
        }
        let nested = file.queue::<Queue>();
        if nested.as_ref().is_some_and(|t| Arc::ptr_eq(t, queue)) {
            // A queue watching itself would always be ready.
            return Err(EINVAL);
        }
        let (watched, inode) = (WatchedFile::new(&file), file.inode_slot());
        let watch = try_pin_init!(FileWatch {
            file: watched,
            kind,
            inode,
            sock,
            nested,
            linked: AtomicBool::new(false),
            attached: AtomicBool::new(false),
            disarmed: AtomicBool::new(false),
            entries <- new_mutex!(PollEntries::new(), "FileWatch::entries"),
            mark: MarkSlot::new(),
            inode_links <- ListLinks::new(),
            inode_tracker <- AtomicTracker::new(),
            sock_links <- ListLinks::new(),
            sock_tracker <- AtomicTracker::new(),
        }? Error);
        ctl::register::<Self>(queue, regs, req, watch, |reg| arm(reg, &file))
    }

    /// Takes the registration off the file's wait queues and storage and out of the graph of
    /// nested queues.
    fn disarm(reg: &FileReg) {
        let fw = &reg.watch;
        fw.disarmed.store(true, Ordering::Relaxed);
        fw.entries.lock().clear();
        fw.mark.detach();
        // Only fails when the module is going away, when nothing is attached any more.
        let _ = storage::with_lock(|locked| {
            if fw.attached.swap(false, Ordering::Relaxed) {
                InodeWatchers::detach(locked, &fw.inode, fw.file.addr(), reg);
                if let Some(sock) = &fw.sock {
                    SocketStorage::detach(locked, sock, reg, |l| &mut l.readiness);
                }
            }
        });
        if let Some(child) = &fw.nested {
            if fw.linked.swap(false, Ordering::Relaxed) {
                nesting::unlink(&reg.queue, child);
            }
        }
    }

    fn confirm(&self, _regs: &Registrations, event: u32) -> Option<Report> {
        // The caller holds the registrations lock, which orders this read after `disarm`.
        if self.disarmed.load(Ordering::Relaxed) {
            return None;
        }
        // SAFETY: The caller holds the registrations lock and the registration is not disarmed:
        // `file_release` disarms it under that same lock before the file goes away.
        let file = unsafe { self.file.get() };
        evaluate(self.kind, event, poll_now(file), Sock::of_file(file))
    }
}

/// Starts watching: records a queue-in-queue link, attaches the registration to the file's
/// storage and, for poll and pipes, puts it on the file's wait queues. Returns the initial
/// readiness.
fn arm(reg: &Arc<FileReg>, file: &File) -> Result<Option<Report>> {
    let fw = &reg.watch;
    if let Some(child) = &fw.nested {
        // Before the registration can be woken: a cycle would deadlock the first wake-up.
        nesting::link(&reg.queue, child)?;
        fw.linked.store(true, Ordering::Relaxed);
    }
    storage::with_lock(|locked| {
        let addr = fw.file.addr();
        InodeWatchers::attach(locked, &fw.inode, addr, reg)?;
        if let Some(sock) = &fw.sock {
            if let Err(e) = SocketStorage::attach(locked, sock, reg, |l| &mut l.readiness) {
                InodeWatchers::detach(locked, &fw.inode, addr, reg);
                return Err(e);
            }
        }
        fw.attached.store(true, Ordering::Relaxed);
        Ok(())
    })??;
    let event = reg.event();
    let revents = match fw.kind {
        FileKind::Socket => poll_now(file),
        FileKind::Poll => fw.entries.lock().watch(file, reg, event | ALWAYS)?,
        FileKind::Pipe => fw
            .entries
            .lock()
            .watch(file, reg, pipe_mask(event) | ALWAYS)?,
        FileKind::Inode => {
            // Nothing has happened yet: no initial event.
            fw.mark.attach(&INODE_GROUP, file, reg.clone())?;
            return Ok(None);
        }
    };
    Ok(evaluate(fw.kind, event, revents, Sock::of_file(file)))
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
fn evaluate(kind: FileKind, event: u32, revents: u32, sock: Option<&Sock>) -> Option<Report> {
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
            if readable && !writable && !broken && sock.is_some() && data[0] == 0 {
                // A late notification: what it announced was read already (it is no news, and
                // a ring entry would send the reader to an empty socket).
                return None;
            }
            Some((flags, data))
        }
        // Inode events never come from a poll mask.
        FileKind::Inode => None,
    }
}

/// Applies a notification's poll mask to a registration; ignored if it does not concern it.
fn notify(reg: ArcBorrow<'_, FileReg>, revents: u32, sock: Option<&Sock>) {
    let kind = reg.watch.kind;
    Registration::notify(reg, |st| match evaluate(kind, st.event, revents, sock) {
        // A poll mask: pending notifications add up.
        Some(report) if kind == FileKind::Poll => {
            st.report_mask(report);
            true
        }
        Some(report) => {
            st.report(report);
            true
        }
        None => false,
    });
}

impl PollWaiter for FileReg {
    /// A wake-up on a watched file's wait queue. A wake-up without a key says nothing about
    /// the events: it counts as all of them, and the harvest confirms.
    fn woken(this: ArcBorrow<'_, Self>, key: u32) {
        let revents = if key == 0 { u32::MAX } else { key };
        notify(this, revents, None);
    }
}

impl MarkOwner for FileReg {
    /// Inode events `mask` on the watched inode: those asked for make the registration ready;
    /// while it waits to be delivered, further ones add to its mask and count.
    fn inode_event(this: ArcBorrow<'_, Self>, mask: u32) {
        Registration::notify(this, |st| {
            let hit = mask & st.event;
            if hit == 0 {
                return false;
            }
            let bits = hit | (mask & uapi::INODE_ISDIR);
            if st.queued {
                st.ret_data[0] |= bits;
                st.ret_data[1] = st.ret_data[1].saturating_add(1);
            } else {
                st.ret_data = [bits, 1];
            }
            true
        });
    }
}

/// The socket hooks: readiness of a watched socket changed.
pub(super) fn sock_event(sk: &Sock, storage: &SocketStorage, what: u32) {
    let mut revents = sk.revents_hint(what);
    if what & !(SK_READABLE | SK_WRITABLE | SK_ERROR) != 0 {
        // A state change (connected, closed, ...): let the harvest find out which.
        revents |= EPOLLIN | EPOLLOUT;
    }
    storage.with(|lists| {
        for reg in lists.readiness.iter() {
            notify(reg, revents, Some(sk));
        }
    });
}

/// The last reference to `file` is going away: remove every registration watching it from its
/// queue.
pub(super) fn file_release(file: &File) {
    let taken = storage::with_lock(|locked| {
        let taken = InodeWatchers::take(locked, &file.inode_slot(), WatchedFile::new(file).addr());
        for reg in taken.iter() {
            if let Some(sock) = &reg.watch.sock {
                SocketStorage::detach(locked, sock, &*reg, |l| &mut l.readiness);
            }
            reg.watch.attached.store(false, Ordering::Relaxed);
        }
        taken
    });
    if let Ok(taken) = taken {
        super::forget_all(taken);
    }
}
