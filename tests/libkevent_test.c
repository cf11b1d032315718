// SPDX-License-Identifier: GPL-2.0
/*
 * libkevent (lib/libkevent.c, include/libkevent.h): queue setup and its
 * errors, batched registration with the entries that come back, ring
 * harvesting across wraps and beyond the ring's size, waits with a timeout
 * and a signal mask, every builder against a real event, the AIO wrappers'
 * -errno convention and the version calls.
 */
#include <pthread.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "kevent_test.h"
#include <libkevent.h>

/* The next batch entry; the test fails if the batch is full. */
#define ENTRY(q) ({								\
	struct ukevent *__e = kevent_queue_get_entry(q);			\
	ASSERT_NE(NULL, __e);							\
	__e;									\
})

/* Fires the user events [first, first + n) in batches through @q. */
static int fire_range(struct kevent_queue *q, uint64_t first, unsigned int n)
{
	while (n) {
		struct ukevent *e;
		int ret;

		while (n && (e = kevent_queue_get_entry(q))) {
			kevent_prep_fire(e, first++);
			n--;
		}
		ret = kevent_queue_submit(q, KEVENT_CTL_READY, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

static int add_users(struct kevent_queue *q, uint64_t first, unsigned int n, uint32_t flags)
{
	while (n) {
		struct ukevent *e;
		int ret;

		while (n && (e = kevent_queue_get_entry(q))) {
			kevent_prep_user(e, first, flags, first * 3);
			first++;
			n--;
		}
		ret = kevent_queue_submit(q, KEVENT_CTL_ADD, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

TEST(version)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d", LIBKEVENT_VERSION_MAJOR, LIBKEVENT_VERSION_MINOR);
	EXPECT_STREQ(want, kevent_version());
	EXPECT_EQ(LIBKEVENT_VERSION_MAJOR, kevent_version_major());
	EXPECT_EQ(LIBKEVENT_VERSION_MINOR, kevent_version_minor());
	EXPECT_TRUE(kevent_check_version(LIBKEVENT_VERSION_MAJOR, 0));
	EXPECT_FALSE(kevent_check_version(LIBKEVENT_VERSION_MAJOR + 1, 0));
	EXPECT_FALSE(kevent_check_version(LIBKEVENT_VERSION_MAJOR, LIBKEVENT_VERSION_MINOR + 1));
}

TEST(init_errors_are_negative_errno)
{
	struct kevent_queue q;

	errno = 0;
	EXPECT_EQ(-EINVAL, kevent_queue_init(&q, 3, 0));
	EXPECT_EQ(-1, q.fd);
	EXPECT_EQ(-EINVAL, kevent_queue_init(&q, 2 * KEVENT_MAX_RING_SIZE, 0));
	EXPECT_EQ(-EINVAL, kevent_queue_init_batch(&q, 8, 0, 0));
	EXPECT_EQ(-EINVAL, kevent_queue_init_batch(&q, 8, 0, KEVENT_MAX_CTL_BATCH + 1));
	EXPECT_EQ(-EBADF, kevent_queue_init_fd(&q, -1, true));
	EXPECT_EQ(0, errno);
}

TEST(init_maps_the_ring_and_exit_closes)
{
	struct kevent_queue q;
	struct ukevent *e;
	int fd;

	ASSERT_EQ(0, kevent_queue_init(&q, 64, O_CLOEXEC));
	fd = kevent_queue_fd(&q);
	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, q.ring);
	EXPECT_EQ(64, q.ring_size);
	EXPECT_EQ(64, q.ring->ring_size);
	EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(NULL, kevent_queue_peek(&q));
	kevent_queue_exit(&q);
	EXPECT_EQ(-1, fcntl(fd, F_GETFD));
	EXPECT_EQ(EBADF, errno);

	ASSERT_EQ(0, kevent_queue_init(&q, 0, 0));
	EXPECT_EQ(NULL, q.ring);
	EXPECT_EQ(-EINVAL, kevent_queue_wait(&q, &e, NULL));
	EXPECT_EQ(-EINVAL, kevent_queue_flush(&q));
	kevent_queue_exit(&q);
}

TEST(batch_fills_then_submits_in_one_call)
{
	struct kevent_queue q;
	struct ukevent *e, *back, one;
	unsigned int i, n = 0;

	ASSERT_EQ(0, kevent_queue_init_batch(&q, 16, 0, 4));
	for (i = 0; i < 4; i++) {
		e = kevent_queue_get_entry(&q);
		ASSERT_NE(NULL, e);
		kevent_prep_user(e, 100 + i, 0, 1000 + i);
	}
	EXPECT_EQ(NULL, kevent_queue_get_entry(&q));
	EXPECT_EQ(4, kevent_queue_batched(&q));
	EXPECT_EQ(0, kevent_queue_submit(&q, KEVENT_CTL_ADD, &back));
	EXPECT_EQ(0, kevent_queue_batched(&q));
	/* An empty batch is no call and no error. */
	EXPECT_EQ(0, kevent_queue_submit(&q, KEVENT_CTL_ADD, NULL));

	/* The second ADD of 101 fails alone and comes back first. */
	kevent_prep_user(ENTRY(&q), 200, 0, 0);
	kevent_prep_user(ENTRY(&q), 101, 0, 0);
	ASSERT_EQ(1, kevent_queue_submit(&q, KEVENT_CTL_ADD, &back));
	EXPECT_EQ(101, back[0].id.raw_u64);
	EXPECT_TRUE(back[0].ret_flags & KEVENT_RET_BROKEN);
	EXPECT_EQ(-EEXIST, (int)back[0].ret_data[1]);

	ASSERT_EQ(0, fire_range(&q, 100, 4));
	kevent_queue_for_each(&q, i, e) {
		EXPECT_EQ(100 + n, e->id.raw_u64);
		EXPECT_EQ(1000 + n, e->user);
		n++;
	}
	EXPECT_EQ(4, n);
	kevent_queue_advance(&q, n);
	EXPECT_EQ(NULL, kevent_queue_peek(&q));
	EXPECT_EQ(q.uidx, q.ring->ring_uidx);

	/* One entry at once: 0 taken quietly, 1 came back, -errno. */
	kevent_prep_key(&one, KEVENT_UNOTIFY, 100);
	EXPECT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_REMOVE, &one));
	kevent_prep_key(&one, KEVENT_UNOTIFY, 100);
	EXPECT_EQ(1, kevent_queue_ctl(&q, KEVENT_CTL_REMOVE, &one));
	EXPECT_EQ(-ENOENT, (int)one.ret_data[1]);
	EXPECT_EQ(-EINVAL, kevent_queue_ctl(&q, 77, &one));
	kevent_queue_exit(&q);
}

TEST(harvest_goes_past_the_ring_size_in_order)
{
	struct kevent_queue q;
	struct ukevent out[300];
	struct kevent_wait_arg wa;

	/* 300 ready events, 16 ring slots: the rest waits on the ready list. */
	ASSERT_EQ(0, kevent_queue_init(&q, 16, 0));
	ASSERT_EQ(0, add_users(&q, 0, 300, KEVENT_REQ_ONESHOT));
	ASSERT_EQ(0, fire_range(&q, 0, 300));
	kevent_wait_arg_init(&wa, 2000000000ull, NULL);
	ASSERT_EQ(300, kevent_queue_harvest(&q, out, 300, 300, &wa));
	for (int i = 0; i < 300; i++) {
		ASSERT_EQ(i, out[i].id.raw_u64);
		ASSERT_EQ(3 * i, out[i].user);
		if (i)
			ASSERT_LT(out[i - 1].seq, out[i].seq);
	}
	kevent_wait_arg_init(&wa, 10000000, NULL);
	EXPECT_EQ(-ETIME, kevent_queue_harvest(&q, out, 1, 1, &wa));
	EXPECT_EQ(-EINVAL, kevent_queue_harvest(&q, out, 2, 1, NULL));
	kevent_queue_exit(&q);
}

TEST(harvest_without_a_ring_copies)
{
	struct kevent_queue q;
	struct ukevent out[8];

	ASSERT_EQ(0, kevent_queue_init(&q, 0, 0));
	ASSERT_EQ(0, add_users(&q, 5, 8, KEVENT_REQ_ONESHOT));
	ASSERT_EQ(0, fire_range(&q, 5, 8));
	ASSERT_EQ(8, kevent_queue_harvest(&q, out, 8, 8, NULL));
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(5 + i, out[i].id.raw_u64);
	kevent_queue_exit(&q);
}

/* A tiny ring, consumed one event at a time, wraps hundreds of times. */
TEST(wait_and_advance_across_wraps)
{
	struct kevent_queue q;
	struct ukevent *e;

	ASSERT_EQ(0, kevent_queue_init(&q, 4, 0));
	ASSERT_EQ(0, add_users(&q, 1, 1, 0));
	for (unsigned int i = 0; i < 2000; i++) {
		ASSERT_EQ(0, fire_range(&q, 1, 1));
		ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, 1000000000ull, NULL));
		ASSERT_EQ(1, e->id.raw_u64);
		kevent_queue_advance(&q, 1);
	}
	/* The kernel learns the last index at the next commit. */
	EXPECT_EQ(0, kevent_queue_flush(&q));
	EXPECT_EQ(2000 / 4, q.ring->ring_over);
	EXPECT_EQ(NULL, kevent_queue_peek(&q));
	kevent_queue_exit(&q);
}

