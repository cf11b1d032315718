/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * libkevent: the user-space library of kevent, in the spirit of liburing.
 *
 *	#include <libkevent.h>		link with -lkevent (pkg-config kevent)
 *
 * One struct kevent_queue holds a queue descriptor, its mapped ring and a
 * batch of registrations being prepared. The library writes the ring
 * protocol once (acquire/release indices, wrap, commit) so that programs
 * never touch ring_kidx/ring_uidx themselves:
 *
 *	struct kevent_queue q;
 *	struct ukevent *e;
 *
 *	kevent_queue_init(&q, 256, O_CLOEXEC);		ring of 256 entries
 *	kevent_prep_socket(kevent_queue_get_entry(&q), sock,
 *			   KEVENT_SOCKET_RECV, KEVENT_REQ_ET, cookie);
 *	kevent_queue_submit(&q, KEVENT_CTL_ADD, NULL);	one kevent_ctl()
 *	for (;;) {
 *		kevent_queue_wait(&q, &e, NULL);	ring first, sleeps if empty
 *		handle(e);
 *		kevent_queue_advance(&q, 1);		gives the slot back
 *	}
 *
 * Every function that can fail returns a negative errno value (-EINVAL, ...)
 * and leaves errno alone, like liburing. Functions of one queue are not
 * thread-safe: use one struct kevent_queue per thread (several may share one
 * descriptor through kevent_queue_init_fd(); only one of them may consume
 * the ring) or a lock.
 *
 * Structures and constants come from <linux/kevent.h>, the kernel's ABI
 * header; the raw system calls (returning -1 and errno) from
 * <kevent_syscalls.h>.
 */
#ifndef LIBKEVENT_H
#define LIBKEVENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <kevent_syscalls.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; kevent_version() is the library's. */
#define LIBKEVENT_VERSION_MAJOR	1
#define LIBKEVENT_VERSION_MINOR	0

/* Registrations prepared per kevent_queue_submit() unless told otherwise. */
#define LIBKEVENT_DEFAULT_BATCH	64

/*
 * A queue as the library sees it. Read the fields, do not write them: they
 * belong to the library (the layout may grow at the end in a later minor
 * version).
 */
struct kevent_queue {
	int fd;				/* the queue descriptor */
	unsigned int ring_size;		/* entries in the ring; 0: no ring */
	struct kevent_ring *ring;	/* the mapped ring, or NULL */
	size_t ring_bytes;		/* length of the mapping */
	unsigned int uidx;		/* next ring index to consume */
	unsigned int batch_len;		/* registrations prepared */
	unsigned int batch_cap;		/* room in batch[] */
	unsigned int flags;		/* LIBKEVENT_Q_* (private) */
	struct ukevent *batch;		/* registrations being prepared */
	int pid;			/* the process that mapped the ring */
};

/*
 * Queue creation. @ring_entries is 0 (no ring: harvest with copies) or a
 * power of two up to KEVENT_MAX_RING_SIZE; @flags are kevent_init()'s
 * (O_CLOEXEC). Returns 0 or -errno.
 */
int kevent_queue_init(struct kevent_queue *q, unsigned int ring_entries, unsigned int flags);
/* The same with a batch of @batch_entries registrations (1..KEVENT_MAX_CTL_BATCH). */
int kevent_queue_init_batch(struct kevent_queue *q, unsigned int ring_entries,
			    unsigned int flags, unsigned int batch_entries);
/*
 * Wraps an existing queue descriptor @fd (not taken over: kevent_queue_exit()
 * leaves it open). @map_ring: map its ring (if it has one) and consume it.
 */
int kevent_queue_init_fd(struct kevent_queue *q, int fd, bool map_ring);
/*
 * Unmaps the ring, frees the batch and closes the descriptor (if owned).
 * The ring mapping is not inherited across fork(): in a child, exit leaves
 * the ring's address alone (something else may be mapped there by then) and
 * a child that wants the ring wraps the inherited descriptor again with
 * kevent_queue_init_fd().
 */
void kevent_queue_exit(struct kevent_queue *q);

static inline int kevent_queue_fd(const struct kevent_queue *q)
{
	return q->fd;
}

/* ---- Builders: fill one struct ukevent (zeroing it first). ---- */

