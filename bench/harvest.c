// SPDX-License-Identifier: GPL-2.0
/*
 * Harvest cost: N sources are made ready, then harvested; producing and
 * harvesting are both timed. Every mechanism watches the same sources, N
 * eventfds made ready by one write() each: the kevent ring (KEVENT_POLL,
 * edge-triggered, published from the eventfd's wake-up; harvested with no
 * system call: kevent_queue_for_each() over what is published, one
 * kevent_queue_advance()), kevent_get_events() (the same registrations on a
 * queue without a ring, through kevent_queue_harvest()), epoll_wait() (edge
 * and level triggered) and io_uring multishot poll CQEs. Two more kevent
 * lines use kevent user events instead, made ready by batched
 * kevent_ctl(READY), 1024 per call through kevent_queue_get_entry() +
 * kevent_queue_submit(): they are reported apart (mechanism names ending in
 * "+user"), as the other mechanisms have no such source.
 *
 *	harvest [REPEATS] [ITERATIONS] [N...]
 *		defaults: 5 repeats of 200 iterations, N = 1 16 256 4096
 *
 * Each repeat measures every mechanism back to back and prints BENCH lines:
 * ns_per_event (producing + harvesting), harvest_ns_per_event (harvesting
 * alone) and syscalls_per_event (of the harvest). Every iteration checks that
 * exactly N events arrived. Level-triggered epoll and io_uring read the
 * counters back after each iteration, untimed, so that the next one starts
 * idle; edge-triggered watchers need not.
 */
#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

struct result {
	double harvest_ns, produce_ns, syscalls;
};

#define CTL_BATCH 1024	/* entries per kevent_ctl() */

/* A queue (@ring entries, or none) whose batches hold CTL_BATCH entries. */
static void queue_init(struct kevent_queue *q, unsigned int ring)
{
	check_ret(kevent_queue_init_batch(q, ring, 0, CTL_BATCH), "kevent_queue_init");
}

/* Submits the prepared batch with @cmd; no entry may come back. */
static void submit_all(struct kevent_queue *q, unsigned int cmd)
{
	int ret = kevent_queue_submit(q, cmd, NULL);

	check_ret(ret, "kevent_queue_submit");
	check(ret == 0, "kevent_queue_submit: an entry came back");
}

/* Registers user events 0..n-1 (@fire: makes them ready), CTL_BATCH per call. */
static void user_events(struct kevent_queue *q, int n, int fire)
{
	unsigned int cmd = fire ? KEVENT_CTL_READY : KEVENT_CTL_ADD;

	for (int i = 0; i < n; i++) {
		struct ukevent *e = kevent_queue_get_entry(q);

		if (!e) {
			submit_all(q, cmd);
			e = kevent_queue_get_entry(q);
		}
		if (fire)
			kevent_prep_fire(e, i);
		else
			kevent_prep_user(e, i, 0, 0);
	}
	submit_all(q, cmd);
}

/* Makes every eventfd readable. */
static void signal_all(int *efd, int n)
{
	uint64_t one = 1;

	for (int i = 0; i < n; i++)
		if (write(efd[i], &one, sizeof(one)) != sizeof(one))
			die("write");
}

/*
 * What a kevent line harvests: N eventfds watched with KEVENT_POLL
 * (edge-triggered, @efd set) or N user events (@efd NULL).
 */
struct sources {
	int n, *efd;
};

static void sources_init(struct sources *s, struct kevent_queue *q, int n, int poll)
{
	s->n = n;
	s->efd = NULL;
	if (!poll) {
		user_events(q, n, 0);
		return;
	}
	s->efd = calloc(n, sizeof(int));
	check(s->efd != NULL, "calloc");
	for (int i = 0; i < n; i++) {
		struct ukevent *e = kevent_queue_get_entry(q);

		s->efd[i] = eventfd(0, EFD_NONBLOCK);
		check(s->efd[i] >= 0, "eventfd");
		if (!e) {
			submit_all(q, KEVENT_CTL_ADD);
			e = kevent_queue_get_entry(q);
			check(e != NULL, "kevent_queue_get_entry");
		}
		kevent_prep_poll(e, s->efd[i], POLLIN, KEVENT_REQ_ET, i);
	}
	submit_all(q, KEVENT_CTL_ADD);
}

