/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the benchmarks: time, errors, and the result lines that
 * scripts/bench-report.py aggregates on the host:
 *
 *	BENCH <benchmark> <case> <mechanism> <metric> <value>
 *
 * one line per round; metrics ending in _per_s are better when higher, the
 * others (ns, us, syscalls) when lower.
 *
 * The kevent mechanisms use libkevent (<libkevent.h>): queues, rings and
 * registrations through struct kevent_queue; the ring protocol lives there.
 */
#ifndef BENCH_H
#define BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libkevent.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline void die(const char *what)
{
	fprintf(stderr, "FAILED: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A wrong answer fails the benchmark, whatever its speed. */
static inline void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "FAILED: %s (errno %d: %s)\n", what, errno, strerror(errno));
		exit(1);
	}
}

/*
 * A libkevent call's result (0 or more, or -errno: the library leaves errno
 * alone) must not be an error.
 */
static inline void check_ret(long ret, const char *what)
{
	if (ret < 0) {
		fprintf(stderr, "FAILED: %s: %s\n", what, strerror((int)-ret));
		exit(1);
	}
}

/*
 * CPU time every CPU spent busy since boot (user, nice, system, irq, softirq,
 * steal: the first line of /proc/stat), in ns. Its difference over a run
 * counts the work of every context the run caused, softirqs and kernel
 * workers included, which per-process times would leave out. Resolution:
 * one tick (USER_HZ, 10 ms).
 */
static inline uint64_t cpu_busy_ns(void)
{
	unsigned long long v[8];
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "re");
	int n;

	check(f != NULL, "open /proc/stat");
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	check(n == 8 && hz > 0, "parse /proc/stat");
	return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * (1000000000ull / (uint64_t)hz);
}

static inline void emit(const char *bench, const char *c, const char *mech,
			const char *metric, double value)
{
	printf("BENCH %s %s %s %s %.6g\n", bench, c, mech, metric, value);
	fflush(stdout);
}

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0..100) of n samples, sorting them. */
static inline double percentile(uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	i = (size_t)(p / 100.0 * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/*
 * Ring mode: up to @max pointers to the events in the ring (see
 * kevent_queue_peek_batch()), sleeping in kevent_queue_wait() while it is
 * empty. Consume them with kevent_queue_advance().
 */
static inline unsigned int ring_next_batch(struct kevent_queue *q, struct ukevent **ev,
					   unsigned int max)
{
	unsigned int k;

	while (!(k = kevent_queue_peek_batch(q, ev, max))) {
		struct ukevent *e;
		int ret = kevent_queue_wait(q, &e, NULL);

		check(ret == 0 || ret == -EINTR, "kevent_queue_wait");
	}
	return k;
}

/* Room for many descriptors (one per source). */
static inline void raise_nofile(void)
{
	struct rlimit nofile = { 65536, 65536 };

	setrlimit(RLIMIT_NOFILE, &nofile);
}

/* The integers argv[first..argc), or @def when there are none; sets *count. */
static inline int *int_args(int argc, char **argv, int first, int *def, int ndef, int *count)
{
	int *v;

	if (argc <= first) {
		*count = ndef;
		return def;
	}
	*count = argc - first;
	v = calloc(*count, sizeof(int));
	for (int i = 0; i < *count; i++)
		v[i] = atoi(argv[first + i]);
	return v;
}

/* A connected TCP pair over IPv4 loopback: *tx connects, *rx is accepted. */
static inline void loopback_tcp(int *tx, int *rx)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (void *)&sa, len) || listen(l, 1) ||
	    getsockname(l, (void *)&sa, &len))
		die("listen");
	*tx = socket(AF_INET, SOCK_STREAM, 0);
	if (*tx < 0 || connect(*tx, (void *)&sa, len))
		die("connect");
	*rx = accept(l, NULL, NULL);
	if (*rx < 0)
		die("accept");
	close(l);
}

#endif