static inline void kevent_prep(struct ukevent *e, uint32_t type, uint64_t id, uint32_t event,
			       uint32_t req_flags, uint64_t user)
{
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->id.raw_u64 = id;
	e->event = event;
	e->req_flags = req_flags;
	e->user = user;
}

/* A socket: @events is KEVENT_SOCKET_RECV | _ACCEPT | _SEND. */
static inline void kevent_prep_socket(struct ukevent *e, int fd, uint32_t events,
				      uint32_t req_flags, uint64_t user)
{
	kevent_prep(e, KEVENT_SOCKET, (uint32_t)fd, events, req_flags, user);
}

/* Any pollable file: @events is a POLLIN | POLLOUT | ... mask. */
static inline void kevent_prep_poll(struct ukevent *e, int fd, uint32_t events,
				    uint32_t req_flags, uint64_t user)
{
	kevent_prep(e, KEVENT_POLL, (uint32_t)fd, events, req_flags, user);
}

/* A pipe end: @events is KEVENT_SOCKET_RECV (data) or KEVENT_SOCKET_SEND (room). */
static inline void kevent_prep_pipe(struct ukevent *e, int fd, uint32_t events,
				    uint32_t req_flags, uint64_t user)
{
	kevent_prep(e, KEVENT_PIPE, (uint32_t)fd, events, req_flags, user);
}

/* A file or directory: @events is a KEVENT_INODE_CREATE | _REMOVE | ... mask. */
static inline void kevent_prep_inode(struct ukevent *e, int fd, uint32_t events,
				     uint32_t req_flags, uint64_t user)
{
	kevent_prep(e, KEVENT_INODE, (uint32_t)fd, events, req_flags, user);
}

/*
 * A timer of period @ns nanoseconds (periodic, or once with
 * KEVENT_REQ_ONESHOT). The period is the timer's id: one timer per period
 * and queue; REMOVE and MODIFY find it by its period.
 */
static inline void kevent_prep_timer(struct ukevent *e, uint64_t ns, uint32_t req_flags,
				     uint64_t user)
{
	kevent_prep(e, KEVENT_TIMER, 0, KEVENT_TIMER_FIRED, req_flags, user);
	e->id.raw[0] = (uint32_t)(ns / 1000000000u);
	e->id.raw[1] = (uint32_t)(ns % 1000000000u);
}

/*
 * Signal @signo sent to this process. @nomask: deliver it only to the queue
 * (KEVENT_SIGNAL_NOMASK), not to the handler or to sigwait.
 */
static inline void kevent_prep_signal(struct ukevent *e, int signo, bool nomask,
				      uint32_t req_flags, uint64_t user)
{
	kevent_prep(e, KEVENT_SIGNAL, (uint32_t)signo | (nomask ? KEVENT_SIGNAL_NOMASK : 0),
		    KEVENT_SIGNAL_DELIVERY, req_flags, user);
}

/* A user event @id, fired by kevent_prep_fire() + KEVENT_CTL_READY. */
static inline void kevent_prep_user(struct ukevent *e, uint64_t id, uint32_t req_flags,
				    uint64_t user)
{
	kevent_prep(e, KEVENT_UNOTIFY, id, KEVENT_UNOTIFY_FIRED, req_flags, user);
}

/* The entry that fires user event @id (submit it with KEVENT_CTL_READY). */
static inline void kevent_prep_fire(struct ukevent *e, uint64_t id)
{
	kevent_prep(e, KEVENT_UNOTIFY, id, 0, 0, 0);
}

/*
 * The entry that removes (KEVENT_CTL_REMOVE) or looks up (MODIFY) the
 * registration (@type, @id); for REMOVE of a KEVENT_NAIO/KEVENT_AIO request
 * id it cancels the request.
 */
static inline void kevent_prep_key(struct ukevent *e, uint32_t type, uint64_t id)
{
	kevent_prep(e, type, id, 0, 0, 0);
}

/*
 * POSIX timers are made by timer_create(), not by a registration: fill @sev
 * so that the timer's expirations arrive on @q as KEVENT_POSIX_TIMER events
 * whose user field is @user.
 */
static inline void kevent_prep_sigevent(struct sigevent *sev, const struct kevent_queue *q,
					uint64_t user)
{
	kevent_sigevent(sev, q->fd);
	sev->sigev_value.sival_ptr = (void *)(uintptr_t)user;
}

