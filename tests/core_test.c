// SPDX-License-Identifier: GPL-2.0
/*
 * The queue core: kevent_ctl (ADD/REMOVE/MODIFY/READY and per-entry errors),
 * trigger modes on user events and timers, kevent_get_events (min_nr,
 * timeouts, signals, the signal mask) and the per-user limit.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

FIXTURE(q) {
	int fd;
};

FIXTURE_SETUP(q)
{
	self->fd = kevent_init(0, 0);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(q)
{
	close(self->fd);
}

TEST_F(q, add_ready_harvest_user_event)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 7, 0x5, 0), out[4];

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	EXPECT_EQ(0, harvest(self->fd, 0, 4, out, 0));
	ASSERT_EQ(0, fire(self->fd, 7));
	ASSERT_EQ(1, harvest(self->fd, 1, 4, out, 1000));
	EXPECT_EQ(KEVENT_UNOTIFY, out[0].type);
	EXPECT_EQ(7, out[0].id.raw_u64);
	EXPECT_EQ(0x5, out[0].event);
	EXPECT_EQ(7 ^ 0xabcdef00ull, out[0].user);
	EXPECT_EQ(1, out[0].ret_data[0]);
	EXPECT_LT(0, out[0].seq);
	/* Delivered: not ready any more. */
	EXPECT_EQ(0, harvest(self->fd, 0, 4, out, 0));
}

TEST_F(q, ready_coalesces_into_one_slot)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 1, 0, 0), out[4];

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(0, fire(self->fd, 1));
	ASSERT_EQ(1, harvest(self->fd, 1, 4, out, 0));
	EXPECT_EQ(5, out[0].ret_data[0]);
}

TEST_F(q, ready_payload_in_ret_data1)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 1, 0, 0), out;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	e.ret_data[1] = 0xfeed;
	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_READY, &e));
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 0));
	EXPECT_EQ(0xfeed, out.ret_data[1]);
}

TEST_F(q, batch_errors_move_to_front)
{
	struct ukevent b[5];

	b[0] = uev(KEVENT_UNOTIFY, 1, 0, 0);
	b[1] = uev(KEVENT_UNOTIFY, 1, 0, 0);		/* duplicate: EEXIST */
	b[2] = uev(KEVENT_MAX, 3, 0, 0);		/* unknown type: EINVAL */
	b[3] = uev(KEVENT_UNOTIFY, 4, 0, 0x80);	/* unknown flag: EINVAL */
	b[4] = uev(KEVENT_UNOTIFY, 5, 0, 0);
	ASSERT_EQ(3, kevent_ctl(self->fd, KEVENT_CTL_ADD, 5, b));
	EXPECT_EQ(KEVENT_RET_BROKEN | KEVENT_RET_DONE, b[0].ret_flags);
	EXPECT_EQ(-EEXIST, (int)b[0].ret_data[1]);
	EXPECT_EQ(1, b[0].id.raw_u64);
	EXPECT_EQ(-EINVAL, (int)b[1].ret_data[1]);
	EXPECT_EQ(KEVENT_MAX, b[1].type);
	EXPECT_EQ(-EINVAL, (int)b[2].ret_data[1]);
	EXPECT_EQ(4, b[2].id.raw_u64);
	/* Ids 1 and 5 are registered. */
	b[0] = uev(KEVENT_UNOTIFY, 5, 0, 0);
	b[1] = uev(KEVENT_UNOTIFY, 1, 0, 0);
	b[2] = uev(KEVENT_UNOTIFY, 4, 0, 0);
	ASSERT_EQ(1, kevent_ctl(self->fd, KEVENT_CTL_REMOVE, 3, b));
	EXPECT_EQ(4, b[0].id.raw_u64);
	EXPECT_EQ(-ENOENT, (int)b[0].ret_data[1]);
}

