// SPDX-License-Identifier: GPL-2.0
/*
 * A seeded random-argument driver for every kevent system call: valid, edge
 * and invalid values (bad and reused descriptors, huge counts, unaligned,
 * unmapped, read-only and PROT_NONE pointers, kernel addresses, reserved
 * bits, odd ring sizes, garbage in the ring's consumer index, commits from
 * anywhere, munmap of a ring while another thread uses it). It passes when
 * every call returns (an errno or a result) and the VM runner finds the
 * kernel log clean.
 *
 *	KEVENT_FUZZ_CALLS=N	calls per thread (default 100000; 3 threads)
 *	KEVENT_FUZZ_SEED=S	seed (default: time); printed either way
 *
 * To narrow a failure down: KEVENT_FUZZ_OPS=MASK (bit i enables call i of
 * names[]), KEVENT_FUZZ_THREADS=N, KEVENT_FUZZ_NOTIMERS=1 (no timer
 * registrations), KEVENT_FUZZ_NOALARM=1 (no SIGALRM every 20 ms).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/time.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

#define NQUEUES 6
#define NTHREADS 3

static atomic_int queues[NQUEUES];
static char *buf;		/* 4 pages: rw, rw, read-only, PROT_NONE */
static char *unmapped;
static atomic_long calls[10], ok[10], classes[8];
static atomic_int stop;
static _Thread_local int last_op = -1;

static const char *const names[] = {
	"kevent_init", "kevent_ctl", "kevent_get_events", "kevent_wait", "kevent_commit",
	"aio_send", "aio_recv", "aio_sendfile", "aio_read", "ring poke",
};
static const char *const class_names[] = {
	"valid", "NULL", "unaligned", "unmapped", "read-only", "PROT_NONE", "kernel address",
	"ring mapping",
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int pick_fd(uint64_t *s)
{
	switch (rnd(s) % 8) {
	case 0: return -1;
	case 1: return 1000 + rnd(s) % 100;	/* not open */
	case 2: return 0;			/* not a queue */
	default: return atomic_load(&queues[rnd(s) % NQUEUES]);
	}
}

static void *pick_ptr(uint64_t *s, size_t *room)
{
	int c = rnd(s) % 8;

	atomic_fetch_add(&classes[c], 1);
	*room = 0;
	switch (c) {
	case 0: *room = 8192; return buf;
	case 1: return NULL;
	case 2: *room = 8191; return buf + 1;
	case 3: return unmapped;
	case 4: return buf + 8192;
	case 5: return buf + 12288;
	case 6: return (void *)0xffff888000000000ul;
	default: return buf + 8192 - 48 * (rnd(s) % 4);	/* straddles into read-only */
	}
}

static unsigned int pick_count(uint64_t *s)
{
	static const unsigned int edge[] = { 0, 1, 2, 63, 64, 170, KEVENT_MAX_CTL_BATCH,
					     KEVENT_MAX_CTL_BATCH + 1, 0x7fffffff, 0xffffffff };

	return rnd(s) % 2 ? rnd(s) % 8 : edge[rnd(s) % 10];
}

/* Fills the writable part of the buffer with random but plausible requests. */
static void scribble(uint64_t *s)
{
	struct ukevent *e = (struct ukevent *)buf;

	for (int i = 0; i < 8192 / 48; i++) {
		e[i].type = rnd(s) % 12;
		e[i].event = rnd(s) % 3 ? 1 : rnd(s);
		e[i].req_flags = rnd(s) % 4 ? rnd(s) & 0x7f : rnd(s);
		e[i].id.raw_u64 = rnd(s) % 4 ? rnd(s) % 16 : rnd(s);
		if (e[i].type == KEVENT_TIMER && getenv("KEVENT_FUZZ_NOTIMERS"))
			e[i].type = KEVENT_UNOTIFY;
		if (e[i].type == KEVENT_TIMER) {
			/* Periods of 0.1 ms or more: shorter ones only burn CPU. */
			e[i].id.raw[0] = rnd(s) % 2;
			e[i].id.raw[1] = 100000 + rnd(s) % 1000000000;
			if (rnd(s) % 16 == 0)
				e[i].id.raw[1] = rnd(s);
		}
		e[i].ret_data[1] = rnd(s);
	}
}

static unsigned int ops_mask = 0x3ff;

static void one_call(uint64_t *s)
{
	int which = rnd(s) % 10, fd = pick_fd(s);

	if (!(ops_mask & (1u << which)))
		return;
	size_t room;
	void *p = pick_ptr(s, &room);
	long r = -1;

	atomic_fetch_add(&calls[which], 1);
	last_op = which;
	switch (which) {
	case 0: {
		static const unsigned int sizes[] = { 0, 1, 3, 16, 64, KEVENT_MAX_RING_SIZE,
						      KEVENT_MAX_RING_SIZE + 1, 0xffffffff };
		unsigned int flags = rnd(s) % 4 ? O_NONBLOCK : rnd(s);

		r = kevent_init(sizes[rnd(s) % 8], flags);
		if (r >= 0) {
			/* Replace a queue: concurrent users see the old fd closed or reused. */
			int slot = rnd(s) % NQUEUES;

			if (!(flags & O_NONBLOCK))
				fcntl(r, F_SETFL, O_NONBLOCK);
			close(atomic_exchange(&queues[slot], (int)r));
		}
		break;
	}
	case 1:
		scribble(s);
		r = kevent_ctl(fd, rnd(s) % 5 ? rnd(s) % 4 : rnd(s), pick_count(s), p);
		break;
	case 2: {
		struct kevent_wait_arg wa = kevent_timeout_ns(rnd(s) % 2000000);

		if (rnd(s) % 4 == 0)
			wa.flags = rnd(s);
		if (rnd(s) % 4 == 0) {
			wa.sigmask = (uintptr_t)(rnd(s) % 2 ? buf : p);
			wa.sigsetsize = rnd(s) % 3 ? 8 : rnd(s);
		}
		if (rnd(s) % 8 == 0)
			wa.timeout.tv_nsec = rnd(s);
		r = kevent_get_events(fd, pick_count(s) % 4, pick_count(s), p,
				      rnd(s) % 8 ? &wa : (rnd(s) % 2 ? NULL : p));
		break;
	}
	case 3: {
		struct kevent_wait_arg wa = kevent_timeout_ns(rnd(s) % 1000000);

		r = kevent_wait(fd, pick_count(s), rnd(s), rnd(s) % 8 ? &wa : p);
		break;
	}
	case 4:
		r = kevent_commit(fd, rnd(s) % 2 ? rnd(s) % 64 : rnd(s), rnd(s) % 2 ? 0 : rnd(s));
		break;
	case 5:
		r = aio_send(fd, pick_fd(s), p, rnd(s), rnd(s));
		break;
	case 6:
		r = aio_recv(fd, pick_fd(s), p, rnd(s), rnd(s));
		break;
	case 7:
		r = aio_sendfile(fd, pick_fd(s), pick_fd(s), p, rnd(s));
		break;
	case 8:
		r = aio_read(fd, pick_fd(s), p, rnd(s), p);
		break;
	case 9: {
		/* Map a ring, scribble on its header, maybe unmap it while others use it. */
		size_t len = 4096 * (1 + rnd(s) % 3);
		char *ring = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (ring != MAP_FAILED) {
			struct kevent_wait_arg now = kevent_timeout_ns(0);

			((volatile uint32_t *)ring)[1] = rnd(s);
			kevent_wait(fd, 1, rnd(s), &now);
			munmap(ring, len);
			r = 0;
		}
		break;
	}
	}
	if (r >= 0)
		atomic_fetch_add(&ok[which], 1);
}

struct worker {
	uint64_t seed;
	long n;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (long i = 0; i < w->n && !atomic_load(&stop); i++)
		one_call(&w->seed);
	return NULL;
}

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "fuzz: signal %d at %p during op %d\n", sig, si->si_addr, last_op);
	_exit(2);
}