TEST(wait_times_out)
{
	struct kevent_queue q;
	struct ukevent *e = (void *)1;
	uint64_t t0;

	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	t0 = now_ns();
	EXPECT_EQ(-ETIME, kevent_queue_wait_timeout(&q, &e, 30000000, NULL));
	EXPECT_LE(30000000, now_ns() - t0);
	kevent_queue_exit(&q);
}

struct firer {
	struct kevent_queue *q;
	int delay_ms;
};

static void *fire_later(void *arg)
{
	struct firer *f = arg;
	struct ukevent e;

	usleep(f->delay_ms * 1000);
	kevent_prep_fire(&e, 42);
	kevent_queue_ctl(f->q, KEVENT_CTL_READY, &e);
	return NULL;
}

TEST(wait_sleeps_until_another_thread_fires)
{
	struct kevent_queue q;
	struct firer f = { &q, 50 };
	struct ukevent *e;
	pthread_t t;
	uint64_t t0;

	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	ASSERT_EQ(0, add_users(&q, 42, 1, 0));
	t0 = now_ns();
	ASSERT_EQ(0, pthread_create(&t, NULL, fire_later, &f));
	ASSERT_EQ(0, kevent_queue_wait(&q, &e, NULL));
	EXPECT_LE(40000000, now_ns() - t0);
	EXPECT_EQ(42, e->id.raw_u64);
	EXPECT_EQ(126, e->user);
	kevent_queue_advance(&q, 1);
	pthread_join(t, NULL);
	kevent_queue_exit(&q);
}

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	got_usr1 = sig;
}