TEST_F(q, aio_types_are_made_by_their_calls)
{
	struct ukevent e = uev(KEVENT_AIO, 1, KEVENT_AIO_DONE, 0);

	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	EXPECT_EQ(-EINVAL, (int)e.ret_data[1]);
	e = uev(KEVENT_NAIO, 1, KEVENT_SOCKET_RECV, 0);
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	EXPECT_EQ(-EINVAL, (int)e.ret_data[1]);
}

TEST_F(q, unknown_keys)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 9, 0, 0);

	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_REMOVE, &e));
	EXPECT_EQ(-ENOENT, (int)e.ret_data[1]);
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_MODIFY, &e));
	EXPECT_EQ(-ENOENT, (int)e.ret_data[1]);
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_READY, &e));
	EXPECT_EQ(-ENOENT, (int)e.ret_data[1]);
	/* The key is (type, id): the same id as a timer is another key. */
	e = uev(KEVENT_UNOTIFY, 9, 0, 0);
	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	e.type = KEVENT_TIMER;
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_REMOVE, &e));
}

TEST_F(q, ctl_faults)
{
	EXPECT_EQ(-1, kevent_ctl(self->fd, KEVENT_CTL_ADD, 1, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, kevent_ctl(self->fd, KEVENT_CTL_ADD, 2, (void *)-4096l));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(q, ready_at_add_reported_not_kept)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 3, 0, KEVENT_REQ_READY), out;

	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	EXPECT_EQ(KEVENT_RET_DONE, e.ret_flags);
	EXPECT_EQ(0, harvest(self->fd, 0, 1, &out, 0));
	e = uev(KEVENT_UNOTIFY, 3, 0, 0);
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_REMOVE, &e));
	EXPECT_EQ(-ENOENT, (int)e.ret_data[1]);
}

TEST_F(q, ready_at_add_always_queue_is_kept_and_queued)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 3, 0, KEVENT_REQ_READY | KEVENT_REQ_ALWAYS_QUEUE),
		       out;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 0));
	EXPECT_EQ(3, out.id.raw_u64);
	ASSERT_EQ(0, fire(self->fd, 3));
	EXPECT_EQ(1, harvest(self->fd, 1, 1, &out, 0));
}

TEST_F(q, oneshot_removed_after_delivery)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 4, 0, KEVENT_REQ_ONESHOT), out;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	ASSERT_EQ(0, fire(self->fd, 4));
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 0));
	EXPECT_EQ(1, fire(self->fd, 4));
	/* The key is free again. */
	EXPECT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
}

TEST_F(q, dispatch_disables_until_modify)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 5, 0, KEVENT_REQ_DISPATCH), out;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	ASSERT_EQ(0, fire(self->fd, 5));
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 0));
	ASSERT_EQ(0, fire(self->fd, 5));
	EXPECT_EQ(0, harvest(self->fd, 0, 1, &out, 0));
	e.user = 77;
	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_MODIFY, &e));
	ASSERT_EQ(0, fire(self->fd, 5));
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 0));
	EXPECT_EQ(77, out.user);
}

TEST_F(q, level_and_edge_user_events_report_once_per_fire)
{
	struct ukevent b[2] = { uev(KEVENT_UNOTIFY, 1, 0, 0),
				uev(KEVENT_UNOTIFY, 2, 0, KEVENT_REQ_ET) }, out[2];

	ASSERT_EQ(0, kevent_ctl(self->fd, KEVENT_CTL_ADD, 2, b));
	ASSERT_EQ(0, kevent_ctl(self->fd, KEVENT_CTL_READY, 2, b));
	ASSERT_EQ(2, harvest(self->fd, 2, 2, out, 0));
	EXPECT_LT(out[0].seq, out[1].seq);
	EXPECT_EQ(0, harvest(self->fd, 0, 2, out, 0));
}

