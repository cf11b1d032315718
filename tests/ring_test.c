// SPDX-License-Identifier: GPL-2.0
/*
 * The mmap'd ring (mapping checks, publishing without system calls,
 * lossless overflow onto the ready list, kevent_wait, kevent_commit) and
 * concurrency: a million events through a small ring with a slow consumer,
 * and a million events harvested by four threads, each exactly once.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

static size_t ring_len(unsigned int size)
{
	return (KEVENT_RING_BYTES(size) + 4095) & ~4095ul;
}

static struct kevent_ring *map_ring(int fd, unsigned int size)
{
	void *p = mmap(NULL, ring_len(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static unsigned int ring_kidx(struct kevent_ring *r)
{
	return __atomic_load_n(&r->ring_kidx, __ATOMIC_ACQUIRE);
}

static void ring_consume_to(struct kevent_ring *r, unsigned int uidx)
{
	__atomic_store_n(&r->ring_uidx, uidx, __ATOMIC_RELEASE);
}

static void add_user_events(struct __test_metadata *_metadata, int fd, int n)
{
	for (int i = 0; i < n; i++) {
		struct ukevent e = uev(KEVENT_UNOTIFY, i, 0, 0);

		ASSERT_EQ(0, ctl1(fd, KEVENT_CTL_ADD, &e));
	}
}

TEST(mmap_checks)
{
	int fd = kevent_init(8, 0), plain = kevent_init(0, 0);
	struct kevent_ring *r;
	void *p;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, plain);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, plain, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(ENODEV, errno);
	p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EPERM, errno);
	p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, 2 * 4096, PROT_READ, MAP_SHARED, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
	EXPECT_EQ(MAP_FAILED, p);
	r = map_ring(fd, 8);
	ASSERT_NE(NULL, r);
	EXPECT_EQ(8, r->ring_size);
	EXPECT_EQ(0, r->ring_kidx);
	EXPECT_EQ(0, r->ring_uidx);
	/* Never executable later either. */
	EXPECT_EQ(-1, mprotect(r, 4096, PROT_READ | PROT_EXEC));
	munmap(r, ring_len(8));
	close(plain);
	close(fd);
}

TEST(ring_not_inherited_by_fork)
{
	int fd = kevent_init(8, 0), status;
	struct kevent_ring *r = map_ring(fd, 8);
	unsigned char vec;
	pid_t pid;

	ASSERT_NE(NULL, r);
	ASSERT_EQ(0, mincore(r, 4096, &vec));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(mincore(r, 4096, &vec) == -1 && errno == ENOMEM ? 0 : 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	close(fd);
}

TEST(events_appear_in_the_ring_without_a_harvesting_call)
{
	int fd = kevent_init(8, 0);
	struct kevent_ring *r = map_ring(fd, 8);

	ASSERT_NE(NULL, r);
	add_user_events(_metadata, fd, 4);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, fire(fd, 3 - i));
	ASSERT_EQ(4, ring_kidx(r));
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(3 - i, r->event[i].id.raw_u64);
		EXPECT_EQ(1, r->event[i].ret_data[0]);
		if (i)
			EXPECT_LT(r->event[i - 1].seq, r->event[i].seq);
	}
	close(fd);
}

TEST(full_ring_loses_nothing)
{
	int fd = kevent_init(4, 0);
	struct kevent_ring *r = map_ring(fd, 4);
	unsigned int uidx = 0, seen = 0, mask = 0;
	uint64_t last_seq = 0;

	ASSERT_NE(NULL, r);
	add_user_events(_metadata, fd, 10);
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(0, fire(fd, i));
	/* Four in the ring, six wait on the ready list. */
	ASSERT_EQ(4, ring_kidx(r));
	while (seen < 10) {
		unsigned int kidx = ring_kidx(r);

		if (kidx == uidx) {
			/* Drained: pull in what waits on the ready list. */
			ASSERT_LT(0, kevent_wait(fd, 0, uidx, NULL));
			continue;
		}
		struct ukevent *e = &r->event[uidx % 4];

		EXPECT_LT(last_seq, e->seq);
		last_seq = e->seq;
		mask |= 1u << e->id.raw_u64;
		seen++;
		ring_consume_to(r, ++uidx);
	}
	EXPECT_EQ(0x3ff, mask);
	EXPECT_EQ(10, ring_kidx(r));
	close(fd);
}