static void on_alarm(int sig)
{
	(void)sig;	/* only interrupts a call that would block */
}

FIXTURE(fuzz) {};
FIXTURE_SETUP(fuzz) {}
FIXTURE_TEARDOWN(fuzz) {}

TEST_F_TIMEOUT(fuzz, random_calls, 1200)
{
	const char *env = getenv("KEVENT_FUZZ_CALLS");
	long n = env ? atol(env) : 100000;
	uint64_t seed = getenv("KEVENT_FUZZ_SEED") ? strtoull(getenv("KEVENT_FUZZ_SEED"), NULL, 0)
						   : (uint64_t)now_ns();
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } };
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	int nthreads = getenv("KEVENT_FUZZ_THREADS") ? atoi(getenv("KEVENT_FUZZ_THREADS")) : NTHREADS;
	long total = 0;

	if (!seed)
		seed = 1;
	if (getenv("KEVENT_FUZZ_OPS"))
		ops_mask = strtoul(getenv("KEVENT_FUZZ_OPS"), NULL, 0);
	TH_LOG("seed %#llx, %ld calls per thread, %d threads", (unsigned long long)seed, n,
	       NTHREADS);
	buf = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	mprotect(buf + 8192, 4096, PROT_READ);
	mprotect(buf + 12288, 4096, PROT_NONE);
	/*
	 * Never mapped: below the static binary and its heap, above mmap_min_addr.
	 * (An munmap()ed range is no good: thread stacks reuse it, and the kernel
	 * then rightly writes results into them.)
	 */
	unmapped = (char *)0x10000;
	for (int i = 0; i < NQUEUES; i++)
		atomic_store(&queues[i], kevent_init(i % 2 ? 16 : 0, O_NONBLOCK));
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	if (!getenv("KEVENT_FUZZ_NOALARM"))
		setitimer(ITIMER_REAL, &it, NULL);
	if (nthreads < 1 || nthreads > NTHREADS)
		nthreads = NTHREADS;
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){ seed + i * 0x9e3779b97f4a7c15ull, n };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, work, &w[i]));
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	setitimer(ITIMER_REAL, &(struct itimerval){ 0 }, NULL);
	for (int i = 0; i < 10; i++) {
		TH_LOG("%-18s %8ld calls, %8ld succeeded", names[i], atomic_load(&calls[i]),
		       atomic_load(&ok[i]));
		total += atomic_load(&calls[i]);
	}
	for (int i = 0; i < 8; i++)
		TH_LOG("pointer class %-15s %8ld", class_names[i], atomic_load(&classes[i]));
	TH_LOG("%ld calls in all", total);
	for (int i = 0; i < NQUEUES; i++)
		close(atomic_load(&queues[i]));
	if (ops_mask == 0x3ff)
		EXPECT_EQ((long)nthreads * n, total);
}

TEST_HARNESS_MAIN
