// SPDX-License-Identifier: GPL-2.0
/*
 * test-backend: what libevent's regress does not stress but the kevent
 * backend must get right, run on whatever backend libevent picks (run-regress.sh
 * runs it on kevent and on epoll, like upstream's test-* programs):
 *
 *   - level triggering: a pipe holding 3 bytes whose callback reads 1 byte
 *     per call is reported 3 times, in 3 loop iterations, then no more;
 *   - edge triggering: one report per write, however little is read;
 *   - more ready fds than the kevent ring holds (1024): 3000 socket pairs
 *     become readable at once and each is reported, level-triggered and
 *     edge-triggered;
 *   - an fd closed without event_del() whose number is reused by a new file
 *     that gets a new event: the new file's events arrive;
 *   - EV_CLOSED when the peer of a socket pair closes;
 *   - EV_WRITE on a socket pair whose buffer was full, once the peer reads;
 *   - edge-triggered fds watching EV_READ | EV_WRITE, more than the ring
 *     holds, with a write edge and then a read edge each: both reported.
 *
 * Exits 0 when everything holds, 1 otherwise (one line per failed check).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

static int failures;

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			printf("FAIL %s:%d: ", __func__, __LINE__);	\
			printf(__VA_ARGS__);				\
			printf("\n");					\
			failures++;					\
		}							\
	} while (0)

static int calls;

static void read_one(evutil_socket_t fd, short what, void *arg)
{
	char c;

	(void)what;
	(void)arg;
	if (read(fd, &c, 1) == 1)
		calls++;
}

static void count_only(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)arg;
	if (what & (EV_READ | EV_WRITE | EV_CLOSED))
		calls++;
}

static void drain(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];

	(void)what;
	(void)arg;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	calls++;
}

static void level_and_edge(struct event_base *base)
{
	int p[2], i;
	struct event *ev;

	if (pipe(p) < 0 || evutil_make_socket_nonblocking(p[0]) < 0) {
		CHECK(0, "pipe: %s", strerror(errno));
		return;
	}
	/* Level: 3 bytes, 1 read per call, one call per iteration. */
	ev = event_new(base, p[0], EV_READ | EV_PERSIST, read_one, NULL);
	event_add(ev, NULL);
	CHECK(write(p[1], "abc", 3) == 3, "write");
	calls = 0;
	for (i = 0; i < 3; i++) {
		event_base_loop(base, EVLOOP_ONCE);
		CHECK(calls == i + 1, "level: %d calls after %d iterations", calls, i + 1);
	}
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(calls == 3, "level: %d calls once empty, want 3", calls);
	event_free(ev);

	if (!(event_base_get_features(base) & EV_FEATURE_ET)) {
		close(p[0]);
		close(p[1]);
		return;
	}
	/* Edge: 3 bytes, 1 read per call: one call, then one per new write. */
	ev = event_new(base, p[0], EV_READ | EV_PERSIST | EV_ET, read_one, NULL);
	event_add(ev, NULL);
	CHECK(write(p[1], "abc", 3) == 3, "write");
	calls = 0;
	event_base_loop(base, EVLOOP_ONCE);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(calls == 1, "edge: %d calls for one write, want 1", calls);
	CHECK(write(p[1], "d", 1) == 1, "write");
	event_base_loop(base, EVLOOP_ONCE);
	CHECK(calls == 2, "edge: %d calls after a second write, want 2", calls);
	event_free(ev);
	close(p[0]);
	close(p[1]);
}

#define MANY 3000