TEST(commit_checks_the_wrap_counter)
{
	int fd = kevent_init(4, 0);
	struct kevent_ring *r = map_ring(fd, 4);

	ASSERT_NE(NULL, r);
	add_user_events(_metadata, fd, 6);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, fire(fd, i));
	/* Release three slots: slot 3 of wrap 0. */
	EXPECT_EQ(3, kevent_commit(fd, 3, 0));
	EXPECT_EQ(3, r->ring_uidx);
	EXPECT_EQ(0, r->ring_over);
	/* Going back is a stale commit. */
	EXPECT_EQ(-1, kevent_commit(fd, 1, 0));
	EXPECT_EQ(EOVERFLOW, errno);
	/* Beyond the producer, or a slot out of range, is invalid. */
	EXPECT_EQ(-1, kevent_commit(fd, 1, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, kevent_commit(fd, 4, 0));
	EXPECT_EQ(EINVAL, errno);
	/* The freed slots were refilled from the ready list as space appeared. */
	ASSERT_EQ(0, fire(fd, 4));
	ASSERT_EQ(0, fire(fd, 5));
	EXPECT_EQ(6, ring_kidx(r));
	/* Slot 2 of wrap 1 is index 6: everything consumed. */
	EXPECT_EQ(3, kevent_commit(fd, 2, 1));
	EXPECT_EQ(1, r->ring_over);
	EXPECT_EQ(6, r->ring_uidx);
	close(fd);
}

TEST(garbage_consumer_index_is_not_trusted)
{
	int fd = kevent_init(4, 0);
	struct kevent_ring *r = map_ring(fd, 4);

	ASSERT_NE(NULL, r);
	add_user_events(_metadata, fd, 6);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, fire(fd, i));
	/* An index ahead of the producer would let the kernel overwrite unread slots. */
	ring_consume_to(r, 1000);
	for (int i = 2; i < 6; i++)
		ASSERT_EQ(0, fire(fd, i));
	EXPECT_EQ(4, ring_kidx(r));
	close(fd);
}

struct delayed {
	int fd;
	uint64_t id;
};

static void *fire_after_50ms(void *arg)
{
	struct delayed *d = arg;

	usleep(50000);
	fire(d->fd, d->id);
	return NULL;
}

TEST(wait_sleeps_until_an_event_is_published)
{
	int fd = kevent_init(8, 0);
	struct kevent_ring *r = map_ring(fd, 8);
	struct kevent_wait_arg wa = kevent_timeout_ns(50000000ull);
	struct delayed d = { fd, 1 };
	pthread_t t;
	uint64_t t0;

	ASSERT_NE(NULL, r);
	add_user_events(_metadata, fd, 2);
	t0 = now_ns();
	EXPECT_EQ(0, kevent_wait(fd, 0, 0, &wa));
	EXPECT_LE(50000000ull, now_ns() - t0);
	ASSERT_EQ(0, pthread_create(&t, NULL, fire_after_50ms, &d));
	EXPECT_EQ(1, kevent_wait(fd, 0, 0, NULL));
	pthread_join(t, NULL);
	/* With the consumer index moved past old_uidx, it returns at once. */
	ring_consume_to(r, 1);
	t0 = now_ns();
	wa = kevent_timeout_ns(2000000000ull);
	EXPECT_EQ(0, kevent_wait(fd, 0, 0, &wa));
	EXPECT_GT(1000000000ull, now_ns() - t0);
	close(fd);
}

struct producer {
	int fd;
	int nregs;
	long total;
	atomic_int done;
};

/* Fires `total` user events over `nregs` registrations, 16 per system call. */
static void *produce(void *arg)
{
	struct producer *p = arg;
	struct ukevent b[16];
	long fired = 0;
	unsigned int next = 0;

	while (fired < p->total) {
		int n = p->total - fired < 16 ? p->total - fired : 16;

		for (int i = 0; i < n; i++)
			b[i] = uev(KEVENT_UNOTIFY, next++ % p->nregs, 0, 0);
		if (kevent_ctl(p->fd, KEVENT_CTL_READY, n, b) != 0)
			break;
		fired += n;
	}
	atomic_store(&p->done, 1);
	return NULL;
}


