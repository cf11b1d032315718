/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Thin system call wrappers for kevent, for user programs.
 *
 *	#include <kevent_syscalls.h>	(add -I<kevent>/include and the
 *					 patched kernel's usr/include)
 *
 * Each returns what the system call returns: a value >= 0, or -1 with errno
 * set. Structures and constants come from <linux/kevent.h>.
 */
#ifndef KEVENT_SYSCALLS_H
#define KEVENT_SYSCALLS_H

#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kevent.h>

_Static_assert(sizeof(struct ukevent) == 48, "struct ukevent is 48 bytes");
_Static_assert(sizeof(struct kevent_ring) == KEVENT_RING_HEADER_SIZE, "ring header");
_Static_assert(sizeof(struct kevent_wait_arg) == 32, "struct kevent_wait_arg");

static inline int kevent_init(unsigned int ring_size, unsigned int flags)
{
	return syscall(__NR_kevent_init, ring_size, flags);
}

static inline int kevent_ctl(int fd, unsigned int cmd, unsigned int num,
			     struct ukevent *arg)
{
	return syscall(__NR_kevent_ctl, fd, cmd, num, arg);
}

static inline int kevent_get_events(int fd, unsigned int min_nr,
				    unsigned int max_nr, struct ukevent *buf,
				    const struct kevent_wait_arg *arg)
{
	return syscall(__NR_kevent_get_events, fd, min_nr, max_nr, buf, arg);
}

static inline int kevent_wait(int fd, unsigned int num, unsigned int old_uidx,
			      const struct kevent_wait_arg *arg)
{
	return syscall(__NR_kevent_wait, fd, num, old_uidx, arg);
}

static inline int kevent_commit(int fd, unsigned int new_uidx,
				unsigned int over)
{
	return syscall(__NR_kevent_commit, fd, new_uidx, over);
}

static inline long aio_send(int kfd, int sock, const void *buf, size_t len,
			    unsigned int flags)
{
	return syscall(__NR_aio_send, kfd, sock, buf, len, flags);
}

static inline long aio_recv(int kfd, int sock, void *buf, size_t len,
			    unsigned int flags)
{
	return syscall(__NR_aio_recv, kfd, sock, buf, len, flags);
}

static inline long aio_sendfile(int kfd, int sock, int in_fd,
				const uint64_t *offset, size_t count)
{
	return syscall(__NR_aio_sendfile, kfd, sock, in_fd, offset, count);
}

static inline long aio_read(int kfd, int fd, void *buf, size_t len,
			    const uint64_t *offset)
{
	return syscall(__NR_aio_read, kfd, fd, buf, len, offset);
}

static inline long aio_write(int kfd, int fd, const void *buf, size_t len,
			     const uint64_t *offset)
{
	return syscall(__NR_aio_write, kfd, fd, buf, len, offset);
}

/* A relative timeout of @ns nanoseconds. */
static inline struct kevent_wait_arg kevent_timeout_ns(uint64_t ns)
{
	struct kevent_wait_arg a = {
		.timeout = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 },
		.flags = KEVENT_WAIT_TIMEOUT,
	};
	return a;
}

/*
 * Fill @sev for timer_create() so that expirations arrive on queue @kfd as
 * KEVENT_POSIX_TIMER events. The queue fd travels in the field the kernel
 * calls sigev_notify_thread_id (glibc: _sigev_un._tid).
 */
static inline void kevent_sigevent(struct sigevent *sev, int kfd)
{
	memset(sev, 0, sizeof(*sev));
	sev->sigev_notify = SIGEV_KEVENT;
	sev->_sigev_un._tid = kfd;
}

#endif /* KEVENT_SYSCALLS_H */
