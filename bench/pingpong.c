// SPDX-License-Identifier: GPL-2.0
/*
 * Ping-pong (the classic epoll_bench shape): N socketpairs (or pipes), one
 * byte in flight on each. The event loop waits for a readable end, reads the
 * byte and writes it back into the same pair, which makes that end readable
 * again. Measures events handled per second by each mechanism and re-arm
 * style:
 *
 *   kevent-LT, kevent-ET     kevent_queue_harvest() on a queue without a
 *                            ring (one kevent_get_events()), 64 events per call
 *   kevent-ONESHOT           re-added after each batch (one batched ctl:
 *                            kevent_queue_get_entry() + kevent_queue_submit())
 *   kevent-DISPATCH          re-enabled with MODIFY (one batched ctl)
 *   kevent-ring-ET           read from a ring of at least 2N entries
 *                            (kevent_queue_peek_batch() of everything
 *                            published, the slots given back with one
 *                            kevent_queue_advance() before the bounces, so
 *                            that their events are published from the hook
 *                            and harvested without a system call);
 *                            kevent_queue_wait() sleeps only when it is empty
 *   epoll-LT, epoll-ET       epoll_wait(), 64 events per call
 *   epoll-ONESHOT            re-armed with one EPOLL_CTL_MOD per event
 *   io_uring-poll            one multishot poll per end, CQEs from the ring
 *
 *	pingpong [REPEATS] [MILLISECONDS] [N...]	defaults: 3, 500, N = 1 64 1024
 *
 * PINGPONG_ONLY=NAME in the environment runs only the mechanism NAME (for
 * profiling one of them).
 *
 * Every byte read is checked, and at the end every pair still holds exactly
 * one byte: a mechanism that loses or invents events fails.
 */
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define BATCH 64
#define CTL_BATCH 1024	/* registrations per kevent_ctl() */

struct pairs {
	int n, pipes;
	int *rd, *wr;
	long *count;
};

static void pairs_open(struct pairs *p, int n, int pipes)
{
	p->n = n;
	p->pipes = pipes;
	p->rd = calloc(n, sizeof(int));
	p->wr = calloc(n, sizeof(int));
	p->count = calloc(n, sizeof(long));
	for (int i = 0; i < n; i++) {
		int fds[2];

		if (pipes ? pipe2(fds, O_NONBLOCK) : socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds))
			die("pair");
		p->rd[i] = fds[0];
		p->wr[i] = fds[1];
		if (write(p->wr[i], "x", 1) != 1)
			die("write");
	}
}

static void pairs_close(struct pairs *p)
{
	for (int i = 0; i < p->n; i++) {
		char c[2];

		/* Exactly one byte is in flight on every pair. */
		check(read(p->rd[i], c, 2) == 1 && c[0] == 'x', "one byte per pair at the end");
		close(p->rd[i]);
		close(p->wr[i]);
	}
	free(p->rd);
	free(p->wr);
	free(p->count);
}

/* Handles one readiness report of pair @i: the byte goes round again. */
static void bounce(struct pairs *p, int i)
{
	char c;

	check(i >= 0 && i < p->n, "event for a known pair");
	if (read(p->rd[i], &c, 1) != 1) {
		/* Level-triggered mechanisms may report a pair whose byte we already took. */
		check(errno == EAGAIN, "read");
		return;
	}
	check(c == 'x', "byte content");
	if (write(p->wr[i], &c, 1) != 1)
		die("write");
	p->count[i]++;
}

/* The registration of pair @i's read end, or its re-arm (ONESHOT: ADD, DISPATCH: MODIFY). */
static void kevent_req(struct pairs *p, int i, uint32_t flags, struct ukevent *e)
{
	flags |= KEVENT_REQ_ALWAYS_QUEUE;
	if (p->pipes)
		kevent_prep_pipe(e, p->rd[i], KEVENT_SOCKET_RECV, flags, i);
	else
		kevent_prep_socket(e, p->rd[i], KEVENT_SOCKET_RECV, flags, i);
}

/* Submits the prepared batch; no entry may come back. */
static void submit_all(struct kevent_queue *q, unsigned int cmd, const char *what)
{
	int ret = kevent_queue_submit(q, cmd, NULL);

	check_ret(ret, what);
	check(ret == 0, what);
}