TEST_F(q, seq_orders_events_by_readiness)
{
	struct ukevent out[3];

	for (int i = 1; i <= 3; i++) {
		struct ukevent e = uev(KEVENT_UNOTIFY, i, 0, 0);

		ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	}
	ASSERT_EQ(0, fire(self->fd, 3));
	ASSERT_EQ(0, fire(self->fd, 1));
	ASSERT_EQ(0, fire(self->fd, 2));
	ASSERT_EQ(0, fire(self->fd, 3));	/* coalesces: keeps its place */
	ASSERT_EQ(3, harvest(self->fd, 3, 3, out, 0));
	EXPECT_EQ(3, out[0].id.raw_u64);
	EXPECT_EQ(1, out[1].id.raw_u64);
	EXPECT_EQ(2, out[2].id.raw_u64);
	EXPECT_EQ(2, out[0].ret_data[0]);
	EXPECT_LT(out[0].seq, out[1].seq);
	EXPECT_LT(out[1].seq, out[2].seq);
}

TEST_F(q, max_nr_limits_and_keeps_the_rest)
{
	struct ukevent out[8];

	for (int i = 1; i <= 5; i++) {
		struct ukevent e = uev(KEVENT_UNOTIFY, i, 0, 0);

		ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
		ASSERT_EQ(0, fire(self->fd, i));
	}
	ASSERT_EQ(2, harvest(self->fd, 1, 2, out, 0));
	ASSERT_EQ(3, harvest(self->fd, 1, 8, out, 0));
	EXPECT_EQ(3, out[0].id.raw_u64);
}

TEST_F(q, copy_fault_loses_nothing)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 1, 0, 0), out;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	ASSERT_EQ(0, fire(self->fd, 1));
	EXPECT_EQ(-1, kevent_get_events(self->fd, 1, 1, (void *)8, NULL));
	EXPECT_EQ(EFAULT, errno);
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 0));
	EXPECT_EQ(1, out.ret_data[0]);
}

/*
 * A call that must not wait returns at once when nothing is ready, without
 * the queue's lock: whatever became ready before it, in this thread or in
 * another one that said so, must still be seen, also right after an empty
 * call.
 */
struct round_firer {
	int fd;
	int go[2];	/* one byte per round: fire now */
	int done[2];	/* one byte per round: fired */
};

static void *fire_rounds(void *arg)
{
	struct round_firer *f = arg;
	char c;

	while (read(f->go[0], &c, 1) == 1) {
		if (fire(f->fd, 1) || write(f->done[1], &c, 1) != 1)
			return (void *)1;
	}
	return NULL;
}

TEST_F(q, zero_timeout_sees_what_became_ready_since_an_empty_call)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 1, 0, 0), out;
	struct round_firer f = { .fd = self->fd };
	int nb = kevent_init(0, O_NONBLOCK);
	pthread_t t;
	void *ret;
	char c = 'x';

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(0, harvest(self->fd, 0, 1, &out, 0));
		ASSERT_EQ(0, fire(self->fd, 1));
		ASSERT_EQ(1, harvest(self->fd, 0, 1, &out, 0));
	}
	/* The same on a non-blocking queue harvested without a wait argument. */
	ASSERT_LE(0, nb);
	ASSERT_EQ(0, ctl1(nb, KEVENT_CTL_ADD, &e));
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(0, kevent_get_events(nb, 1, 1, &out, NULL));
		ASSERT_EQ(0, fire(nb, 1));
		ASSERT_EQ(1, kevent_get_events(nb, 1, 1, &out, NULL));
	}
	close(nb);
	/* Made ready by another thread, which then says so. */
	ASSERT_EQ(0, pipe(f.go));
	ASSERT_EQ(0, pipe(f.done));
	ASSERT_EQ(0, pthread_create(&t, NULL, fire_rounds, &f));
	for (int i = 1; i <= 2000; i++) {
		ASSERT_EQ(0, harvest(self->fd, 0, 1, &out, 0));
		ASSERT_EQ(1, write(f.go[1], &c, 1));
		ASSERT_EQ(1, read(f.done[0], &c, 1));
		ASSERT_EQ(1, harvest(self->fd, 0, 1, &out, 0))
			TH_LOG("round %d: the event made ready before went unseen", i);
	}
	close(f.go[1]);
	ASSERT_EQ(0, pthread_join(t, &ret));
	EXPECT_EQ(NULL, ret);
	close(f.go[0]);
	close(f.done[0]);
	close(f.done[1]);
}