static void *kill_later(void *arg)
{
	usleep(50000);
	kill(getpid(), SIGUSR1);
	return arg;
}

/* SIGUSR1 is blocked except during the wait, where the mask lets it in. */
TEST(wait_with_a_signal_mask_is_interrupted)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct kevent_queue q;
	sigset_t block, during;
	struct ukevent *e;
	pthread_t t;

	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, &block, NULL));
	pthread_sigmask(SIG_BLOCK, NULL, &during);
	sigdelset(&during, SIGUSR1);
	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	ASSERT_EQ(0, pthread_create(&t, NULL, kill_later, NULL));
	EXPECT_EQ(-EINTR, kevent_queue_wait_timeout(&q, &e, 5000000000ull, &during));
	EXPECT_EQ(SIGUSR1, got_usr1);
	pthread_join(t, NULL);
	pthread_sigmask(SIG_UNBLOCK, &block, NULL);
	kevent_queue_exit(&q);
}

/* A second kevent_queue on the same descriptor consumes the same ring. */
TEST(init_fd_shares_the_ring_and_leaves_the_fd_open)
{
	struct kevent_queue q, view;
	struct ukevent *e;

	ASSERT_EQ(0, kevent_queue_init(&q, 32, 0));
	ASSERT_EQ(0, add_users(&q, 7, 1, 0));
	ASSERT_EQ(0, fire_range(&q, 7, 1));
	ASSERT_EQ(0, kevent_queue_init_fd(&view, q.fd, true));
	EXPECT_EQ(32, view.ring_size);
	e = kevent_queue_peek(&view);
	ASSERT_NE(NULL, e);
	EXPECT_EQ(7, e->id.raw_u64);
	kevent_queue_advance(&view, 1);
	kevent_queue_exit(&view);
	EXPECT_EQ(0, fcntl(q.fd, F_GETFD) & ~FD_CLOEXEC);
	kevent_queue_exit(&q);
}

