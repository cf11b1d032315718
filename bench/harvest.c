// SPDX-License-Identifier: GPL-2.0
/*
 * Harvest cost: N sources are made ready, then harvested; only the harvest
 * is timed. Compares the kevent ring (no system call), kevent_get_events()
 * and epoll_wait() on eventfds (edge triggered, so each write is reported
 * once). Producing the events is timed separately: kevent_ctl(READY) in
 * batches vs one write() per eventfd.
 *
 *	harvest [ROUNDS] [N...]		defaults: 200 rounds, N = 1 16 256 4096
 *
 * Prints one line per (mechanism, N): ns/event and syscalls/event.
 * Every round checks that exactly N events arrived.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <kevent_syscalls.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

struct result {
	double harvest_ns, produce_ns, syscalls;
};

static void report(const char *name, int n, long events, struct result r)
{
	printf("%-22s N=%-5d harvest %8.1f ns/event  %6.3f syscalls/event   produce %8.1f ns/event\n",
	       name, n, r.harvest_ns / events, r.syscalls / events, r.produce_ns / events);
}

/* Runs @cmd on entries 0..n-1, 1024 per system call. */
static void ctl_all(int fd, unsigned int cmd, struct ukevent *b, int n)
{
	for (int i = 0; i < n; i += 1024) {
		int k = n - i < 1024 ? n - i : 1024;

		if (kevent_ctl(fd, cmd, k, b + i) != 0)
			die("kevent_ctl");
	}
}

/* Makes ids 0..n-1 ready. */
static void fire_all(int fd, struct ukevent *b, int n)
{
	ctl_all(fd, KEVENT_CTL_READY, b, n);
}

/* Registers user events 0..n-1. */
static struct ukevent *user_events(int fd, int n)
{
	struct ukevent *b = calloc(n, sizeof(*b));

	for (int i = 0; i < n; i++) {
		b[i].type = KEVENT_UNOTIFY;
		b[i].id.raw_u64 = i;
	}
	ctl_all(fd, KEVENT_CTL_ADD, b, n);
	return b;
}

static struct result bench_get_events(int n, int rounds)
{
	int fd = kevent_init(0, 0);
	struct ukevent *b = user_events(fd, n), *out = calloc(n, sizeof(*out));
	struct kevent_wait_arg zero = kevent_timeout_ns(0);
	struct result r = { 0 };

	for (int round = 0; round < rounds; round++) {
		uint64_t t0 = now_ns(), t1;
		int got = 0;

		fire_all(fd, b, n);
		t1 = now_ns();
		while (got < n) {
			int k = kevent_get_events(fd, 1, n - got, out, &zero);

			if (k <= 0)
				die("kevent_get_events");
			got += k;
			r.syscalls++;
		}
		r.harvest_ns += now_ns() - t1;
		r.produce_ns += t1 - t0;
	}
	close(fd);
	free(b);
	free(out);
	return r;
}

static struct result bench_ring(int n, int rounds)
{
	unsigned int size = 1;

	while (size < (unsigned int)n)
		size <<= 1;
	int fd = kevent_init(size, 0);
	size_t len = (KEVENT_RING_BYTES(size) + 4095) & ~4095ul;
	struct kevent_ring *ring = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	struct ukevent *b;
	struct result r = { 0 };
	unsigned int uidx = 0;
	volatile uint64_t sink = 0;

	if (fd < 0 || ring == MAP_FAILED)
		die("ring");
	b = user_events(fd, n);
	for (int round = 0; round < rounds; round++) {
		uint64_t t0 = now_ns(), t1;
		int got = 0;

		fire_all(fd, b, n);
		t1 = now_ns();
		while (got < n) {
			unsigned int kidx = __atomic_load_n(&ring->ring_kidx, __ATOMIC_ACQUIRE);

			if (kidx == uidx) {
				/* Nothing published: ask the kernel (never needed here). */
				if (kevent_wait(fd, 0, uidx, NULL) < 0)
					die("kevent_wait");
				r.syscalls++;
				continue;
			}
			while (uidx != kidx) {
				sink += ring->event[uidx & (size - 1)].id.raw_u64;
				uidx++;
				got++;
			}
			__atomic_store_n(&ring->ring_uidx, uidx, __ATOMIC_RELEASE);
		}
		r.harvest_ns += now_ns() - t1;
		r.produce_ns += t1 - t0;
		if (got != n)
			die("ring count");
	}
	munmap(ring, len);
	close(fd);
	free(b);
	return r;
}

static struct result bench_epoll(int n, int rounds)
{
	int ep = epoll_create1(0), *efd = calloc(n, sizeof(int));
	struct epoll_event *out = calloc(n, sizeof(*out));
	struct result r = { 0 };
	uint64_t one = 1;

	for (int i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u32 = i };

		efd[i] = eventfd(0, EFD_NONBLOCK);
		if (efd[i] < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd[i], &ev))
			die("eventfd/epoll_ctl");
	}
	for (int round = 0; round < rounds; round++) {
		uint64_t t0 = now_ns(), t1;
		int got = 0;

		for (int i = 0; i < n; i++)
			if (write(efd[i], &one, sizeof(one)) != sizeof(one))
				die("write");
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
	}
	for (int i = 0; i < n; i++)
		close(efd[i]);
	close(ep);
	free(efd);
	free(out);
	return r;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	int def[] = { 1, 16, 256, 4096 }, *ns = def, count = 4;
	struct rlimit nofile = { 65536, 65536 };

	/* Room for one eventfd per source. */
	setrlimit(RLIMIT_NOFILE, &nofile);

	if (argc > 2) {
		count = argc - 2;
		ns = calloc(count, sizeof(int));
		for (int i = 0; i < count; i++)
			ns[i] = atoi(argv[i + 2]);
	}
	struct timespec res;
	char cs[64] = "?";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");

	if (f) {
		if (fscanf(f, "%63s", cs) != 1)
			strcpy(cs, "?");
		fclose(f);
	}
	clock_getres(CLOCK_MONOTONIC, &res);
	printf("harvest cost: %d rounds; timing excludes producing the events; clock %s, %ld ns resolution\n",
	       rounds, cs, res.tv_nsec);
	if (res.tv_sec || res.tv_nsec > 1000)
		printf("note: the clock is coarse; per-event numbers below are unreliable\n");
	for (int i = 0; i < count; i++) {
		int n = ns[i], r = n >= 4096 ? rounds / 10 + 1 : rounds;
		long events = (long)n * r;

		report("kevent ring", n, events, bench_ring(n, r));
		report("kevent_get_events", n, events, bench_get_events(n, r));
		report("epoll_wait (eventfd)", n, events, bench_epoll(n, r));
	}
	return 0;
}