TEST_F(q, min_nr_is_honoured)
{
	struct ukevent out[4];
	uint64_t t0;

	for (int i = 1; i <= 3; i++) {
		struct ukevent e = uev(KEVENT_UNOTIFY, i, 0, 0);

		ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	}
	fire(self->fd, 1);
	fire(self->fd, 2);
	t0 = now_ns();
	/* Only two are ready: wait out the timeout, then return those. */
	ASSERT_EQ(2, harvest(self->fd, 3, 4, out, 100));
	EXPECT_LE(100000000ull, now_ns() - t0);
	fire(self->fd, 1);
	fire(self->fd, 2);
	fire(self->fd, 3);
	t0 = now_ns();
	ASSERT_EQ(3, harvest(self->fd, 3, 4, out, 5000));
	EXPECT_GT(1000000000ull, now_ns() - t0);
}

struct firer {
	int fd;
	uint64_t id;
	int delay_ms;
};

static void *fire_later(void *arg)
{
	struct firer *f = arg;

	usleep(f->delay_ms * 1000);
	if (f->id)
		fire(f->fd, f->id);
	else
		kevent_ctl(f->fd, KEVENT_CTL_READY, 0, NULL);
	return NULL;
}

TEST_F(q, blocking_wait_is_woken)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 1, 0, 0), out;
	struct firer f = { self->fd, 1, 50 };
	pthread_t t;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	ASSERT_EQ(0, pthread_create(&t, NULL, fire_later, &f));
	EXPECT_EQ(1, kevent_get_events(self->fd, 1, 1, &out, NULL));
	pthread_join(t, NULL);
}

TEST_F(q, ready_with_no_entries_wakes_a_waiter)
{
	struct ukevent out;
	struct firer f = { self->fd, 0, 50 };
	pthread_t t;
	uint64_t t0 = now_ns();

	ASSERT_EQ(0, pthread_create(&t, NULL, fire_later, &f));
	EXPECT_EQ(0, harvest(self->fd, 1, 1, &out, 5000));
	EXPECT_GT(2000000000ull, now_ns() - t0);
	pthread_join(t, NULL);
}

TEST_F(q, timeouts_relative_absolute_zero)
{
	struct ukevent out;
	struct kevent_wait_arg wa;
	uint64_t t0;

	t0 = now_ns();
	EXPECT_EQ(0, harvest(self->fd, 1, 1, &out, 0));
	EXPECT_GT(50000000ull, now_ns() - t0);

	t0 = now_ns();
	EXPECT_EQ(0, harvest(self->fd, 1, 1, &out, 60));
	EXPECT_LE(60000000ull, now_ns() - t0);
	EXPECT_GT(1000000000ull, now_ns() - t0);

	t0 = now_ns();
	wa = kevent_timeout_ns(0);
	wa.flags |= KEVENT_WAIT_ABSTIME;
	wa.timeout.tv_sec = (t0 + 60000000ull) / 1000000000ull;
	wa.timeout.tv_nsec = (t0 + 60000000ull) % 1000000000ull;
	EXPECT_EQ(0, kevent_get_events(self->fd, 1, 1, &out, &wa));
	EXPECT_LE(60000000ull, now_ns() - t0);
	EXPECT_GT(1000000000ull, now_ns() - t0);

	/* An absolute time in the past returns at once. */
	t0 = now_ns();
	wa.timeout.tv_sec = 0;
	wa.timeout.tv_nsec = 1;
	EXPECT_EQ(0, kevent_get_events(self->fd, 1, 1, &out, &wa));
	EXPECT_GT(50000000ull, now_ns() - t0);

	/* ABSTIME alone is meaningless. */
	wa.flags = KEVENT_WAIT_ABSTIME;
	EXPECT_EQ(-1, kevent_get_events(self->fd, 1, 1, &out, &wa));
	EXPECT_EQ(EINVAL, errno);
}