/*
 * fork() does not copy the ring mapping: a child's kevent_queue_exit() must
 * leave whatever the child has at that address alone (here a page of its
 * own, which would be gone, and reading it fatal, if exit unmapped it).
 */
TEST(exit_in_a_child_leaves_its_memory_alone)
{
	struct kevent_queue q;
	int status;
	pid_t pid;

	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		volatile char *p = mmap(q.ring, 4096, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (p != (void *)q.ring)
			_exit(2);	/* the address was not free: the ring was inherited */
		p[0] = 'c';
		kevent_queue_exit(&q);
		_exit(p[0] == 'c' ? 0 : 3);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status)) TH_LOG("the child died of signal %d", WTERMSIG(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* The parent's ring is intact. */
	ASSERT_EQ(0, add_users(&q, 3, 1, 0));
	ASSERT_EQ(0, fire_range(&q, 3, 1));
	EXPECT_NE(NULL, kevent_queue_peek(&q));
	kevent_queue_exit(&q);
}

/* A consumer that never sleeps gets the overflow in with flush. */
TEST(flush_moves_waiting_events_in)
{
	struct kevent_queue q;
	unsigned int seen = 0;

	ASSERT_EQ(0, kevent_queue_init(&q, 4, 0));
	ASSERT_EQ(0, add_users(&q, 0, 10, KEVENT_REQ_ONESHOT));
	ASSERT_EQ(0, fire_range(&q, 0, 10));
	for (int round = 0; round < 10 && seen < 10; round++) {
		unsigned int n = kevent_queue_ready(&q);

		seen += n;
		kevent_queue_advance(&q, n);
		ASSERT_LE(0, kevent_queue_flush(&q));
	}
	EXPECT_EQ(10, seen);
	kevent_queue_exit(&q);
}

/* Every builder registers something that then fires as built. */
TEST(builders_make_working_registrations)
{
	struct kevent_queue q;
	struct ukevent out[4], *back;
	struct sigevent sev;
	struct itimerspec its = { .it_value = { .tv_nsec = 5000000 } };
	timer_t timer;
	int sv[2];

	ASSERT_EQ(0, kevent_queue_init(&q, 16, 0));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));

	kevent_prep_socket(ENTRY(&q), sv[0], KEVENT_SOCKET_RECV, KEVENT_REQ_ET, 1);
	kevent_prep_poll(ENTRY(&q), sv[1], POLLIN, KEVENT_REQ_ET, 2);
	kevent_prep_timer(ENTRY(&q), 5000000, KEVENT_REQ_ONESHOT, 3);
	kevent_prep_signal(ENTRY(&q), SIGUSR2, true, 0, 4);
	ASSERT_EQ(0, kevent_queue_submit(&q, KEVENT_CTL_ADD, &back));

	ASSERT_EQ(1, write(sv[1], "x", 1));
	ASSERT_EQ(1, kevent_queue_harvest(&q, out, 1, 1, NULL));
	EXPECT_EQ(KEVENT_SOCKET, out[0].type);
	EXPECT_EQ(1, out[0].user);
	ASSERT_EQ(1, kevent_queue_harvest(&q, out, 1, 1, NULL));
	EXPECT_EQ(KEVENT_TIMER, out[0].type);
	EXPECT_EQ(3, out[0].user);

	ASSERT_EQ(1, write(sv[0], "y", 1));
	ASSERT_EQ(1, kevent_queue_harvest(&q, out, 1, 1, NULL));
	EXPECT_EQ(KEVENT_POLL, out[0].type);
	EXPECT_EQ(2, out[0].user);
	EXPECT_TRUE(out[0].ret_data[0] & POLLIN);

	/* NOMASK: the queue takes it; the default action (exit) never runs. */
	ASSERT_EQ(0, kill(getpid(), SIGUSR2));
	ASSERT_EQ(1, kevent_queue_harvest(&q, out, 1, 1, NULL));
	EXPECT_EQ(KEVENT_SIGNAL, out[0].type);
	EXPECT_EQ(4, out[0].user);
	EXPECT_EQ(getpid(), (pid_t)out[0].ret_data[1]);

	kevent_prep_sigevent(&sev, &q, 5);
	ASSERT_EQ(0, timer_create(CLOCK_MONOTONIC, &sev, &timer));
	ASSERT_EQ(0, timer_settime(timer, 0, &its, NULL));
	ASSERT_EQ(1, kevent_queue_harvest(&q, out, 1, 1, NULL));
	EXPECT_EQ(KEVENT_POSIX_TIMER, out[0].type);
	EXPECT_EQ(5, out[0].user);
	timer_delete(timer);
	close(sv[0]);
	close(sv[1]);
	kevent_queue_exit(&q);
}

