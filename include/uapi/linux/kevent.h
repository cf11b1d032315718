/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kevent: a unified kernel event queue.
 *
 * This header is the single source of truth for the kevent ABI: it is used
 * by the kernel hook layer, by the Rust module (through bindgen) and by user
 * space. Names and values follow the 2006 kevent patches where they exist;
 * extensions are marked "new".
 */
#ifndef _UAPI_LINUX_KEVENT_H
#define _UAPI_LINUX_KEVENT_H

#include <linux/types.h>
#include <linux/time_types.h>

/* Event types (struct ukevent::type). */
#define KEVENT_SOCKET		0
#define KEVENT_INODE		1
#define KEVENT_TIMER		2
#define KEVENT_POLL		3
#define KEVENT_NAIO		4
#define KEVENT_AIO		5
#define KEVENT_PIPE		6
#define KEVENT_SIGNAL		7
#define KEVENT_POSIX_TIMER	8
#define KEVENT_UNOTIFY		9
#define KEVENT_MAX		10	/* number of types */

/* Socket, pipe and network AIO event masks (struct ukevent::event). */
#define KEVENT_SOCKET_RECV	0x1
#define KEVENT_SOCKET_ACCEPT	0x2
#define KEVENT_SOCKET_SEND	0x4

/* Timer and signal event masks. Poll masks are the POLL* values. */
#define KEVENT_TIMER_FIRED	0x1
#define KEVENT_SIGNAL_DELIVERY	0x1
#define KEVENT_POSIX_TIMER_FIRED 0x1
#define KEVENT_UNOTIFY_FIRED	0x1
#define KEVENT_AIO_DONE		0x1

/*
 * Inode event masks (KEVENT_INODE; id = a descriptor of the watched file or
 * directory). CREATE and REMOVE keep the 2006 values; the rest are new.
 * ret_data[0] is the mask of what happened (plus KEVENT_INODE_ISDIR when it
 * concerned a directory) and ret_data[1] the number of notifications
 * coalesced into the event.
 */
#define KEVENT_INODE_CREATE	0x1	/* an entry was created in the directory */
#define KEVENT_INODE_REMOVE	0x2	/* an entry was removed from the directory */
#define KEVENT_INODE_DELETE	KEVENT_INODE_REMOVE
#define KEVENT_INODE_MODIFY	0x4	/* the file (or an entry) was written */
#define KEVENT_INODE_ATTRIB	0x8	/* metadata changed */
#define KEVENT_INODE_MOVED_FROM	0x10	/* an entry was renamed away */
#define KEVENT_INODE_MOVED_TO	0x20	/* an entry was renamed in */
#define KEVENT_INODE_DELETE_SELF 0x40	/* the watched inode was deleted */
#define KEVENT_INODE_MOVE_SELF	0x80	/* the watched inode was renamed */
#define KEVENT_INODE_ALL	0xff	/* every inode event */
#define KEVENT_INODE_ISDIR	0x40000000 /* ret_data[0]: about a directory */

/* Bit 63 of id.raw_u64 of a KEVENT_SIGNAL registration: deliver only here. */
#define KEVENT_SIGNAL_NOMASK	0x8000000000000000ULL

#define KEVENT_MASK_ALL		0xffffffff
#define KEVENT_MASK_EMPTY	0x0

/* Request flags (struct ukevent::req_flags). */
#define KEVENT_REQ_ONESHOT	0x1	/* remove after the first delivery */
#define KEVENT_REQ_WAKEUP_ALL	0x2	/* wake every waiter, not one */
#define KEVENT_REQ_ET		0x4	/* edge triggered */
#define KEVENT_REQ_LAST_CHECK	0x8	/* re-check readiness at harvest */
#define KEVENT_REQ_ALWAYS_QUEUE	0x10	/* keep it even if ready at ADD */
#define KEVENT_REQ_READY	0x20	/* mark ready at ADD */
#define KEVENT_REQ_DISPATCH	0x40	/* new: disable after delivery */
#define KEVENT_REQ_MASK		0x7f	/* every valid request flag */

