// SPDX-License-Identifier: GPL-2.0
/*
 * kevent_init() and the queue file descriptor, plus the argument checks of
 * every other system call.
 */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

/* Tests that may take longer than the default 30 s under emulation. */
FIXTURE(slow) {};
FIXTURE_SETUP(slow) {}
FIXTURE_TEARDOWN(slow) {}

TEST(init_returns_anon_inode_fd)
{
	char path[64], target[64];
	int fd = kevent_init(0, 0);
	ssize_t n;

	ASSERT_LE(0, fd);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	ASSERT_LT(0, n);
	target[n] = 0;
	EXPECT_STREQ("anon_inode:[kevent]", target);
	EXPECT_EQ(0, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(0, fcntl(fd, F_GETFL) & O_NONBLOCK);
	EXPECT_EQ(0, close(fd));
	errno = 0;
	EXPECT_EQ(-1, close(fd));
	EXPECT_EQ(EBADF, errno);
}

TEST(init_flags)
{
	int fd = kevent_init(0, O_CLOEXEC | O_NONBLOCK);

	ASSERT_LE(0, fd);
	EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(O_NONBLOCK, fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);
}

TEST(init_rejects_unknown_flags)
{
	unsigned int bad[] = { 1, O_RDWR, O_APPEND, 0x80000000u };

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		EXPECT_EQ(-1, kevent_init(0, bad[i])) TH_LOG("flags %#x", bad[i]);
		EXPECT_EQ(EINVAL, errno);
	}
}

TEST(init_ring_sizes)
{
	unsigned int good[] = { 0, 1, 2, 64, KEVENT_MAX_RING_SIZE };
	unsigned int bad[] = { 3, 100, KEVENT_MAX_RING_SIZE + 1, KEVENT_MAX_RING_SIZE * 2,
			       0xffffffffu };

	for (unsigned int i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int fd = kevent_init(good[i], 0);

		EXPECT_LE(0, fd) TH_LOG("ring_size %u: %s", good[i], strerror(errno));
		close(fd);
	}
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		EXPECT_EQ(-1, kevent_init(bad[i], 0)) TH_LOG("ring_size %u", bad[i]);
		EXPECT_EQ(EINVAL, errno);
	}
}

TEST(queue_fd_polls_not_ready)
{
	int fd = kevent_init(0, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };

	ASSERT_LE(0, fd);
	EXPECT_EQ(0, poll(&p, 1, 10));
	EXPECT_EQ(0, p.revents);
	close(fd);
}

TEST(queue_fd_nests_in_epoll)
{
	int fd = kevent_init(0, 0), ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN }, out;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, ep);
	EXPECT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 10));
	/* Closing the queue first must remove it from the epoll set cleanly. */
	EXPECT_EQ(0, close(fd));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 0));
	close(ep);
}

TEST(queue_fd_survives_fork)
{
	int fd = kevent_init(0, 0), status;
	pid_t pid;

	ASSERT_LE(0, fd);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		/* The child shares the queue: it is still a queue fd there. */
		errno = 0;
		if (kevent_ctl(fd, 99, 0, NULL) != -1 || errno != EINVAL)
			_exit(1);
		if (poll(&p, 1, 0) != 0)
			_exit(2);
		_exit(close(fd) == 0 ? 0 : 3);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	errno = 0;
	EXPECT_EQ(-1, kevent_ctl(fd, 99, 0, NULL));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, close(fd));
}