static void many(struct event_base *base, short et)
{
	static int sv[MANY][2];
	static struct event *evs[MANY];
	int i, n = 0, loops;

	for (i = 0; i < MANY; i++) {
		if (evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) < 0)
			break;
		evutil_make_socket_nonblocking(sv[i][0]);
		evs[i] = event_new(base, sv[i][0], EV_READ | EV_PERSIST | et, drain, NULL);
		event_add(evs[i], NULL);
		n++;
	}
	CHECK(n == MANY, "only %d socket pairs: %s", n, strerror(errno));
	for (i = 0; i < n; i++)
		CHECK(write(sv[i][1], "x", 1) == 1, "write %d", i);
	calls = 0;
	for (loops = 0; calls < n && loops < 100; loops++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(calls == n, "%s: %d of %d ready fds reported in %d iterations",
	      et ? "edge" : "level", calls, n, loops);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(calls == n, "%s: %d reports for %d drained fds", et ? "edge" : "level", calls, n);
	for (i = 0; i < n; i++) {
		event_free(evs[i]);
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

static unsigned char seen[MANY];

static void record(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	int i = (int)(intptr_t)arg;

	(void)fd;
	seen[i] |= what & (EV_READ | EV_WRITE);
	if (what & EV_READ)
		while (read(fd, buf, sizeof(buf)) > 0)
			;
}

/*
 * Edge-triggered fds watching EV_READ | EV_WRITE, more of them than the
 * kevent ring holds, all writable when added and then made readable before
 * the loop runs: each must be reported both ways (the registrations that
 * wait for room in the ring get two wake-ups, a write edge and a read edge).
 */
static void et_both_ways(struct event_base *base)
{
	static int sv[MANY][2];
	static struct event *evs[MANY];
	int i, n = 0, both, loops;

	if (!(event_base_get_features(base) & EV_FEATURE_ET))
		return;
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 1500; i++) {
		if (evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) < 0)
			break;
		evutil_make_socket_nonblocking(sv[i][0]);
		evs[i] = event_new(base, sv[i][0], EV_READ | EV_WRITE | EV_PERSIST | EV_ET,
				   record, (void *)(intptr_t)i);
		event_add(evs[i], NULL);
		n++;
	}
	for (i = 0; i < n; i++)
		CHECK(write(sv[i][1], "x", 1) == 1, "write %d", i);
	for (loops = 0; loops < 50; loops++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		for (both = 0, i = 0; i < n; i++)
			both += seen[i] == (EV_READ | EV_WRITE);
		if (both == n)
			break;
	}
	for (both = 0, i = 0; i < n; i++)
		both += seen[i] == (EV_READ | EV_WRITE);
	CHECK(both == n, "edge, read and write: %d of %d fds reported both ways", both, n);
	for (i = 0; i < n; i++) {
		event_free(evs[i]);
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

static void reuse_after_close(struct event_base *base)
{
	int p[2], q[2];
	struct event *old, *ev;

	if (pipe(p) < 0)
		return;
	old = event_new(base, p[0], EV_READ | EV_PERSIST, count_only, NULL);
	event_add(old, NULL);
	/* Closed without event_del(): the kernel forgets the registration. */
	close(p[0]);
	close(p[1]);
	event_del(old);
	event_free(old);
	if (pipe(q) < 0)
		return;
	CHECK(q[0] == p[0], "fd %d not reused (got %d): test proves less", p[0], q[0]);
	evutil_make_socket_nonblocking(q[0]);
	ev = event_new(base, q[0], EV_READ | EV_PERSIST, drain, NULL);
	CHECK(event_add(ev, NULL) == 0, "event_add on the reused fd");
	calls = 0;
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(calls == 0, "reused fd reported before any write");
	CHECK(write(q[1], "x", 1) == 1, "write");
	event_base_loop(base, EVLOOP_ONCE);
	CHECK(calls == 1, "reused fd: %d calls, want 1", calls);
	event_free(ev);
	close(q[0]);
	close(q[1]);
}

static void closed_and_write(struct event_base *base)
{
	int sv[2], sent = 0;
	struct event *ev;
	char buf[4096];

	if (!(event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE))
		return;
	if (evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	ev = event_new(base, sv[0], EV_CLOSED, count_only, NULL);
	event_add(ev, NULL);
	calls = 0;
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(calls == 0, "EV_CLOSED before the peer closed");
	close(sv[1]);
	event_base_loop(base, EVLOOP_ONCE);
	CHECK(calls == 1, "EV_CLOSED: %d calls, want 1", calls);
	event_free(ev);
	close(sv[0]);

	if (evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	evutil_make_socket_nonblocking(sv[0]);
	memset(buf, 'x', sizeof(buf));
	while (write(sv[0], buf, sizeof(buf)) > 0)
		sent++;
	ev = event_new(base, sv[0], EV_WRITE, count_only, NULL);
	event_add(ev, NULL);
	calls = 0;
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(calls == 0, "EV_WRITE while the buffer is full (%d writes)", sent);
	evutil_make_socket_nonblocking(sv[1]);
	while (read(sv[1], buf, sizeof(buf)) > 0)
		;
	event_base_loop(base, EVLOOP_ONCE);
	CHECK(calls == 1, "EV_WRITE after the peer read: %d calls, want 1", calls);
	event_free(ev);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	struct rlimit rl = { 4 * MANY + 64, 4 * MANY + 64 };
	struct event_base *base;

	setvbuf(stdout, NULL, _IOLBF, 0);
	setrlimit(RLIMIT_NOFILE, &rl);
	base = event_base_new();
	if (!base) {
		printf("FAIL: no event_base\n");
		return 1;
	}
	printf("method: %s\n", event_base_get_method(base));
	level_and_edge(base);
	many(base, 0);
	if (event_base_get_features(base) & EV_FEATURE_ET)
		many(base, EV_ET);
	et_both_ways(base);
	reuse_after_close(base);
	closed_and_write(base);
	event_base_free(base);
	printf("%s\n", failures ? "FAILED" : "OK");
	return failures ? 1 : 0;
}