TEST(nonblocking_queue_never_sleeps)
{
	int fd = kevent_init(0, O_NONBLOCK);
	struct ukevent out;
	uint64_t t0 = now_ns();

	ASSERT_LE(0, fd);
	EXPECT_EQ(0, kevent_get_events(fd, 1, 1, &out, NULL));
	EXPECT_GT(50000000ull, now_ns() - t0);
	close(fd);
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

struct sender {
	int sig;
	pthread_t target;
};

/* Sends the signal to the process (which only the target does not block) after 50 ms. */
static void *send_later(void *arg)
{
	struct sender *s = arg;

	usleep(50000);
	if (s->target)
		pthread_kill(s->target, s->sig);
	else
		kill(getpid(), s->sig);
	return NULL;
}

/* Starts send_later() in a thread that blocks @sig, so only this thread can take it. */
static int start_sender(pthread_t *t, struct sender *s)
{
	sigset_t set, old;
	int ret;

	sigemptyset(&set);
	sigaddset(&set, s->sig);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	ret = pthread_create(t, NULL, send_later, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

TEST_F(q, signal_interrupts_a_wait_forever)
{
	struct ukevent out;
	struct sender s = { SIGUSR1, pthread_self() };
	pthread_t t;

	got_signal = 0;
	signal(SIGUSR1, on_signal);
	ASSERT_EQ(0, start_sender(&t, &s));
	EXPECT_EQ(-1, kevent_get_events(self->fd, 1, 1, &out, NULL));
	EXPECT_EQ(EINTR, errno);
	EXPECT_EQ(SIGUSR1, got_signal);
	pthread_join(t, NULL);
}

TEST_F(q, sigmask_blocks_during_the_wait_only)
{
	struct kevent_wait_arg wa = kevent_timeout_ns(200000000ull);
	struct ukevent out;
	struct sender s = { SIGUSR2, 0 };
	sigset_t block;
	pthread_t t;
	uint64_t t0;

	got_signal = 0;
	signal(SIGUSR2, on_signal);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	wa.sigmask = (uintptr_t)&block;
	wa.sigsetsize = 8;
	ASSERT_EQ(0, start_sender(&t, &s));
	t0 = now_ns();
	/* The signal arrives after 50 ms but the wait mask blocks it: a full timeout, no EINTR. */
	EXPECT_EQ(0, kevent_get_events(self->fd, 1, 1, &out, &wa));
	EXPECT_LE(200000000ull, now_ns() - t0);
	pthread_join(t, NULL);
	/* Delivered once the old mask is back. */
	for (int i = 0; i < 100 && !got_signal; i++)
		usleep(1000);
	EXPECT_EQ(SIGUSR2, got_signal);
}

TEST_F(q, queue_fd_polls_readable_when_events_are_ready)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 1, 0, 0), out;
	struct pollfd p = { .fd = self->fd, .events = POLLIN };
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN }, evo;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->fd, &ev));
	EXPECT_EQ(0, poll(&p, 1, 0));
	EXPECT_EQ(0, epoll_wait(ep, &evo, 1, 0));
	fire(self->fd, 1);
	EXPECT_EQ(1, poll(&p, 1, 0));
	EXPECT_EQ(POLLIN, p.revents & POLLIN);
	EXPECT_EQ(1, epoll_wait(ep, &evo, 1, 1000));
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 0));
	EXPECT_EQ(0, poll(&p, 1, 0));
	close(ep);
}