/* Registers every pair, CTL_BATCH per kevent_ctl(). */
static void kevent_add_all(struct kevent_queue *q, struct pairs *p, uint32_t flags)
{
	for (int i = 0; i < p->n; i++) {
		struct ukevent *e = kevent_queue_get_entry(q);

		if (!e) {
			submit_all(q, KEVENT_CTL_ADD, "kevent_ctl batch");
			e = kevent_queue_get_entry(q);
		}
		kevent_req(p, i, flags, e);
	}
	submit_all(q, KEVENT_CTL_ADD, "kevent_ctl batch");
}

static long run_kevent(struct pairs *p, uint32_t flags, uint64_t ms)
{
	struct kevent_queue q;
	struct ukevent ev[BATCH];
	long events = 0;
	uint64_t end;

	check_ret(kevent_queue_init_batch(&q, 0, 0, CTL_BATCH), "kevent_queue_init");
	kevent_add_all(&q, p, flags);
	end = now_ns() + ms * 1000000;
	while (now_ns() < end) {
		/* No ring: one kevent_get_events(). */
		int n = kevent_queue_harvest(&q, ev, 1, BATCH, NULL);

		check(n > 0, "kevent_queue_harvest");
		for (int j = 0; j < n; j++) {
			bounce(p, ev[j].user);
			if (flags & (KEVENT_REQ_ONESHOT | KEVENT_REQ_DISPATCH))
				kevent_req(p, ev[j].user, flags, kevent_queue_get_entry(&q));
		}
		if (kevent_queue_batched(&q))
			submit_all(&q, flags & KEVENT_REQ_ONESHOT ? KEVENT_CTL_ADD :
				   KEVENT_CTL_MODIFY, "re-arm");
		events += n;
	}
	kevent_queue_exit(&q);
	return events;
}

static long run_kevent_ring(struct pairs *p, uint64_t ms)
{
	unsigned int size = 2;
	struct kevent_queue q;
	struct ukevent **ev;
	uint64_t *user;
	long events = 0;
	uint64_t end;

	/* Room for every pair twice: a bounce's event never waits for a slot. */
	while (size < 2 * (unsigned int)p->n)
		size <<= 1;
	ev = calloc(size, sizeof(*ev));
	user = calloc(size, sizeof(*user));
	check(ev && user, "calloc");
	check_ret(kevent_queue_init_batch(&q, size, 0, CTL_BATCH), "kevent_queue_init ring");
	kevent_add_all(&q, p, KEVENT_REQ_ET);
	end = now_ns() + ms * 1000000;
	while (now_ns() < end) {
		unsigned int n = kevent_queue_peek_batch(&q, ev, size);

		if (!n) {
			/* Sleeps only while the ring is empty; EINTR is retried. */
			struct ukevent *e;
			int ret = kevent_queue_wait(&q, &e, NULL);

			check(ret == 0 || ret == -EINTR, "kevent_queue_wait");
			continue;
		}
		/*
		 * Everything published at the peek. The slots go back before the
		 * bounces, so that the events the bounces cause are published
		 * straight into the ring by the notification and the next peek
		 * finds them without a system call.
		 */
		for (unsigned int j = 0; j < n; j++)
			user[j] = ev[j]->user;
		kevent_queue_advance(&q, n);
		for (unsigned int j = 0; j < n; j++)
			bounce(p, user[j]);
		events += n;
	}
	kevent_queue_exit(&q);
	free(user);
	free(ev);
	return events;
}

static long run_epoll(struct pairs *p, uint32_t mode, uint64_t ms)
{
	struct epoll_event ev[BATCH];
	int ep = epoll_create1(0);
	long events = 0;
	uint64_t end;

	for (int i = 0; i < p->n; i++) {
		struct epoll_event e = { .events = EPOLLIN | mode, .data.u32 = i };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, p->rd[i], &e))
			die("epoll_ctl");
	}
	end = now_ns() + ms * 1000000;
	while (now_ns() < end) {
		int n = epoll_wait(ep, ev, BATCH, -1);

		check(n > 0, "epoll_wait");
		for (int j = 0; j < n; j++) {
			int i = ev[j].data.u32;

			bounce(p, i);
			if (mode & EPOLLONESHOT) {
				struct epoll_event e = { .events = EPOLLIN | mode, .data.u32 = i };

				if (epoll_ctl(ep, EPOLL_CTL_MOD, p->rd[i], &e))
					die("EPOLL_CTL_MOD");
			}
		}
		events += n;
	}
	close(ep);
	return events;
}

