/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kevent.c: a libevent 2.1 backend for kevent, the unified kernel event
 * queue of the kevent project, written against libkevent (<libkevent.h>).
 *
 * It is not part of libevent: the kevent project copies it into an
 * extracted libevent-2.1.12-stable tree at build time (libevent/README.md).
 *
 * Design
 * ------
 * - One kevent queue per event_base, with a mapped ring. Events are
 *   harvested from the ring without a system call; the backend sleeps in
 *   kevent_queue_wait_timeout() only when the ring is empty.
 * - Every fd is one KEVENT_POLL registration (id = fd, event = a POLLIN /
 *   POLLOUT / POLLRDHUP mask), always added with KEVENT_REQ_ALWAYS_QUEUE so
 *   that an fd that is ready when added is kept and queued instead of being
 *   reported by kevent_ctl() and dropped.
 * - EV_ET fds are registered with KEVENT_REQ_ET: the ring reports each
 *   wake-up once. Level-triggered fds (libevent's default) are plain
 *   registrations: the kernel re-checks a level-triggered entry with ->poll
 *   once its ring slot was consumed, at the next kevent_wait() (or
 *   kevent_commit()), and publishes it again while the file stays ready, as
 *   epoll_wait() re-checks its level-triggered items. The backend sleeps in
 *   kevent_wait() only when the ring is empty, so an idle loop costs one
 *   system call per iteration; when the ring is not empty and the last
 *   iteration delivered level-triggered entries, one kevent_commit() has
 *   them re-checked without sleeping.
 * - Ring entries carry the poll mask of the wake-up. A wake-up without a
 *   mask (some wake-ups, e.g. a TCP state change, do not say) comes as
 *   every requested bit plus POLLERR | POLLHUP: entries with POLLERR or
 *   POLLHUP are confirmed with poll() before they are reported.
 * - The user cookie of a registration is a per-fd generation number, so
 *   that an entry of an older registration of the same fd number (still in
 *   the ring after a REMOVE) is not reported for a newer one.
 * - Signals use libevent's own evsig (a socketpair written by the handler).
 */
#include "event2/event-config.h"
#include "evconfig-private.h"

#ifdef EVENT__HAVE_KEVENT_QUEUE

#include <sys/types.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libkevent.h>

#include "event-internal.h"
#include "evsignal-internal.h"
#include "event2/thread.h"
#include "evthread-internal.h"
#include "log-internal.h"
#include "evmap-internal.h"
#include "util-internal.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
#endif

/* Entries of the ring (a power of two): 48 bytes each. */
#define KQ_RING_ENTRIES 1024

/* What the backend keeps per fd, in libevent's evmap entry (zeroed at first). */
struct kq_fdinfo {
	uint32_t mask;		/* POLL* mask registered in the queue; 0: none */
	uint32_t gen;		/* generation of the registration: its user cookie */
	uint8_t et;		/* registered edge-triggered (else level-triggered) */
};

struct kqop {
	struct kevent_queue q;
	uint32_t next_gen;	/* generation counter of registrations */
	int level_seen;		/* the last iteration handled level-triggered entries */
};

static void *kq_init(struct event_base *);
static int kq_add(struct event_base *, evutil_socket_t, short, short, void *);
static int kq_del(struct event_base *, evutil_socket_t, short, short, void *);
static int kq_dispatch(struct event_base *, struct timeval *);
static void kq_dealloc(struct event_base *);

const struct eventop keventqops = {
	"kevent",
	kq_init,
	kq_add,
	kq_del,
	kq_dispatch,
	kq_dealloc,
	1, /* need reinit: the queue and its ring mapping are per process */
	EV_FEATURE_ET | EV_FEATURE_O1 | EV_FEATURE_EARLY_CLOSE,
	sizeof(struct kq_fdinfo)
};

static void *
kq_init(struct event_base *base)
{
	struct kqop *kq;
	int r;

	if (!(kq = mm_calloc(1, sizeof(*kq))))
		return NULL;
	r = kevent_queue_init(&kq->q, KQ_RING_ENTRIES, O_CLOEXEC);
	if (r < 0) {
		/*
		 * ENOSYS: the kevent module is not loaded. Other errors than a
		 * lack of resources mean that this kernel has no kevent at all
		 * (another kernel may use its system call numbers for something
		 * else: EINVAL, EBADF, ...). Another backend will do; say so
		 * only when it is worth a warning.
		 */
		if (r == -ENOMEM || r == -EMFILE || r == -ENFILE)
			event_warnx("kevent_queue_init: %s", strerror(-r));
		else
			event_debug(("kevent_queue_init: %s", strerror(-r)));
		mm_free(kq);
		return NULL;
	}
	kq->next_gen = 1;
	evsig_init_(base);
	return kq;
}

static uint32_t
poll_mask_of(short events)
{
	uint32_t mask = 0;

	if (events & EV_READ)
		mask |= POLLIN;
	if (events & EV_WRITE)
		mask |= POLLOUT;
	if (events & EV_CLOSED)
		mask |= POLLRDHUP;
	return mask;
}

/* One kevent_ctl() of one entry: 0, or the entry's -errno. */
static int
kq_ctl1(struct kqop *kq, unsigned int cmd, int fd, uint32_t mask, int et, uint32_t gen)
{
	struct ukevent e;
	uint32_t flags = KEVENT_REQ_ALWAYS_QUEUE | (et ? KEVENT_REQ_ET : 0);
	int r;

	if (cmd == KEVENT_CTL_REMOVE)
		kevent_prep_key(&e, KEVENT_POLL, (uint32_t)fd);
	else
		kevent_prep_poll(&e, fd, mask, flags, gen);
	r = kevent_queue_ctl(&kq->q, cmd, &e);
	if (r < 0)
		return r;
	if (r > 0 && (e.ret_flags & KEVENT_RET_BROKEN))
		return e.ret_data[1] ? (int)e.ret_data[1] : -EIO;
	/* r > 0 without BROKEN (ready at ADD) cannot happen with ALWAYS_QUEUE. */
	return 0;
}

/* Makes the queue's registration of @fd watch @want (0: none), as EV_ET if @et. */
static int
kq_apply(struct event_base *base, int fd, struct kq_fdinfo *fi, uint32_t want, int et)
{
	struct kqop *kq = base->evbase;
	uint32_t gen;
	int r;

	if (want == 0) {
		if (fi->mask == 0)
			return 0;
		r = kq_ctl1(kq, KEVENT_CTL_REMOVE, fd, 0, 0, 0);
		fi->mask = 0;
		/* ENOENT, EBADF: the fd was closed first, which removed it. */
		if (r == 0 || r == -ENOENT || r == -EBADF)
			return 0;
		event_warnx("kevent REMOVE of fd %d: %s", fd, strerror(-r));
		return -1;
	}

	if (fi->mask != 0 && fi->et == !!et) {
		r = kq_ctl1(kq, KEVENT_CTL_MODIFY, fd, want, et, fi->gen);
		if (r == 0)
			goto done;
		if (r != -ENOENT) {
			event_warnx("kevent MODIFY of fd %d: %s", fd, strerror(-r));
			return -1;
		}
		/* The fd was closed and maybe reopened: its registration is gone. */
	} else if (fi->mask != 0) {
		/* Another trigger mode: start over. */
		(void)kq_ctl1(kq, KEVENT_CTL_REMOVE, fd, 0, 0, 0);
	}

	gen = kq->next_gen++;
	r = kq_ctl1(kq, KEVENT_CTL_ADD, fd, want, et, gen);
	if (r == -EEXIST) {
		/*
		 * A registration of this fd number is live although we did not
		 * make it (or forgot it): the file stayed open elsewhere after a
		 * close. Take it over.
		 */
		r = kq_ctl1(kq, KEVENT_CTL_MODIFY, fd, want, et, gen);
	}
	if (r < 0) {
		fi->mask = 0;
		event_warnx("kevent ADD of fd %d: %s", fd, strerror(-r));
		errno = -r;
		return -1;
	}
	fi->gen = gen;
done:
	fi->mask = want;
	fi->et = !!et;
	return 0;
}

static int
kq_add(struct event_base *base, evutil_socket_t fd, short old, short events, void *p)
{
	struct kq_fdinfo *fi = p;
	uint32_t want = poll_mask_of(old | events);

	return kq_apply(base, fd, fi, want, events & EV_ET);
}

static int
kq_del(struct event_base *base, evutil_socket_t fd, short old, short events, void *p)
{
	struct kq_fdinfo *fi = p;
	uint32_t want = poll_mask_of(old & ~events);

	return kq_apply(base, fd, fi, want, fi->et);
}

/* libevent's events for poll mask @what, as epoll.c translates them. */
static short
kq_events_of(uint32_t what)
{
	short ev = 0;

	if (what & POLLERR) {
		ev = EV_READ | EV_WRITE;
	} else if ((what & POLLHUP) && !(what & POLLRDHUP)) {
		ev = EV_READ | EV_WRITE;
	} else {
		if (what & POLLIN)
			ev |= EV_READ;
		if (what & POLLOUT)
			ev |= EV_WRITE;
		if (what & POLLRDHUP)
			ev |= EV_CLOSED;
	}
	return ev;
}

/* The poll mask of @fd for @mask now; -1 when it cannot be had (closed fd). */
static int
kq_poll_now(int fd, uint32_t mask, uint32_t *revents)
{
	struct pollfd pfd;

	pfd.fd = fd;
	pfd.events = (short)mask;
	pfd.revents = 0;
	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & POLLNVAL))
		return -1;
	*revents = (uint16_t)pfd.revents;
	return 0;
}