TEST_F(q, periodic_timer_counts_expirations)
{
	struct ukevent e = timer_uev(0, 10000000, 0), out;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	usleep(105000);
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 1000));
	EXPECT_EQ(KEVENT_TIMER, out.type);
	TH_LOG("%u expirations of a 10 ms timer in ~105 ms", out.ret_data[0]);
	EXPECT_LE(5, out.ret_data[0]);
	EXPECT_GE(15, out.ret_data[0]);
	/* It keeps firing. */
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 1000));
	EXPECT_LE(1, out.ret_data[0]);
}

TEST_F(q, oneshot_timer_fires_once)
{
	struct ukevent e = timer_uev(0, 20000000, KEVENT_REQ_ONESHOT), out;
	uint64_t t0 = now_ns();

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 2000));
	EXPECT_LE(20000000ull, now_ns() - t0);
	EXPECT_EQ(1, out.ret_data[0]);
	EXPECT_EQ(0, harvest(self->fd, 1, 1, &out, 100));
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_REMOVE, &e));
}

TEST_F(q, removed_timer_stops)
{
	struct ukevent e = timer_uev(0, 1000000, 0), out[2];

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	usleep(20000);
	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_REMOVE, &e));
	EXPECT_EQ(0, harvest(self->fd, 0, 2, out, 50));
}

TEST_F(q, dispatch_timer_waits_for_modify)
{
	struct ukevent e = timer_uev(0, 5000000, KEVENT_REQ_DISPATCH), out;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 1000));
	EXPECT_EQ(0, harvest(self->fd, 1, 1, &out, 50));
	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_MODIFY, &e));
	EXPECT_EQ(1, harvest(self->fd, 1, 1, &out, 1000));
}

/*
 * MODIFY re-arms a timer like timerfd_settime: its next expiry is a whole
 * period after the MODIFY. A 400 ms timer modified every 50 ms for 400 ms
 * never fires; left alone it fires 400 ms after the last MODIFY.
 */
TEST_F(q, modify_restarts_the_timer)
{
	struct ukevent e = timer_uev(0, 400000000, 0), out;
	uint64_t last;

	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	for (int i = 0; i < 8; i++) {
		usleep(50000);
		last = now_ns();
		ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_MODIFY, &e));
	}
	EXPECT_EQ(0, harvest(self->fd, 0, 1, &out, 0)) TH_LOG("fired although re-armed");
	ASSERT_EQ(1, harvest(self->fd, 1, 1, &out, 2000));
	EXPECT_LE(400000000ull, now_ns() - last);
	EXPECT_EQ(1, out.ret_data[0]);
}

TEST_F(q, timer_argument_checks)
{
	struct ukevent e = timer_uev(0, 0, 0);

	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	EXPECT_EQ(-EINVAL, (int)e.ret_data[1]);
	e = timer_uev(0, 1000000000, 0);
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	EXPECT_EQ(-EINVAL, (int)e.ret_data[1]);
	e = timer_uev(1, 0, 0);
	e.event = 0x2;
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	EXPECT_EQ(-EINVAL, (int)e.ret_data[1]);
	/* Periodicity is part of the timer: MODIFY cannot flip ONESHOT. */
	e = timer_uev(1, 0, 0);
	ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_ADD, &e));
	e.req_flags = KEVENT_REQ_ONESHOT;
	ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_MODIFY, &e));
	EXPECT_EQ(-EINVAL, (int)e.ret_data[1]);
}

TEST(close_while_timers_fire)
{
	for (int round = 0; round < 20; round++) {
		int fd = kevent_init(round % 2 ? 64 : 0, 0);
		struct ukevent b[100];

		ASSERT_LE(0, fd);
		for (int i = 0; i < 100; i++)
			b[i] = timer_uev(0, 100000 + i * 1000, i % 3 ? 0 : KEVENT_REQ_ONESHOT);
		ASSERT_EQ(0, kevent_ctl(fd, KEVENT_CTL_ADD, 100, b));
		usleep(2000 + round * 100);
		ASSERT_EQ(0, close(fd));
	}
}