/* Return flags (struct ukevent::ret_flags). */
#define KEVENT_RET_BROKEN	0x1
#define KEVENT_RET_DONE		0x2
#define KEVENT_RET_COPY_FAILED	0x4
#define KEVENT_RET_COPIED	0x8	/* network AIO: the data were copied */

/* kevent_ctl() commands. */
#define KEVENT_CTL_ADD		0
#define KEVENT_CTL_REMOVE	1
#define KEVENT_CTL_MODIFY	2
#define KEVENT_CTL_READY	3
#define KEVENT_CTL_PLUG		4	/* new: hold file AIO requests until UNPLUG */
#define KEVENT_CTL_UNPLUG	5	/* new: start the held requests as one batch */

/* struct kevent_wait_arg::flags. */
#define KEVENT_WAIT_TIMEOUT	0x1	/* timeout is valid */
#define KEVENT_WAIT_ABSTIME	0x2	/* timeout is absolute CLOCK_MONOTONIC */
#define KEVENT_WAIT_MASK	0x3

/* new: sigevent::sigev_notify value; the queue fd goes in sigev_notify_thread_id. */
#define SIGEV_KEVENT		8

/* Limits. */
#define KEVENT_MAX_RING_SIZE	(1U << 16)	/* entries in one ring */
#define KEVENT_MAX_CTL_BATCH	(1U << 16)	/* entries in one kevent_ctl() */
/* Longest chain of queues watching queues (KEVENT_POLL); deeper is ELOOP. */
#define KEVENT_MAX_NESTS	4
/* Shortest period of a periodic KEVENT_TIMER; shorter ones are clamped. */
#define KEVENT_TIMER_MIN_PERIOD_NS 100000

struct kevent_id {
	union {
		__u32 raw[2];
		__aligned_u64 raw_u64;
	};
};

/*
 * One event: the registration request (ctl) and the delivered event
 * (get_events and the ring) share this layout. 48 bytes on every ABI.
 */
struct ukevent {
	struct kevent_id id;	/* per-type identity, lookup key with type */
	__u32 type;		/* KEVENT_* type */
	__u32 event;		/* per-type event mask */
	__u32 req_flags;	/* KEVENT_REQ_* */
	__u32 ret_flags;	/* KEVENT_RET_* (kernel-written) */
	__u32 ret_data[2];	/* type-specific result; [1] = -errno on failure */
	__u64 user;		/* opaque cookie, returned unchanged */
	__u64 seq;		/* new: per-queue order in which events became ready */
};

/* Header of the ring mapped at offset 0 of a queue fd; 32 bytes. */
struct kevent_ring {
	__u32 ring_kidx;	/* producer index (kernel) */
	__u32 ring_uidx;	/* consumer index (user space may advance it) */
	__u32 ring_over;	/* times the consumer index wrapped */
	__u32 ring_size;	/* entries in event[] */
	__u32 __reserved[4];
	struct ukevent event[];
};

#define KEVENT_RING_HEADER_SIZE	32
/* Bytes to mmap() for a ring of @n entries (round up to the page size). */
#define KEVENT_RING_BYTES(n)	(KEVENT_RING_HEADER_SIZE + (__u64)(n) * sizeof(struct ukevent))

/* new: arguments of the waiting calls; NULL waits forever. */
struct kevent_wait_arg {
	struct __kernel_timespec timeout;
	__u64 sigmask;		/* user pointer to a sigset_t, or 0 */
	__u32 sigsetsize;
	__u32 flags;		/* KEVENT_WAIT_* */
};

/* System call numbers (x86_64). */
#if defined(__x86_64__) && !defined(__ILP32__)
#define __NR_kevent_init	463
#define __NR_kevent_ctl		464
#define __NR_kevent_get_events	465
#define __NR_kevent_wait	466
#define __NR_kevent_commit	467
#define __NR_aio_send		468
#define __NR_aio_recv		469
#define __NR_aio_sendfile	470
#define __NR_aio_read		471
#define __NR_aio_write		472
#endif

#endif /* _UAPI_LINUX_KEVENT_H */