FIXTURE(big) {
	int fd;
};

FIXTURE_SETUP(big) {}
FIXTURE_TEARDOWN(big) {}

TEST_F_TIMEOUT(big, ring_wrap_million_events_slow_consumer, 300)
{
	enum { SIZE = 64, REGS = 256 };
	struct producer p = { .nregs = REGS, .total = 1000000 };
	struct kevent_wait_arg wa = kevent_timeout_ns(10000000ull);
	struct kevent_ring *r;
	unsigned int uidx = 0;
	long sum = 0, events = 0;
	uint64_t last_seq = 0;
	pthread_t t;

	p.fd = kevent_init(SIZE, 0);
	ASSERT_LE(0, p.fd);
	r = map_ring(p.fd, SIZE);
	ASSERT_NE(NULL, r);
	add_user_events(_metadata, p.fd, REGS);
	ASSERT_EQ(0, pthread_create(&t, NULL, produce, &p));
	while (sum < p.total) {
		unsigned int kidx = ring_kidx(r);

		if (kidx == uidx) {
			int n = kevent_wait(p.fd, 0, uidx, &wa);

			ASSERT_LE(0, n);
			if (n == 0 && atomic_load(&p.done) && ring_kidx(r) == uidx)
				break;
			continue;
		}
		while (uidx != kidx) {
			struct ukevent *e = &r->event[uidx % SIZE];

			ASSERT_LT(last_seq, e->seq) TH_LOG("event %ld", events);
			last_seq = e->seq;
			ASSERT_GT(REGS, e->id.raw_u64);
			sum += e->ret_data[0];
			events++;
			uidx++;
		}
		ring_consume_to(r, uidx);
		/* Slower than the producer now and then. */
		if (events % 4096 < 64)
			usleep(100);
	}
	pthread_join(t, NULL);
	TH_LOG("%ld fires arrived as %ld ring events (ring of %d, wrapped %u times)",
	       sum, events, SIZE, r->ring_over);
	EXPECT_EQ(p.total, sum);
	EXPECT_LT(SIZE * 10, events);
	close(p.fd);
}

struct harvester {
	int fd;
	struct producer *p;
	_Atomic unsigned char *seen;
	long limit;
	long sum;
	long dups;
	atomic_long *total;
};

static void *harvest_loop(void *arg)
{
	struct harvester *h = arg;
	struct ukevent out[64];

	for (;;) {
		int n = harvest(h->fd, 1, 64, out, 20);

		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			uint64_t s = out[i].seq;

			if (s >= (uint64_t)h->limit || atomic_exchange(&h->seen[s], 1))
				h->dups++;
			h->sum += out[i].ret_data[0];
			atomic_fetch_add(h->total, out[i].ret_data[0]);
		}
		if (n == 0 && atomic_load(&h->p->done) &&
		    atomic_load(h->total) >= h->p->total)
			break;
	}
	return NULL;
}

TEST_F_TIMEOUT(big, four_threads_million_events_exactly_once, 300)
{
	enum { REGS = 1024, THREADS = 4 };
	struct producer p = { .nregs = REGS, .total = 1000000 };
	struct harvester h[THREADS];
	atomic_long total = 0;
	long limit = 4 * p.total, sum = 0, dups = 0;
	_Atomic unsigned char *seen = calloc(limit, 1);
	pthread_t pt, ht[THREADS];

	ASSERT_NE(NULL, seen);
	p.fd = kevent_init(0, 0);
	ASSERT_LE(0, p.fd);
	add_user_events(_metadata, p.fd, REGS);
	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct harvester){ p.fd, &p, seen, limit, 0, 0, &total };
		ASSERT_EQ(0, pthread_create(&ht[i], NULL, harvest_loop, &h[i]));
	}
	ASSERT_EQ(0, pthread_create(&pt, NULL, produce, &p));
	pthread_join(pt, NULL);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(ht[i], NULL);
		sum += h[i].sum;
		dups += h[i].dups;
		TH_LOG("harvester %d: %ld fires", i, h[i].sum);
	}
	EXPECT_EQ(p.total, sum);
	EXPECT_EQ(0, dups);
	free((void *)seen);
	close(p.fd);
}

TEST_HARNESS_MAIN