/* Makes every source ready. */
static void sources_fire(struct sources *s, struct kevent_queue *q)
{
	if (s->efd)
		signal_all(s->efd, s->n);
	else
		user_events(q, s->n, 1);
}

static void sources_exit(struct sources *s)
{
	for (int i = 0; s->efd && i < s->n; i++)
		close(s->efd[i]);
	free(s->efd);
}

static struct result bench_get_events(int n, int rounds, int poll)
{
	struct kevent_queue q;
	struct ukevent *out = calloc(n, sizeof(*out));
	struct kevent_wait_arg zero;
	struct result r = { 0 };
	struct sources src;

	queue_init(&q, 0);
	sources_init(&src, &q, n, poll);
	kevent_wait_arg_init(&zero, 0, NULL);
	for (int round = 0; round < rounds; round++) {
		uint64_t t0 = now_ns(), t1;
		int got = 0;

		sources_fire(&src, &q);
		t1 = now_ns();
		while (got < n) {
			/* No ring: one kevent_get_events() per call. */
			int k = kevent_queue_harvest(&q, out, 1, n - got, &zero);

			check_ret(k, "kevent_queue_harvest");
			check(k > 0, "kevent_queue_harvest");
			got += k;
			r.syscalls++;
		}
		r.harvest_ns += now_ns() - t1;
		r.produce_ns += t1 - t0;
	}
	kevent_queue_exit(&q);
	sources_exit(&src);
	free(out);
	return r;
}

static struct result bench_ring(int n, int rounds, int poll)
{
	unsigned int size = 1;
	struct kevent_queue q;
	struct result r = { 0 };
	volatile uint64_t sink = 0;
	struct sources src;

	while (size < (unsigned int)n)
		size <<= 1;
	queue_init(&q, size);
	sources_init(&src, &q, n, poll);
	for (int round = 0; round < rounds; round++) {
		uint64_t t0 = now_ns(), t1;
		int got = 0;

		sources_fire(&src, &q);
		t1 = now_ns();
		while (got < n) {
			struct ukevent *e, *first;
			unsigned int i, k = 0;

			if (!kevent_queue_ready(&q)) {
				/* Nothing published: ask the kernel (never needed here). */
				check_ret(kevent_queue_wait(&q, &first, NULL), "kevent_queue_wait");
				r.syscalls++;
				continue;
			}
			kevent_queue_for_each(&q, i, e) {
				sink += e->id.raw_u64;
				k++;
			}
			kevent_queue_advance(&q, k);
			got += k;
		}
		r.harvest_ns += now_ns() - t1;
		r.produce_ns += t1 - t0;
		if (got != n)
			die("ring count");
	}
	kevent_queue_exit(&q);
	sources_exit(&src);
	return r;
}

static struct result bench_epoll(int n, int rounds, int et)
{
	int ep = epoll_create1(0), *efd = calloc(n, sizeof(int));
	struct epoll_event *out = calloc(n, sizeof(*out));
	struct result r = { 0 };
	uint64_t one = 1;

	for (int i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN | (et ? EPOLLET : 0), .data.u32 = i };

		efd[i] = eventfd(0, EFD_NONBLOCK);
		if (efd[i] < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd[i], &ev))
			die("eventfd/epoll_ctl");
	}
	for (int round = 0; round < rounds; round++) {
		uint64_t t0 = now_ns(), t1;
		int got = 0;

		signal_all(efd, n);
		t1 = now_ns();
		while (got < n) {
			int k = epoll_wait(ep, out, n - got, 0);

			if (k <= 0)
				die("epoll_wait");
			got += k;
			r.syscalls++;
		}
		r.harvest_ns += now_ns() - t1;
		r.produce_ns += t1 - t0;
		check(got == n, "epoll event count");
		/* Level triggered: consume the counters, untimed, so the next round starts idle. */
		for (int i = 0; !et && i < n; i++)
			if (read(efd[i], &one, sizeof(one)) != sizeof(one))
				die("read");
	}
	for (int i = 0; i < n; i++)
		close(efd[i]);
	close(ep);
	free(efd);
	free(out);
	return r;
}

