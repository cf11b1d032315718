// SPDX-License-Identifier: GPL-2.0
/*
 * kevent demo: opens a queue and reports, call by call, what this build of
 * kevent can do.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include <kevent_syscalls.h>

static void report(const char *what, long ret)
{
	if (ret >= 0)
		printf("  %-44s -> %ld\n", what, ret);
	else if (errno == EOPNOTSUPP)
		printf("  %-44s -> not implemented yet\n", what);
	else
		printf("  %-44s -> error: %s\n", what, strerror(errno));
}

int main(void)
{
	struct ukevent ev = { .type = KEVENT_UNOTIFY, .event = KEVENT_UNOTIFY_FIRED };
	struct kevent_wait_arg wa = kevent_timeout_ns(1000000);
	struct utsname u;
	struct pollfd p;
	int fd, rfd;

	uname(&u);
	printf("kevent demo on %s %s (%s)\n", u.sysname, u.release, u.machine);

	fd = kevent_init(0, O_CLOEXEC);
	if (fd < 0) {
		printf("  kevent_init failed: %s (is the module loaded?)\n", strerror(errno));
		return 1;
	}
	report("kevent_init(0, O_CLOEXEC): queue fd", fd);
	rfd = kevent_init(64, 0);
	report("kevent_init(64, 0): queue fd with a 64-entry ring", rfd);

	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	report("poll(queue fd): ready descriptors", poll(&p, 1, 0));

	errno = 0;
	report("kevent_ctl(ADD a user event)", kevent_ctl(fd, KEVENT_CTL_ADD, 1, &ev));
	report("kevent_get_events(timeout 1 ms)", kevent_get_events(fd, 1, 1, &ev, &wa));
	report("kevent_wait(ring, timeout 1 ms)", kevent_wait(rfd, 1, 0, &wa));
	report("kevent_commit(ring, 0, 0)", kevent_commit(rfd, 0, 0));

	close(rfd);
	close(fd);
	printf("kevent demo: done\n");
	return 0;
}