/* A real send (UDP over loopback): its completion carries the request id. */
static void udp_send_completes(struct __test_metadata *_metadata, struct kevent_queue *q)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
	socklen_t len = sizeof(sin);
	struct ukevent out;
	char buf[64];
	int64_t id;

	ASSERT_EQ(0, bind(rx, (void *)&sin, len));
	ASSERT_EQ(0, getsockname(rx, (void *)&sin, &len));
	ASSERT_EQ(0, connect(tx, (void *)&sin, len));
	memset(buf, 'k', sizeof(buf));
	id = kevent_queue_aio_send(q, tx, buf, sizeof(buf), 0);
	ASSERT_LE(0, id);
	ASSERT_EQ(1, kevent_queue_harvest(q, &out, 1, 1, NULL));
	EXPECT_EQ(KEVENT_NAIO, out.type);
	EXPECT_EQ((uint64_t)id, out.id.raw_u64);
	EXPECT_EQ(sizeof(buf), out.ret_data[0]);
	EXPECT_EQ(0, out.ret_data[1]);
	EXPECT_EQ(sizeof(buf), recv(rx, buf, sizeof(buf), 0));
	close(rx);
	close(tx);
}

/* The AIO wrappers: request ids, or -errno with errno untouched. */
TEST(aio_wrappers_return_negative_errno)
{
	struct kevent_queue q;
	char buf[64];
	int fd = open("/proc/self/stat", O_RDONLY), p[2];

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	errno = 0;
	EXPECT_EQ(-ENOTSOCK, kevent_queue_aio_send(&q, fd, buf, sizeof(buf), 0));
	EXPECT_EQ(-ENOTSOCK, kevent_queue_aio_recv(&q, fd, buf, sizeof(buf), 0));
	EXPECT_EQ(-ENOTSOCK, kevent_queue_aio_sendfile(&q, fd, fd, 0, 10));
	/* Not open for writing; a pipe has no file position. */
	EXPECT_EQ(-EBADF, kevent_queue_aio_write(&q, fd, buf, sizeof(buf), 0));
	EXPECT_EQ(0, pipe(p));
	EXPECT_EQ(-ESPIPE, kevent_queue_aio_read(&q, p[0], buf, sizeof(buf), 0));
	close(p[0]);
	close(p[1]);
	EXPECT_EQ(0, errno);

	udp_send_completes(_metadata, &q);
	close(fd);
	kevent_queue_exit(&q);
}

TEST_HARNESS_MAIN