/* ---- Batched registration (one kevent_ctl() per batch). ---- */

/*
 * The next free entry of the batch, zeroed, or NULL when the batch is full
 * (submit it first).
 */
static inline struct ukevent *kevent_queue_get_entry(struct kevent_queue *q)
{
	struct ukevent *e;

	if (q->batch_len == q->batch_cap)
		return NULL;
	e = &q->batch[q->batch_len++];
	memset(e, 0, sizeof(*e));
	return e;
}

static inline unsigned int kevent_queue_batched(const struct kevent_queue *q)
{
	return q->batch_len;
}

/*
 * Submits the prepared entries with command @cmd (KEVENT_CTL_ADD, _REMOVE,
 * _MODIFY, _READY) in one kevent_ctl() and empties the batch. Returns the
 * number of entries that came back (failed: KEVENT_RET_BROKEN with
 * ret_data[1] = -errno; or ready at ADD: KEVENT_RET_DONE) and points *@back
 * (if not NULL) at them; they stay valid until the next kevent_queue_get_entry().
 * An empty batch returns 0. On a failure of the call itself, -errno (the
 * batch is dropped; entries before a fault may have taken effect).
 */
int kevent_queue_submit(struct kevent_queue *q, unsigned int cmd, struct ukevent **back);

/*
 * One entry, at once (no batch): 0 if it was taken quietly, 1 if it came
 * back (look at e->ret_flags, e->ret_data[1]), or -errno.
 */
int kevent_queue_ctl(struct kevent_queue *q, unsigned int cmd, struct ukevent *e);

/* ---- Harvesting. ---- */

/*
 * Ring mode, zero system calls: the next unconsumed event in the ring, or
 * NULL. It stays in its slot (and is returned again) until
 * kevent_queue_advance().
 */
static inline struct ukevent *kevent_queue_peek(struct kevent_queue *q)
{
	unsigned int kidx = __atomic_load_n(&q->ring->ring_kidx, __ATOMIC_ACQUIRE);

	if (kidx == q->uidx)
		return NULL;
	return &q->ring->event[q->uidx & (q->ring_size - 1)];
}

/* Ring mode: events ready in the ring, at most ring_size. */
static inline unsigned int kevent_queue_ready(const struct kevent_queue *q)
{
	return __atomic_load_n(&q->ring->ring_kidx, __ATOMIC_ACQUIRE) - q->uidx;
}

/*
 * Ring mode: up to @max pointers to consecutive unconsumed events; returns
 * how many. Consume them with kevent_queue_advance(q, n).
 */
static inline unsigned int kevent_queue_peek_batch(struct kevent_queue *q,
						   struct ukevent **events, unsigned int max)
{
	unsigned int n = kevent_queue_ready(q);

	if (n > max)
		n = max;
	for (unsigned int i = 0; i < n; i++)
		events[i] = &q->ring->event[(q->uidx + i) & (q->ring_size - 1)];
	return n;
}

/*
 * Ring mode: gives @n consumed slots back. The consumer index is stored
 * with release semantics, so the kernel may refill the slots from its next
 * notification on, without a system call.
 */
static inline void kevent_queue_advance(struct kevent_queue *q, unsigned int n)
{
	q->uidx += n;
	__atomic_store_n(&q->ring->ring_uidx, q->uidx, __ATOMIC_RELEASE);
}

/*
 * Ring mode: every event ready in the ring now; then kevent_queue_advance()
 * by the number seen.
 *
 *	unsigned int i, n = 0;
 *	struct ukevent *e;
 *	kevent_queue_for_each(q, i, e) { handle(e); n++; }
 *	kevent_queue_advance(q, n);
 */
#define kevent_queue_for_each(q, i, e)							\
	/* Ring and mask in locals whose address never escapes: the compiler keeps	\
	 * them in registers instead of reloading them from *q after every	\
	 * acquire load. The outer loops run once; a break ends them too. */	\
	for (struct kevent_ring *__kq_ring = (q)->ring; __kq_ring; __kq_ring = NULL)	\
		for (unsigned int __kq_mask = (q)->ring_size - 1, __kq_once = 1;	\
		     __kq_once; __kq_once = 0)						\
			for ((i) = (q)->uidx;						\
			     ((e) = (i) != __atomic_load_n(&__kq_ring->ring_kidx,	\
							   __ATOMIC_ACQUIRE)		\
				      ? &__kq_ring->event[(i) & __kq_mask] : NULL);	\
			     (i)++)

