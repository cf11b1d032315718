// SPDX-License-Identifier: GPL-2.0
/*
 * Module lifecycle: an open queue pins the module, unloading with no queue
 * open is clean, and system calls racing insmod/rmmod never crash.
 * Expects the module loaded on entry and leaves it loaded.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

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
