// SPDX-License-Identifier: GPL-2.0
/*
 * Module lifecycle: an open queue pins the module, unloading with no queue
 * open is clean, and system calls racing insmod/rmmod never crash.
 * Expects the module loaded on entry and leaves it loaded.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

/* Tests that may take longer than the default 30 s under emulation. */
FIXTURE(slow) {};
FIXTURE_SETUP(slow) {}
FIXTURE_TEARDOWN(slow) {}

TEST(rmmod_refused_while_queue_open)
{
	int fd;

	ASSERT_TRUE(kevent_module_loaded());
	fd = kevent_init(0, 0);
	ASSERT_LE(0, fd);
	errno = 0;
	EXPECT_EQ(-1, kevent_module_unload());
	EXPECT_EQ(EWOULDBLOCK, errno);
	EXPECT_TRUE(kevent_module_loaded());
	EXPECT_EQ(0, close(fd));
}

TEST(rmmod_refused_while_child_holds_queue)
{
	int fd, p[2];
	char c;
	pid_t pid;

	fd = kevent_init(0, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pipe(p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(p[1]);
		/* Keep the inherited queue fd until the parent says so. */
		_exit(read(p[0], &c, 1) == 0 ? 0 : 1);
	}
	close(p[0]);
	ASSERT_EQ(0, close(fd));
	errno = 0;
	EXPECT_EQ(-1, kevent_module_unload());
	EXPECT_EQ(EWOULDBLOCK, errno);
	close(p[1]);
	ASSERT_EQ(pid, waitpid(pid, NULL, 0));
}

/* A connected loopback TCP pair whose receiving end takes little: fds[0] sends. */
static int small_window_pair(int fds[2])
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), small = 4096;

	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) ||
	    bind(l, (void *)&sa, len) || listen(l, 1) || getsockname(l, (void *)&sa, &len))
		return -1;
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (fds[0] < 0 || connect(fds[0], (void *)&sa, len))
		return -1;
	fds[1] = accept(l, NULL, NULL);
	close(l);
	return fds[1] < 0 ? -1 : 0;
}

/*
 * A zero-copy send whose skbs the stack still holds keeps the module loaded
 * after its queue is closed (the stack will call the module's completion);
 * once the connection is torn down and the skbs are freed, it unloads.
 */
TEST(rmmod_refused_while_send_pages_in_flight)
{
	size_t len = 1 << 20;
	unsigned char *buf = malloc(len);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int q, s[2], i;

	ASSERT_NE(NULL, buf);
	memset(buf, 0x5a, len);
	ASSERT_EQ(0, small_window_pair(s));
	q = kevent_init(0, 0);
	ASSERT_LE(0, q);
	/* The peer reads nothing: most of the megabyte stays in the sender's queue. */
	ASSERT_LT(0, aio_send(q, s[0], buf, len, 0));
	usleep(200000);
	ASSERT_EQ(0, close(q));
	errno = 0;
	EXPECT_EQ(-1, kevent_module_unload());
	EXPECT_EQ(EWOULDBLOCK, errno);
	EXPECT_TRUE(kevent_module_loaded());
	/* An abortive close frees the sender's queued skbs. */
	ASSERT_EQ(0, setsockopt(s[0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	close(s[0]);
	close(s[1]);
	for (i = 0; i < 150 && kevent_module_unload(); i++)
		usleep(20000);
	EXPECT_GT(150, i) TH_LOG("the module stayed busy: %s", strerror(errno));
	EXPECT_FALSE(kevent_module_loaded());
	ASSERT_EQ(0, kevent_module_load());
	free(buf);
}

TEST_F_TIMEOUT(slow, insmod_rmmod_50_cycles, 120)
{
	for (int i = 0; i < 50; i++) {
		int fd = kevent_init(0, 0);

		ASSERT_LE(0, fd) TH_LOG("cycle %d", i);
		ASSERT_EQ(0, close(fd));
		ASSERT_EQ(0, kevent_module_unload()) TH_LOG("cycle %d: %s", i, strerror(errno));
		ASSERT_FALSE(kevent_module_loaded());
		errno = 0;
		ASSERT_EQ(-1, kevent_init(0, 0));
		ASSERT_EQ(ENOSYS, errno);
		ASSERT_EQ(0, kevent_module_load()) TH_LOG("cycle %d: %s", i, strerror(errno));
	}
	EXPECT_TRUE(kevent_module_loaded());
}

static atomic_int stop;

/*
 * Enters the module as often as possible without keeping a queue open:
 * every call must either reach the module (EBADF for a bad descriptor) or
 * find it gone (ENOSYS), never anything else.
 */
static void *syscall_loop(void *arg)
{
	long *bad = arg;
	struct ukevent ev;

	for (unsigned long i = 0; !atomic_load(&stop); i++) {
		errno = 0;
		if (kevent_ctl(-1, KEVENT_CTL_ADD, 1, &ev) != -1 ||
		    (errno != EBADF && errno != ENOSYS))
			(*bad)++;
		if (kevent_get_events(-1, 0, 1, &ev, NULL) != -1 ||
		    (errno != EBADF && errno != ENOSYS))
			(*bad)++;
		if (i % 64 == 0) {
			int fd = kevent_init(0, 0);

			if (fd >= 0)
				close(fd);
			else if (errno != ENOSYS)
				(*bad)++;
		}
	}
	return NULL;
}

TEST_F_TIMEOUT(slow, syscalls_racing_rmmod, 120)
{
	pthread_t th[2];
	long bad[2] = { 0, 0 };
	int unloaded = 0, busy = 0;

	atomic_store(&stop, 0);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, syscall_loop, &bad[i]));
	for (int i = 0; i < 200; i++) {
		if (kevent_module_unload() == 0) {
			unloaded++;
			usleep(500);
			ASSERT_EQ(0, kevent_module_load());
		} else {
			ASSERT_EQ(EWOULDBLOCK, errno);
			busy++;
		}
		usleep(500);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	EXPECT_EQ(0, bad[0] + bad[1]);
	EXPECT_TRUE(kevent_module_loaded());
	TH_LOG("%d unloads, %d refused while a call was in the module", unloaded, busy);
	EXPECT_LT(0, unloaded);
}

TEST_HARNESS_MAIN