/*
 * Fills @arg for the waiting calls: a timeout of @timeout_ns (relative;
 * UINT64_MAX: none) and, if @sigmask is not NULL, the signal mask to wait
 * with (swapped atomically, as in ppoll/epoll_pwait2).
 */
void kevent_wait_arg_init(struct kevent_wait_arg *arg, uint64_t timeout_ns,
			  const sigset_t *sigmask);

/*
 * Ring mode: the next event, sleeping in kevent_wait() only while the ring
 * is empty. *@e points into the ring; consume it with kevent_queue_advance().
 * @arg (NULL: forever) as built by kevent_wait_arg_init(). Returns 0,
 * -ETIME when the timeout passed with nothing ready, -EINTR when a signal
 * (of the mask) interrupted the wait, -EINVAL without a ring, or -errno.
 */
int kevent_queue_wait(struct kevent_queue *q, struct ukevent **e,
		      const struct kevent_wait_arg *arg);

/* The same with a timeout in nanoseconds (UINT64_MAX: none) and a signal mask (or NULL). */
int kevent_queue_wait_timeout(struct kevent_queue *q, struct ukevent **e, uint64_t timeout_ns,
			      const sigset_t *sigmask);

/*
 * Either mode: copies up to @max events into @events and consumes them,
 * waiting until at least @min are there (or the timeout of @arg passes,
 * or a signal comes). With a ring, the ring is read first and the call
 * sleeps only when it is empty; without, it is one kevent_get_events().
 * Returns the number of events copied (possibly fewer than @min after a
 * timeout or signal), or -errno when nothing was copied (-ETIME, -EINTR).
 */
int kevent_queue_harvest(struct kevent_queue *q, struct ukevent *events, unsigned int min,
			 unsigned int max, const struct kevent_wait_arg *arg);

/*
 * Ring mode: makes the kernel move waiting events into the ring now
 * (kevent_commit() of the consumer index). Only needed by consumers that
 * never sleep: kevent_queue_wait() and _harvest() do it when the ring is empty.
 * Returns the number of slots released, or -errno.
 */
int kevent_queue_flush(struct kevent_queue *q);

/* ---- Asynchronous I/O: each returns a request id >= 0, or -errno. ---- */

/*
 * The request completes as one event of type KEVENT_NAIO (network) or
 * KEVENT_AIO (files) whose id.raw_u64 is the request id, ret_data[0] the
 * bytes done and ret_data[1] 0 or -errno.
 */
int64_t kevent_queue_aio_send(struct kevent_queue *q, int sock, const void *buf, size_t len,
			      unsigned int flags);
int64_t kevent_queue_aio_recv(struct kevent_queue *q, int sock, void *buf, size_t len,
			      unsigned int flags);
int64_t kevent_queue_aio_sendfile(struct kevent_queue *q, int sock, int in_fd, uint64_t offset,
				  size_t count);
/* File AIO: regular files, at @offset (the file position is neither used nor changed). */
int64_t kevent_queue_aio_read(struct kevent_queue *q, int fd, void *buf, size_t len,
			      uint64_t offset);
int64_t kevent_queue_aio_write(struct kevent_queue *q, int fd, const void *buf, size_t len,
			       uint64_t offset);
/*
 * Batches of file AIO: between kevent_queue_plug() and kevent_queue_unplug(),
 * file AIO requests get their ids but are held; unplug starts them together,
 * so the disk is notified once (KEVENT_CTL_PLUG/UNPLUG of kevent_ctl(2)).
 * A wait on the queue unplugs it first. Plug returns 0, unplug the number of
 * requests started; both -errno on error.
 */
int kevent_queue_plug(struct kevent_queue *q);
int kevent_queue_unplug(struct kevent_queue *q);

/* ---- Version. ---- */

/* "MAJOR.MINOR" of the library actually linked. */
const char *kevent_version(void);
int kevent_version_major(void);
int kevent_version_minor(void);
/* True if the linked library is @major and at least @minor. */
bool kevent_check_version(int major, int minor);

#ifdef __cplusplus
}
#endif

#endif /* LIBKEVENT_H */