/* One ring entry. */
static void
kq_handle(struct event_base *base, struct kqop *kq, const struct ukevent *e)
{
	struct kq_fdinfo *fi;
	uint32_t what;
	short ev;
	int fd;

	if (e->type != KEVENT_POLL)
		return;
	fd = (int)e->id.raw[0];
	fi = evmap_io_get_fdinfo_(&base->io, fd);
	if (!fi || !fi->mask || (uint32_t)e->user != fi->gen)
		return;		/* of an older registration of this fd number */
	if (!fi->et)
		kq->level_seen = 1;
	what = e->ret_data[0];
	if (what & (POLLERR | POLLHUP)) {
		/* Possibly a wake-up that did not say what happened: ask. */
		if (kq_poll_now(fd, fi->mask, &what) < 0)
			return;
	}
	ev = kq_events_of(what);
	if (ev)
		evmap_io_active_(base, fd, ev | EV_ET);
}

static int
kq_dispatch(struct event_base *base, struct timeval *tv)
{
	struct kqop *kq = base->evbase;
	struct ukevent *e;
	unsigned int i, n = 0;
	int r;

	if (!kevent_queue_peek(&kq->q)) {
		uint64_t ns = UINT64_MAX;

		if (tv) {
			if (tv->tv_sec < 0 || tv->tv_usec < 0)
				ns = 0;
			else if (tv->tv_sec > 1000000000)
				ns = UINT64_MAX;	/* over 30 years: forever */
			else
				ns = (uint64_t)tv->tv_sec * 1000000000u +
				    (uint64_t)tv->tv_usec * 1000u;
		}

		EVBASE_RELEASE_LOCK(base, th_base_lock);
		r = kevent_queue_wait_timeout(&kq->q, &e, ns, NULL);
		EVBASE_ACQUIRE_LOCK(base, th_base_lock);

		if (r == -ETIME || r == -EINTR)
			return 0;
		if (r < 0) {
			event_warnx("kevent_wait: %s", strerror(-r));
			return -1;
		}
	} else if (kq->level_seen) {
		/* Have the level-triggered entries handled last time re-checked. */
		r = kevent_queue_flush(&kq->q);
		if (r < 0) {
			event_warnx("kevent_commit: %s", strerror(-r));
			return -1;
		}
	}
	kq->level_seen = 0;

	/* Every entry is handled before the slots are given back. */
	kevent_queue_for_each(&kq->q, i, e) {
		kq_handle(base, kq, e);
		n++;
	}
	if (n)
		kevent_queue_advance(&kq->q, n);
	return 0;
}

static void
kq_dealloc(struct event_base *base)
{
	struct kqop *kq = base->evbase;

	evsig_dealloc_(base);
	/* In a child (event_reinit() after fork), libkevent leaves the parent's ring alone. */
	kevent_queue_exit(&kq->q);
	memset(kq, 0, sizeof(*kq));
	mm_free(kq);
}

#endif /* EVENT__HAVE_KEVENT_QUEUE */