static long run_uring(struct pairs *p, uint64_t ms)
{
	struct io_uring ring;
	struct io_uring_cqe *cqes[BATCH];
	long events = 0;
	uint64_t end;

	if (io_uring_queue_init(1024, &ring, 0) < 0)
		die("io_uring_queue_init");
	for (int i = 0; i < p->n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		if (!sqe) {
			io_uring_submit(&ring);
			sqe = io_uring_get_sqe(&ring);
		}
		io_uring_prep_poll_multishot(sqe, p->rd[i], POLLIN);
		io_uring_sqe_set_data64(sqe, i);
	}
	io_uring_submit(&ring);
	end = now_ns() + ms * 1000000;
	while (now_ns() < end) {
		unsigned int n = io_uring_peek_batch_cqe(&ring, cqes, BATCH);

		if (!n) {
			struct io_uring_cqe *cqe;

			check(io_uring_submit_and_wait(&ring, 1) >= 0, "io_uring wait");
			check(io_uring_peek_cqe(&ring, &cqe) == 0, "io_uring cqe");
			continue;
		}
		for (unsigned int j = 0; j < n; j++) {
			int i = io_uring_cqe_get_data64(cqes[j]);

			check(cqes[j]->res > 0, "io_uring poll result");
			/* A multishot poll that stopped (overflow) must be re-armed. */
			if (!(cqes[j]->flags & IORING_CQE_F_MORE)) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

				io_uring_prep_poll_multishot(sqe, p->rd[i], POLLIN);
				io_uring_sqe_set_data64(sqe, i);
			}
			bounce(p, i);
		}
		io_uring_cq_advance(&ring, n);
		events += n;
	}
	io_uring_queue_exit(&ring);
	return events;
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 3, def[] = { 1, 64, 1024 }, count;
	int *ns = int_args(argc, argv, 3, def, 3, &count);
	uint64_t ms = argc > 2 ? atoi(argv[2]) : 500;
	static const char *kinds[] = { "unix", "pipe" };

	raise_nofile();
	printf("ping-pong: %d repeats of %llu ms per mechanism; one byte in flight per pair\n",
	       repeats, (unsigned long long)ms);
	for (int rep = 0; rep < repeats; rep++) {
		for (int k = 0; k < 2; k++) {
			for (int c = 0; c < count; c++) {
				static const struct { const char *name; int kind; uint32_t flags; } m[] = {
					{ "kevent-LT", 0, 0 },
					{ "kevent-ET", 0, KEVENT_REQ_ET },
					{ "kevent-ONESHOT", 0, KEVENT_REQ_ONESHOT },
					{ "kevent-DISPATCH", 0, KEVENT_REQ_DISPATCH },
					{ "kevent-ring-ET", 1, 0 },
					{ "epoll-LT", 2, 0 },
					{ "epoll-ET", 2, EPOLLET },
					{ "epoll-ONESHOT", 2, EPOLLONESHOT },
					{ "io_uring-poll", 3, 0 },
				};
				char cs[32];

				snprintf(cs, sizeof(cs), "%s-N=%d", kinds[k], ns[c]);
				for (unsigned int j = 0; j < sizeof(m) / sizeof(m[0]); j++) {
					const char *only = getenv("PINGPONG_ONLY");
					struct pairs p;
					uint64_t t0;
					long events;

					if (only && strcmp(only, m[j].name))
						continue;

					pairs_open(&p, ns[c], k);
					t0 = now_ns();
					switch (m[j].kind) {
					case 0:
						events = run_kevent(&p, m[j].flags, ms);
						break;
					case 1:
						events = run_kevent_ring(&p, ms);
						break;
					case 2:
						events = run_epoll(&p, m[j].flags, ms);
						break;
					default:
						events = run_uring(&p, ms);
					}
					double secs = (now_ns() - t0) / 1e9;
					long bounced = 0;

					for (int i = 0; i < p.n; i++)
						bounced += p.count[i];
					pairs_close(&p);
					check(bounced > 0 && bounced <= events, "events counted");
					emit("pingpong", cs, m[j].name, "events_per_s", bounced / secs);
				}
			}
		}
	}
	return 0;
}
