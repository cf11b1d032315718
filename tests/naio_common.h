/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the network AIO tests (naio_test.c, naio_send_test.c).
 * Include after kselftest_harness.h and kevent_test.h.
 */
#ifndef NAIO_COMMON_H
#define NAIO_COMMON_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <libkevent.h>

static inline bool all_bytes(const void *buf, unsigned char c, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != c)
			return false;
	return true;
}

static inline void closefd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static inline size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* xorshift64*: deterministic, so that a failure can be replayed. */
static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Whether @fd reports one of @events within @ms. */
static inline bool wait_for(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	return poll(&p, 1, ms) == 1 && (p.revents & events);
}

/* Harvests until @n events arrived or @ms passed; returns how many (-1: error). */
static inline int collect(int q, struct ukevent *out, int n, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
	int got = 0;

	while (got < n) {
		uint64_t now = now_ns();
		int r;

		if (now >= end)
			break;
		r = harvest(q, 1, n - got, out + got, (int)((end - now) / 1000000) + 1);
		if (r < 0)
			return -1;
		got += r;
	}
	return got;
}

/* KEVENT_CTL_REMOVE of request @id: 0, or -errno of a refused entry. */
static inline int cancel_req(int q, long id)
{
	struct ukevent e = uev(KEVENT_NAIO, (uint64_t)id, 0, 0);
	int ret = ctl1(q, KEVENT_CTL_REMOVE, &e);

	if (ret == 1 && (e.ret_flags & KEVENT_RET_BROKEN))
		return (int)e.ret_data[1];
	return ret;
}

/* The pinned count once it stopped moving (releases left by earlier tests are done). */
static inline long pins_settled(void)
{
	long prev = pins_held(), cur = prev;

	for (int i = 0; i < 100; i++) {
		usleep(20000);
		cur = pins_held();
		if (cur == prev)
			break;
		prev = cur;
	}
	return cur;
}

/*
 * Makes @n requests, request i with @submit(@q, i, @arg), each of which must
 * complete inside its call with 1 byte, and takes each completion from the
 * ring of @q with kevent_queue_peek() and kevent_queue_advance() only: no
 * system call on the queue. max_user_kevents is 100 meanwhile, so requests
 * that stay in the queue once delivered stop the loop (ENOSPC). Returns how
 * many went through (-1 if the limit could not be set); *err is the error
 * that stopped the loop (0: none).
 */
static inline int ring_only_requests(struct kevent_queue *q, int n,
				     int64_t (*submit)(struct kevent_queue *q, int i, void *arg),
				     void *arg, int *err)
{
	int done;

	*err = 0;
	if (write_param("max_user_kevents", 100))
		return -1;
	for (done = 0; done < n; done++) {
		int64_t id = submit(q, done, arg);
		struct ukevent *e;

		if (id < 0) {
			*err = (int)id;
			break;
		}
		e = kevent_queue_peek(q);
		if (!e || e->id.raw_u64 != (uint64_t)id || e->ret_data[0] != 1) {
			*err = -EBADMSG;
			break;
		}
		kevent_queue_advance(q, 1);
	}
	if (write_param("max_user_kevents", 1 << 20))
		return -1;
	return done;
}

#endif /* NAIO_COMMON_H */