TEST_F_TIMEOUT(q, ten_thousand_registrations_random_order, 120)
{
	enum { N = 10000 };
	static uint64_t ids[N];
	struct ukevent out[64];
	int n;

	srand(12345);
	for (int i = 0; i < N; i++)
		ids[i] = ((uint64_t)rand() << 32) | i;
	for (int i = 0; i < N; i += 100) {
		struct ukevent b[100];

		for (int j = 0; j < 100; j++)
			b[j] = uev(KEVENT_UNOTIFY, ids[i + j], 0, 0);
		ASSERT_EQ(0, kevent_ctl(self->fd, KEVENT_CTL_ADD, 100, b));
	}
	/* Shuffle, fire every third, remove in the shuffled order. */
	for (int i = N - 1; i > 0; i--) {
		int j = rand() % (i + 1);
		uint64_t t = ids[i];

		ids[i] = ids[j];
		ids[j] = t;
	}
	for (int i = 0; i < N; i += 3)
		ASSERT_EQ(0, fire(self->fd, ids[i]));
	for (int i = 0; i < N / 2; i++) {
		struct ukevent e = uev(KEVENT_UNOTIFY, ids[i], 0, 0);

		ASSERT_EQ(0, ctl1(self->fd, KEVENT_CTL_REMOVE, &e));
		ASSERT_EQ(1, ctl1(self->fd, KEVENT_CTL_REMOVE, &e));
	}
	/* Exactly the fired ones that were not removed are delivered. */
	int got = 0;

	while ((n = harvest(self->fd, 0, 64, out, 0)) > 0) {
		for (int k = 0; k < n; k++) {
			int found = -1;

			for (int i = N / 2; i < N; i++)
				if (ids[i] == out[k].id.raw_u64)
					found = i;
			ASSERT_LE(N / 2, found);
			ASSERT_EQ(0, found % 3);
		}
		got += n;
	}
	int want = 0;

	for (int i = N / 2; i < N; i++)
		want += i % 3 == 0;
	EXPECT_EQ(want, got);
}

TEST(per_user_limit)
{
	int a = kevent_init(0, 0), b = kevent_init(0, 0);
	struct ukevent e[60];

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_EQ(0, write_param("max_user_kevents", 100));
	for (int i = 0; i < 60; i++)
		e[i] = uev(KEVENT_UNOTIFY, i, 0, 0);
	ASSERT_EQ(0, kevent_ctl(a, KEVENT_CTL_ADD, 60, e));
	for (int i = 0; i < 60; i++)
		e[i] = uev(KEVENT_UNOTIFY, i, 0, 0);
	/* The limit spans queues: 40 more fit, 20 do not. */
	ASSERT_EQ(20, kevent_ctl(b, KEVENT_CTL_ADD, 60, e));
	for (int i = 0; i < 20; i++)
		EXPECT_EQ(-ENOSPC, (int)e[i].ret_data[1]);
	e[0] = uev(KEVENT_UNOTIFY, 0, 0, 0);
	ASSERT_EQ(0, ctl1(a, KEVENT_CTL_REMOVE, &e[0]));
	e[0] = uev(KEVENT_UNOTIFY, 1000, 0, 0);
	EXPECT_EQ(0, ctl1(b, KEVENT_CTL_ADD, &e[0]));
	/* Closing a queue gives its registrations back. */
	close(a);
	for (int i = 0; i < 59; i++)
		e[i] = uev(KEVENT_UNOTIFY, 2000 + i, 0, 0);
	EXPECT_EQ(0, kevent_ctl(b, KEVENT_CTL_ADD, 59, e));
	close(b);
	ASSERT_EQ(0, write_param("max_user_kevents", 1 << 20));
}

TEST_HARNESS_MAIN