/* io_uring: one multishot poll per eventfd; each write posts one CQE. */
static struct result bench_uring(int n, int rounds)
{
	struct io_uring ring;
	struct io_uring_cqe **cqes = calloc(n, sizeof(*cqes));
	int *efd = calloc(n, sizeof(int));
	struct result r = { 0 };
	uint64_t one = 1;

	if (io_uring_queue_init(n < 64 ? 64 : n, &ring, 0) < 0)
		die("io_uring_queue_init");
	for (int i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		efd[i] = eventfd(0, EFD_NONBLOCK);
		if (efd[i] < 0 || !sqe)
			die("eventfd/sqe");
		io_uring_prep_poll_multishot(sqe, efd[i], POLLIN);
		io_uring_sqe_set_data64(sqe, i);
	}
	if (io_uring_submit(&ring) != n)
		die("io_uring_submit");
	for (int round = 0; round < rounds; round++) {
		uint64_t t0 = now_ns(), t1;
		int got = 0;

		signal_all(efd, n);
		t1 = now_ns();
		while (got < n) {
			unsigned int k = io_uring_peek_batch_cqe(&ring, cqes, n - got);

			if (!k) {
				/* Completions not posted yet: enter the kernel to run them. */
				if (io_uring_enter(ring.ring_fd, 0, 1, IORING_ENTER_GETEVENTS, NULL) < 0)
					die("io_uring_enter");
				r.syscalls++;
				continue;
			}
			for (unsigned int j = 0; j < k; j++)
				check(cqes[j]->res & POLLIN, "io_uring poll result");
			io_uring_cq_advance(&ring, k);
			got += k;
		}
		r.harvest_ns += now_ns() - t1;
		r.produce_ns += t1 - t0;
		for (int i = 0; i < n; i++)
			if (read(efd[i], &one, sizeof(one)) != sizeof(one))
				die("read");
	}
	io_uring_queue_exit(&ring);
	for (int i = 0; i < n; i++)
		close(efd[i]);
	free(efd);
	free(cqes);
	return r;
}

static void report(const char *mech, int n, long events, struct result r)
{
	char c[16];

	snprintf(c, sizeof(c), "N=%d", n);
	emit("harvest", c, mech, "ns_per_event", (r.produce_ns + r.harvest_ns) / events);
	emit("harvest", c, mech, "harvest_ns_per_event", r.harvest_ns / events);
	emit("harvest", c, mech, "syscalls_per_event", r.syscalls / events);
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 5, rounds = argc > 2 ? atoi(argv[2]) : 200;
	int def[] = { 1, 16, 256, 4096 }, count, *ns = int_args(argc, argv, 3, def, 4, &count);

	raise_nofile();
	printf("harvest cost: %d repeats of %d iterations (fewer for N=4096); producing + harvesting\n",
	       repeats, rounds);
	for (int rep = 0; rep < repeats; rep++) {
		for (int i = 0; i < count; i++) {
			int n = ns[i], r = n >= 4096 ? rounds / 10 + 1 : rounds;
			long events = (long)n * r;

			report("kevent-ring", n, events, bench_ring(n, r, 1));
			report("kevent-get_events", n, events, bench_get_events(n, r, 1));
			report("epoll-ET", n, events, bench_epoll(n, r, 1));
			report("epoll-LT", n, events, bench_epoll(n, r, 0));
			report("io_uring-poll", n, events, bench_uring(n, r));
			report("kevent-ring+user", n, events, bench_ring(n, r, 0));
			report("kevent-get_events+user", n, events, bench_get_events(n, r, 0));
		}
	}
	return 0;
}
