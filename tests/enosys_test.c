// SPDX-License-Identifier: GPL-2.0
/*
 * Runs before the module is loaded: every kevent system call must behave as
 * an unimplemented one, and SIGEV_KEVENT timers must be refused.
 */
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

TEST(module_is_not_loaded)
{
	ASSERT_FALSE(kevent_module_loaded());
}

#define ENOSYS_TEST(name, call)				\
	TEST(name##_enosys)				\
	{						\
		errno = 0;				\
		EXPECT_EQ(-1, (long)(call));		\
		EXPECT_EQ(ENOSYS, errno);		\
	}

ENOSYS_TEST(kevent_init, kevent_init(0, 0))
ENOSYS_TEST(kevent_ctl, kevent_ctl(0, KEVENT_CTL_ADD, 0, NULL))
ENOSYS_TEST(kevent_get_events, kevent_get_events(0, 0, 1, NULL, NULL))
ENOSYS_TEST(kevent_wait, kevent_wait(0, 1, 0, NULL))
ENOSYS_TEST(kevent_commit, kevent_commit(0, 0, 0))
ENOSYS_TEST(aio_send, aio_send(0, 0, NULL, 0, 0))
ENOSYS_TEST(aio_recv, aio_recv(0, 0, NULL, 0, 0))
ENOSYS_TEST(aio_sendfile, aio_sendfile(0, 0, 0, NULL, 0))
ENOSYS_TEST(aio_read, aio_read(0, 0, NULL, 0, NULL))
ENOSYS_TEST(aio_write, aio_write(0, 0, NULL, 0, NULL))

TEST(posix_timer_sigev_kevent_refused)
{
	struct sigevent sev;
	timer_t t;

	kevent_sigevent(&sev, 0);
	errno = 0;
	EXPECT_EQ(-1, timer_create(CLOCK_MONOTONIC, &sev, &t));
	EXPECT_EQ(EOPNOTSUPP, errno);
}

TEST(posix_timers_still_work)
{
	struct sigevent sev = { .sigev_notify = SIGEV_NONE };
	timer_t t;

	ASSERT_EQ(0, timer_create(CLOCK_MONOTONIC, &sev, &t));
	EXPECT_EQ(0, timer_delete(t));
}

TEST_HARNESS_MAIN