TEST(queue_has_no_read_write)
{
	int fd = kevent_init(0, 0);
	char buf[8];

	ASSERT_LE(0, fd);
	errno = 0;
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, write(fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

/* Opens and closes 10 x 1000 queues. */
static int ten_thousand_queues(void)
{
	for (int round = 0; round < 10; round++) {
		int fds[1000];

		for (int i = 0; i < 1000; i++) {
			fds[i] = kevent_init(0, 0);
			if (fds[i] < 0)
				return -1;
		}
		for (int i = 0; i < 1000; i++)
			if (close(fds[i]))
				return -1;
	}
	usleep(200 * 1000);
	return 0;
}

TEST_F_TIMEOUT(slow, thousand_queues_do_not_leak, 120)
{
	long before, after;

	/* KASAN's quarantine keeps freed objects: there kmemleak checks for leaks. */
	if (access("/sys/kernel/debug/kmemleak", F_OK) == 0)
		SKIP(return, "debug kernel: leaks are checked by kmemleak at the end of the run");
	/*
	 * Warm up with the same workload, so that the caches (per CPU, on every
	 * CPU the test ran on) have grown to what it needs: the measurement then
	 * sees only leaks.
	 */
	ASSERT_EQ(0, ten_thousand_queues());
	before = meminfo_kb("Slab");
	ASSERT_EQ(0, ten_thousand_queues());
	after = meminfo_kb("Slab");
	TH_LOG("Slab: %ld kB before, %ld kB after 10000 queues", before, after);
	ASSERT_LT(0, before);
	/* One leaked object of 64 bytes per queue would be 625 kB. */
	EXPECT_GT(before + 400, after);
}

/* Each call on a descriptor that is not a queue, or not open. */
FIXTURE(not_a_queue) {
	int fds[3];
};

FIXTURE_SETUP(not_a_queue)
{
	int p[2];

	ASSERT_EQ(0, pipe(p));
	close(p[1]);
	self->fds[0] = -1;	/* never valid */
	self->fds[1] = 1000;	/* not open */
	self->fds[2] = p[0];	/* open, not a queue */
}

FIXTURE_TEARDOWN(not_a_queue)
{
	close(self->fds[2]);
}

#define EXPECT_ERRNO(want, call)				\
	do {							\
		errno = 0;					\
		EXPECT_EQ(-1, (long)(call));			\
		EXPECT_EQ(want, errno) TH_LOG("%s", #call);	\
	} while (0)

TEST_F(not_a_queue, every_call)
{
	struct ukevent ev = { 0 };

	for (int i = 0; i < 3; i++) {
		int fd = self->fds[i], want = i < 2 ? EBADF : EINVAL;

		EXPECT_ERRNO(want, kevent_ctl(fd, KEVENT_CTL_ADD, 1, &ev));
		EXPECT_ERRNO(want, kevent_get_events(fd, 0, 1, &ev, NULL));
		EXPECT_ERRNO(want, kevent_wait(fd, 1, 0, NULL));
		EXPECT_ERRNO(want, kevent_commit(fd, 0, 0));
		EXPECT_ERRNO(want, aio_send(fd, 0, &ev, 1, 0));
		EXPECT_ERRNO(want, aio_recv(fd, 0, &ev, 1, 0));
		EXPECT_ERRNO(want, aio_sendfile(fd, 0, 0, NULL, 1));
		EXPECT_ERRNO(want, aio_read(fd, 0, &ev, 1, NULL));
	}
}

FIXTURE(queue) {
	int fd;
	int ring_fd;
};

FIXTURE_SETUP(queue)
{
	self->fd = kevent_init(0, 0);
	ASSERT_LE(0, self->fd);
	self->ring_fd = kevent_init(64, 0);
	ASSERT_LE(0, self->ring_fd);
}

FIXTURE_TEARDOWN(queue)
{
	close(self->fd);
	close(self->ring_fd);
}

TEST_F(queue, ctl_errors)
{
	struct ukevent ev = { 0 };

	EXPECT_ERRNO(EINVAL, kevent_ctl(self->fd, 4, 1, &ev));
	EXPECT_ERRNO(EINVAL, kevent_ctl(self->fd, 0xffffffffu, 1, &ev));
	EXPECT_ERRNO(EINVAL, kevent_ctl(self->fd, KEVENT_CTL_ADD, KEVENT_MAX_CTL_BATCH + 1, &ev));
	EXPECT_ERRNO(EFAULT, kevent_ctl(self->fd, KEVENT_CTL_ADD, 1, NULL));
}

TEST_F(queue, get_events_errors)
{
	struct ukevent ev;
	struct kevent_wait_arg wa = kevent_timeout_ns(0);
	sigset_t set;

	EXPECT_ERRNO(EINVAL, kevent_get_events(self->fd, 0, 0, &ev, &wa));
	EXPECT_ERRNO(EINVAL, kevent_get_events(self->fd, 2, 1, &ev, &wa));
	EXPECT_ERRNO(EINVAL, kevent_get_events(self->fd, 0, 0x80000000u, &ev, &wa));
	EXPECT_ERRNO(EFAULT, kevent_get_events(self->fd, 0, 1, NULL, &wa));
	/* The wait argument: unknown flags, bad timeouts, bad pointers. */
	wa.flags = 0x4;
	EXPECT_ERRNO(EINVAL, kevent_get_events(self->fd, 0, 1, &ev, &wa));
	wa = kevent_timeout_ns(0);
	wa.timeout.tv_nsec = 1000000000;
	EXPECT_ERRNO(EINVAL, kevent_get_events(self->fd, 0, 1, &ev, &wa));
	wa.timeout.tv_nsec = -1;
	EXPECT_ERRNO(EINVAL, kevent_get_events(self->fd, 0, 1, &ev, &wa));
	wa = kevent_timeout_ns(0);
	wa.timeout.tv_sec = -1;
	EXPECT_ERRNO(EINVAL, kevent_get_events(self->fd, 0, 1, &ev, &wa));
	EXPECT_ERRNO(EFAULT, kevent_get_events(self->fd, 0, 1, &ev, (void *)8));
	wa = kevent_timeout_ns(0);
	sigemptyset(&set);
	wa.sigmask = (uintptr_t)&set;
	wa.sigsetsize = 4;
	EXPECT_ERRNO(EINVAL, kevent_get_events(self->fd, 0, 1, &ev, &wa));
	wa.sigsetsize = 8;
	wa.sigmask = 8;
	EXPECT_ERRNO(EFAULT, kevent_get_events(self->fd, 0, 1, &ev, &wa));
}

TEST_F(queue, wait_and_commit_need_a_ring)
{
	EXPECT_ERRNO(EINVAL, kevent_wait(self->fd, 1, 0, NULL));
	EXPECT_ERRNO(EINVAL, kevent_commit(self->fd, 0, 0));
}

TEST_F(queue, wait_errors)
{
	struct kevent_wait_arg wa = kevent_timeout_ns(0);

	wa.flags = 0x80;
	EXPECT_ERRNO(EINVAL, kevent_wait(self->ring_fd, 1, 0, &wa));
	EXPECT_ERRNO(EFAULT, kevent_wait(self->ring_fd, 1, 0, (void *)8));
}

TEST_F(queue, aio_needs_open_fds)
{
	char buf[8];
	uint64_t off = 0;

	EXPECT_ERRNO(EBADF, aio_send(self->fd, -1, buf, sizeof(buf), 0));
	EXPECT_ERRNO(EBADF, aio_recv(self->fd, 1000, buf, sizeof(buf), 0));
	EXPECT_ERRNO(EBADF, aio_sendfile(self->fd, -1, 0, &off, 1));
	EXPECT_ERRNO(EBADF, aio_read(self->fd, -1, buf, sizeof(buf), NULL));
	EXPECT_ERRNO(EBADF, aio_write(self->fd, 1000, buf, sizeof(buf), &off));
}

TEST_HARNESS_MAIN
