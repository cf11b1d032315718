// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel memory per watched file: N eventfds are created first, then
 * watched by one epoll instance (EPOLL_CTL_ADD, EPOLLIN) or by one kevent
 * queue (KEVENT_POLL, POLLIN, registered in batches of 1,024 entries per
 * kevent_ctl()), and the kernel's unreclaimable slab memory (SUnreclaim in
 * /proc/meminfo) is read before the registrations and after them. Closing the
 * queue or the epoll instance frees them again before the next round.
 *
 *	memwatch [REPEATS] [N]		defaults: 3, 100000
 *
 * Prints BENCH lines: bytes_per_watch = (after - before) / N. Every
 * registration's result is checked. The eventfds themselves are not counted
 * (they exist in both readings); per-CPU slab caches make the figure exact
 * only to a few bytes at this N.
 */
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"

/* SUnreclaim from /proc/meminfo, in bytes. */
static long long sunreclaim(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	long long kb = -1;

	check(f != NULL, "/proc/meminfo");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "SUnreclaim: %lld kB", &kb) == 1)
			break;
	}
	fclose(f);
	check(kb >= 0, "SUnreclaim in /proc/meminfo");
	return kb * 1024;
}

/* Lets deferred frees (RCU) of the previous round finish. */
static void settle(void)
{
	usleep(200000);
}

static double run_epoll(const int *fds, int n)
{
	long long before, after;
	int ep;

	settle();
	before = sunreclaim();
	ep = epoll_create1(0);
	check(ep >= 0, "epoll_create1");
	for (int i = 0; i < n; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		check(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e) == 0, "epoll_ctl(ADD)");
	}
	after = sunreclaim();
	close(ep);
	return (double)(after - before) / n;
}

static double run_kevent(const int *fds, int n)
{
	struct kevent_queue q;
	long long before, after;

	settle();
	before = sunreclaim();
	check_ret(kevent_queue_init_batch(&q, 0, 0, 1024), "kevent_queue_init_batch");
	for (int i = 0; i < n; i++) {
		struct ukevent *e = kevent_queue_get_entry(&q), *back;

		if (!e) {
			check(kevent_queue_submit(&q, KEVENT_CTL_ADD, &back) == 0, "kevent_ctl(ADD)");
			e = kevent_queue_get_entry(&q);
			check(e != NULL, "kevent_queue_get_entry");
		}
		kevent_prep_poll(e, fds[i], POLLIN, 0, i);
	}
	{
		struct ukevent *back;

		check(kevent_queue_submit(&q, KEVENT_CTL_ADD, &back) == 0, "kevent_ctl(ADD)");
	}
	after = sunreclaim();
	kevent_queue_exit(&q);
	return (double)(after - before) / n;
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 3, n = argc > 2 ? atoi(argv[2]) : 100000;
	struct rlimit nofile = { n + 1024, n + 1024 };
	char c[32];
	int *fds;

	check(setrlimit(RLIMIT_NOFILE, &nofile) == 0, "setrlimit(RLIMIT_NOFILE)");
	fds = calloc(n, sizeof(*fds));
	check(fds != NULL, "calloc");
	for (int i = 0; i < n; i++) {
		fds[i] = eventfd(0, EFD_NONBLOCK);
		check(fds[i] >= 0, "eventfd");
	}
	snprintf(c, sizeof(c), "eventfd-N=%d", n);
	printf("memwatch: %d repeats, %d eventfds watched at once\n", repeats, n);
	for (int rep = 0; rep < repeats; rep++) {
		emit("memwatch", c, "epoll", "bytes_per_watch", run_epoll(fds, n));
		emit("memwatch", c, "kevent-poll", "bytes_per_watch", run_kevent(fds, n));
		fflush(stdout);
	}
	return 0;
}
