// SPDX-License-Identifier: GPL-2.0
/*
 * Bounded, seeded stress: threads add, remove, modify and fire
 * registrations (user events and timers), harvest by copy and from the ring,
 * replace queues under each other's feet, fork children that use and drop
 * the queues and exit, and try to rmmod the module, all at once.
 *
 *	KEVENT_STRESS_SECONDS=N	duration (default 10)
 *	KEVENT_STRESS_SEED=S	seed (default fixed); printed
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

#define NQ 4
#define RING 64

static atomic_int qs[NQ];
static atomic_int stop;
static atomic_long ops[8];
static const char *const op_names[] = {
	"ctl batches", "copy harvests", "ring harvests", "queue replacements",
	"forks", "rmmod refused", "rmmod succeeded", "events harvested",
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int new_queue(int i)
{
	return kevent_init(i % 2 ? RING : 0, O_NONBLOCK);
}

static void *ctl_loop(void *arg)
{
	uint64_t s = *(uint64_t *)arg;
	struct ukevent b[16];

	while (!atomic_load(&stop)) {
		int fd = atomic_load(&qs[rnd(&s) % NQ]), n = 1 + rnd(&s) % 16;
		unsigned int cmd = rnd(&s) % 4;

		for (int i = 0; i < n; i++) {
			if (rnd(&s) % 8 == 0)
				b[i] = timer_uev(0, 1000000 + rnd(&s) % 4000000,
						 rnd(&s) % 2 ? KEVENT_REQ_ONESHOT : 0);
			else
				b[i] = uev(KEVENT_UNOTIFY, rnd(&s) % 256, 0,
					   rnd(&s) % 4 ? 0 : (rnd(&s) & 0x7f) & ~KEVENT_REQ_READY);
		}
		kevent_ctl(fd, cmd, n, b);
		atomic_fetch_add(&ops[0], 1);
	}
	return NULL;
}

static void *copy_loop(void *arg)
{
	uint64_t s = *(uint64_t *)arg;
	struct ukevent out[32];

	while (!atomic_load(&stop)) {
		int n = harvest(atomic_load(&qs[rnd(&s) % NQ]), 1, 32, out, 5);

		if (n > 0)
			atomic_fetch_add(&ops[7], n);
		atomic_fetch_add(&ops[1], 1);
	}
	return NULL;
}

static void *ring_loop(void *arg)
{
	uint64_t s = *(uint64_t *)arg;
	size_t len = (KEVENT_RING_BYTES(RING) + 4095) & ~4095ul;

	while (!atomic_load(&stop)) {
		int fd = atomic_load(&qs[1 + 2 * (rnd(&s) % (NQ / 2))]);
		struct kevent_ring *r = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		struct kevent_wait_arg wa = kevent_timeout_ns(2000000);

		if (r == MAP_FAILED)
			continue;
		for (int round = 0; round < 16; round++) {
			unsigned int kidx = __atomic_load_n(&r->ring_kidx, __ATOMIC_ACQUIRE);
			unsigned int uidx = r->ring_uidx;

			if (kidx - uidx > RING)
				break;	/* another thread's view: start over */
			atomic_fetch_add(&ops[7], kidx - uidx);
			if (rnd(&s) % 2)
				__atomic_store_n(&r->ring_uidx, kidx, __ATOMIC_RELEASE);
			else
				kevent_commit(fd, kidx % RING, kidx / RING);
			kevent_wait(fd, 0, kidx, &wa);
		}
		munmap(r, len);
		atomic_fetch_add(&ops[2], 1);
	}
	return NULL;
}

static void *replace_loop(void *arg)
{
	uint64_t s = *(uint64_t *)arg;

	while (!atomic_load(&stop)) {
		int i = rnd(&s) % NQ, fd = new_queue(i);

		if (fd >= 0)
			close(atomic_exchange(&qs[i], fd));
		atomic_fetch_add(&ops[3], 1);
		usleep(2000);
	}
	return NULL;
}

static void *fork_loop(void *arg)
{
	uint64_t s = *(uint64_t *)arg;

	while (!atomic_load(&stop)) {
		pid_t pid = fork();

		if (pid == 0) {
			struct ukevent e = uev(KEVENT_UNOTIFY, 1000 + rnd(&s) % 16, 0, 0), out[4];
			int fd = atomic_load(&qs[rnd(&s) % NQ]);

			/* Use the inherited queues, then exit holding them. */
			kevent_ctl(fd, KEVENT_CTL_ADD, 1, &e);
			kevent_ctl(fd, KEVENT_CTL_READY, 1, &e);
			harvest(fd, 0, 4, out, 0);
			_exit(0);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
		atomic_fetch_add(&ops[4], 1);
		usleep(5000);
	}
	return NULL;
}

static void *rmmod_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		if (kevent_module_unload() == 0) {
			atomic_fetch_add(&ops[6], 1);
			kevent_module_load();
		} else {
			atomic_fetch_add(&ops[5], 1);
		}
		usleep(10000);
	}
	return NULL;
}

FIXTURE(stress) {};
FIXTURE_SETUP(stress) {}
FIXTURE_TEARDOWN(stress) {}

TEST_F_TIMEOUT(stress, everything_at_once, 600)
{
	void *(*fns[])(void *) = { ctl_loop, ctl_loop, copy_loop, ring_loop, replace_loop,
				   fork_loop, rmmod_loop };
	enum { N = sizeof(fns) / sizeof(fns[0]) };
	const char *env = getenv("KEVENT_STRESS_SECONDS");
	int seconds = env ? atoi(env) : 10;
	uint64_t seed = getenv("KEVENT_STRESS_SEED") ?
			strtoull(getenv("KEVENT_STRESS_SEED"), NULL, 0) : 0x5354524553ull;
	uint64_t seeds[N];
	pthread_t t[N];

	TH_LOG("seed %#llx, %d s, %d threads", (unsigned long long)seed, seconds, N);
	for (int i = 0; i < NQ; i++) {
		atomic_store(&qs[i], new_queue(i));
		ASSERT_LE(0, atomic_load(&qs[i]));
	}
	for (int i = 0; i < N; i++) {
		seeds[i] = (seed + i * 0x9e3779b97f4a7c15ull) | 1;
		ASSERT_EQ(0, pthread_create(&t[i], NULL, fns[i], &seeds[i]));
	}
	sleep(seconds);
	atomic_store(&stop, 1);
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 8; i++)
		TH_LOG("%-20s %ld", op_names[i], atomic_load(&ops[i]));
	/* Queues were open the whole time: the module must never have gone. */
	EXPECT_EQ(0, atomic_load(&ops[6]));
	EXPECT_LT(0, atomic_load(&ops[5]));
	for (int i = 0; i < NQ; i++)
		close(atomic_load(&qs[i]));
	/* With every queue closed, the module unloads cleanly (and comes back). */
	usleep(100000);
	EXPECT_EQ(0, kevent_module_unload());
	EXPECT_EQ(0, kevent_module_load());
}

TEST_HARNESS_MAIN
