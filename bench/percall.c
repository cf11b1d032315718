// SPDX-License-Identifier: GPL-2.0
/*
 * Per-call cost of harvesting, the fixed part the other benchmarks add to
 * every event: the same call made N times back to back, timed as a whole.
 *
 *   empty:     nothing is ready. epoll_wait(.., timeout 0); kevent_get_events
 *              with a zero timeout on a queue without a ring (kevent-copy);
 *              kevent_wait with a zero timeout on a ring queue (kevent-ring).
 *              The -nb variants make the same calls without a wait argument
 *              on a queue opened with O_NONBLOCK, kevent's documented way of
 *              never waiting (no wait argument to copy in, as epoll_wait's
 *              timeout comes in a register).
 *   one-level: one level-triggered socket stays readable and every call
 *              reports it again: epoll_wait returns it; kevent_get_events
 *              confirms it with ->poll, copies it and queues it again;
 *              kevent-ring consumes its ring entry and calls kevent_wait,
 *              which re-checks it and publishes it again.
 *   getppid:   the system call floor of this guest, for scale.
 *
 *	[PERCALL_ONLY=mechanism] [PERCALL_CASE=case] percall [REPEATS] [CALLS]
 *		defaults: 5 repeats of 100,000 calls
 *
 * Prints BENCH lines (ns per call). Every call's result is checked.
 */
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

enum { EMPTY, ONE_LEVEL };

static double run_epoll(int kind, long calls)
{
	struct epoll_event ev = { .events = EPOLLIN }, out[16];
	int ep = epoll_create1(0), sv[2];
	uint64_t t0;

	check(ep >= 0, "epoll_create1");
	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair");
	check(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev) == 0, "epoll_ctl");
	if (kind == ONE_LEVEL)
		check(write(sv[1], "x", 1) == 1, "write");
	t0 = now_ns();
	for (long i = 0; i < calls; i++) {
		if (epoll_wait(ep, out, 16, 0) != (kind == ONE_LEVEL))
			die("epoll_wait: wrong number of events");
	}
	t0 = now_ns() - t0;
	close(sv[0]);
	close(sv[1]);
	close(ep);
	return (double)t0 / calls;
}

/* A queue (with a ring of 16 when @ring) watching one socket, level-triggered. */
static void kevent_open(struct kevent_queue *q, int ring, int nb, int sv[2], int ready)
{
	struct ukevent e;

	check_ret(kevent_queue_init(q, ring ? 16 : 0, nb ? O_NONBLOCK : 0), "kevent_queue_init");
	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair");
	kevent_prep_socket(&e, sv[0], KEVENT_SOCKET_RECV, KEVENT_REQ_ALWAYS_QUEUE, 1);
	check_ret(kevent_queue_ctl(q, KEVENT_CTL_ADD, &e), "kevent_ctl(ADD)");
	if (ready)
		check(write(sv[1], "x", 1) == 1, "write");
}

static void kevent_close(struct kevent_queue *q, int sv[2])
{
	close(sv[0]);
	close(sv[1]);
	kevent_queue_exit(q);
}

static double run_kevent_copy(int kind, int nb, long calls)
{
	struct kevent_wait_arg arg, *argp = nb ? NULL : &arg;
	struct kevent_queue q;
	struct ukevent out[16];
	uint64_t t0;
	int sv[2];

	kevent_open(&q, 0, nb, sv, kind == ONE_LEVEL);
	kevent_wait_arg_init(&arg, 0, NULL);
	t0 = now_ns();
	for (long i = 0; i < calls; i++) {
		if (kevent_get_events(q.fd, 0, 16, out, argp) != (kind == ONE_LEVEL))
			die("kevent_get_events: wrong number of events");
	}
	t0 = now_ns() - t0;
	kevent_close(&q, sv);
	return (double)t0 / calls;
}

static double run_kevent_ring(int kind, int nb, long calls)
{
	struct kevent_wait_arg arg, *argp = nb ? NULL : &arg;
	struct kevent_queue q;
	uint64_t t0;
	int sv[2];

	kevent_open(&q, 1, nb, sv, kind == ONE_LEVEL);
	kevent_wait_arg_init(&arg, 0, NULL);
	t0 = now_ns();
	for (long i = 0; i < calls; i++) {
		int n;

		/* Consume what is there, then the call that re-checks and waits. */
		kevent_queue_advance(&q, kevent_queue_ready(&q));
		n = kevent_wait(q.fd, 0, q.uidx, argp);
		if (n != (kind == ONE_LEVEL))
			die("kevent_wait: wrong number of entries");
	}
	t0 = now_ns() - t0;
	kevent_close(&q, sv);
	return (double)t0 / calls;
}

static double run_getppid(long calls)
{
	uint64_t t0 = now_ns();

	for (long i = 0; i < calls; i++)
		check(syscall(SYS_getppid) > 0, "getppid");
	return (double)(now_ns() - t0) / calls;
}

/* PERCALL_ONLY=mechanism and PERCALL_CASE=case run one of each (for profiling). */
static int wanted(const char *c, const char *mech)
{
	const char *only = getenv("PERCALL_ONLY"), *only_case = getenv("PERCALL_CASE");

	return (!only || !strcmp(only, mech)) && (!only_case || !strcmp(only_case, c));
}

#define RUN(c, mech, expr)                                                   \
	do {                                                                 \
		if (wanted(c, mech))                                         \
			emit("percall", c, mech, "ns_per_call", expr);       \
	} while (0)

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 5;
	long calls = argc > 2 ? atol(argv[2]) : 100000;
	static const char *cases[] = { "empty", "one-level" };

	printf("per call: %d repeats of %ld calls per mechanism\n", repeats, calls);
	for (int rep = 0; rep < repeats; rep++) {
		RUN("getppid", "syscall", run_getppid(calls));
		for (int k = EMPTY; k <= ONE_LEVEL; k++) {
			RUN(cases[k], "epoll", run_epoll(k, calls));
			RUN(cases[k], "kevent-copy", run_kevent_copy(k, 0, calls));
			RUN(cases[k], "kevent-ring", run_kevent_ring(k, 0, calls));
			RUN(cases[k], "kevent-copy-nb", run_kevent_copy(k, 1, calls));
			RUN(cases[k], "kevent-ring-nb", run_kevent_ring(k, 1, calls));
		}
		fflush(stdout);
	}
	return 0;
}
