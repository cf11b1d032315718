// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * libkevent: queue setup, batched registration, harvesting and the AIO
 * calls. The hot paths of the ring (peek, advance) are inline in
 * <libkevent.h>; this file holds what needs a system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "libkevent.h"

/* struct kevent_queue::flags. */
#define LIBKEVENT_Q_OWN_FD	0x1	/* kevent_queue_exit() closes fd */

#define LIBKEVENT_STR2(x)	#x
#define LIBKEVENT_STR(x)	LIBKEVENT_STR2(x)

/*
 * The result of a raw system call as -errno, errno itself left as it was
 * before the call (the library's convention, like liburing's).
 */
#define neg_errno(call) ({					\
	int __saved = errno;					\
	long __ret = (call);					\
								\
	if (__ret < 0) {					\
		__ret = -errno;					\
		errno = __saved;				\
	}							\
	__ret;							\
})

/* Maps the ring of @q->fd if it has one (ring_size read from the header). */
static int map_ring(struct kevent_queue *q, unsigned int entries)
{
	long page = sysconf(_SC_PAGESIZE);
	struct kevent_ring *ring;
	int saved = errno, ret;
	size_t bytes;

	if (!entries) {
		/* Learn the size from the header: map one page first. */
		ring = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, q->fd, 0);
		if (ring == MAP_FAILED) {
			/* ENODEV: a queue without a ring. */
			ret = errno == ENODEV ? 0 : -errno;
			errno = saved;
			return ret;
		}
		entries = ring->ring_size;
		munmap(ring, (size_t)page);
		if (!entries)
			return 0;
	}
	bytes = (KEVENT_RING_BYTES(entries) + (size_t)page - 1) & ~((size_t)page - 1);
	ring = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, q->fd, 0);
	if (ring == MAP_FAILED) {
		ret = -errno;
		errno = saved;
		return ret;
	}
	q->ring = ring;
	q->pid = getpid();
	q->ring_bytes = bytes;
	q->ring_size = entries;
	q->uidx = __atomic_load_n(&ring->ring_uidx, __ATOMIC_ACQUIRE);
	return 0;
}

static int alloc_batch(struct kevent_queue *q, unsigned int entries)
{
	int saved = errno;

	if (!entries || entries > KEVENT_MAX_CTL_BATCH)
		return -EINVAL;
	q->batch = calloc(entries, sizeof(*q->batch));
	if (!q->batch) {
		errno = saved;
		return -ENOMEM;
	}
	q->batch_cap = entries;
	return 0;
}

int kevent_queue_init_batch(struct kevent_queue *q, unsigned int ring_entries,
			    unsigned int flags, unsigned int batch_entries)
{
	int ret;

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	ret = alloc_batch(q, batch_entries);
	if (ret)
		return ret;
	q->fd = (int)neg_errno(kevent_init(ring_entries, flags));
	if (q->fd < 0) {
		ret = q->fd;
		goto fail;
	}
	q->flags = LIBKEVENT_Q_OWN_FD;
	if (ring_entries) {
		ret = map_ring(q, ring_entries);
		if (ret)
			goto fail;
	}
	return 0;
fail:
	kevent_queue_exit(q);
	return ret;
}

int kevent_queue_init(struct kevent_queue *q, unsigned int ring_entries, unsigned int flags)
{
	return kevent_queue_init_batch(q, ring_entries, flags, LIBKEVENT_DEFAULT_BATCH);
}

int kevent_queue_init_fd(struct kevent_queue *q, int fd, bool map)
{
	int ret;

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	if (fd < 0)
		return -EBADF;
	ret = alloc_batch(q, LIBKEVENT_DEFAULT_BATCH);
	if (ret)
		return ret;
	q->fd = fd;
	if (map) {
		ret = map_ring(q, 0);
		if (ret) {
			kevent_queue_exit(q);
			return ret;
		}
	}
	return 0;
}

void kevent_queue_exit(struct kevent_queue *q)
{
	int saved = errno;

	/* Only the process that mapped the ring has it: fork() does not copy it. */
	if (q->ring && q->pid == getpid())
		munmap(q->ring, q->ring_bytes);
	if (q->fd >= 0 && (q->flags & LIBKEVENT_Q_OWN_FD))
		close(q->fd);
	free(q->batch);
	memset(q, 0, sizeof(*q));
	q->fd = -1;
	errno = saved;
}

int kevent_queue_submit(struct kevent_queue *q, unsigned int cmd, struct ukevent **back)
{
	unsigned int n = q->batch_len;
	long ret;

	if (back)
		*back = q->batch;
	if (!n)
		return 0;
	/* The entries stay readable for the caller until the next get_entry. */
	q->batch_len = 0;
	ret = neg_errno(kevent_ctl(q->fd, cmd, n, q->batch));
	return (int)ret;
}

int kevent_queue_ctl(struct kevent_queue *q, unsigned int cmd, struct ukevent *e)
{
	return (int)neg_errno(kevent_ctl(q->fd, cmd, 1, e));
}

void kevent_wait_arg_init(struct kevent_wait_arg *arg, uint64_t timeout_ns,
			  const sigset_t *sigmask)
{
	memset(arg, 0, sizeof(*arg));
	if (timeout_ns != UINT64_MAX) {
		arg->timeout.tv_sec = (long long)(timeout_ns / 1000000000u);
		arg->timeout.tv_nsec = (long long)(timeout_ns % 1000000000u);
		arg->flags = KEVENT_WAIT_TIMEOUT;
	}
	if (sigmask) {
		arg->sigmask = (uint64_t)(uintptr_t)sigmask;
		/* The kernel's sigset_t: one bit per signal, _NSIG of them. */
		arg->sigsetsize = _NSIG / 8;
	}
}

/*
 * A relative timeout becomes an absolute CLOCK_MONOTONIC one, so that a
 * wait repeated after a wake-up without events does not start it over.
 */
static void make_absolute(struct kevent_wait_arg *arg)
{
	struct timespec now;

	if ((arg->flags & (KEVENT_WAIT_TIMEOUT | KEVENT_WAIT_ABSTIME)) != KEVENT_WAIT_TIMEOUT)
		return;
	neg_errno(clock_gettime(CLOCK_MONOTONIC, &now));
	arg->timeout.tv_sec += now.tv_sec;
	arg->timeout.tv_nsec += now.tv_nsec;
	if (arg->timeout.tv_nsec >= 1000000000) {
		arg->timeout.tv_sec++;
		arg->timeout.tv_nsec -= 1000000000;
	}
	arg->flags |= KEVENT_WAIT_ABSTIME;
}

static bool deadline_passed(const struct kevent_wait_arg *arg)
{
	struct timespec now;

	if (!arg || !(arg->flags & KEVENT_WAIT_TIMEOUT))
		return false;
	neg_errno(clock_gettime(CLOCK_MONOTONIC, &now));
	return now.tv_sec > arg->timeout.tv_sec ||
	       (now.tv_sec == arg->timeout.tv_sec && now.tv_nsec >= arg->timeout.tv_nsec);
}

/*
 * Sleeps in kevent_wait() until the ring holds an event. @arg is absolute
 * (or NULL). Returns 0 when an event is there, else -errno.
 */
static int wait_ring(struct kevent_queue *q, const struct kevent_wait_arg *arg)
{
	while (!kevent_queue_ready(q)) {
		long ret = neg_errno(kevent_wait(q->fd, 0, q->uidx, arg));

		if (ret < 0)
			return (int)ret;
		if (!kevent_queue_ready(q) && deadline_passed(arg))
			return -ETIME;
	}
	return 0;
}

int kevent_queue_wait(struct kevent_queue *q, struct ukevent **e,
		      const struct kevent_wait_arg *arg)
{
	struct kevent_wait_arg abs;
	int ret;

	if (!q->ring)
		return -EINVAL;
	*e = kevent_queue_peek(q);
	if (*e)
		return 0;
	if (arg) {
		abs = *arg;
		make_absolute(&abs);
		arg = &abs;
	}
	ret = wait_ring(q, arg);
	if (ret)
		return ret;
	*e = kevent_queue_peek(q);
	return 0;
}

int kevent_queue_wait_timeout(struct kevent_queue *q, struct ukevent **e, uint64_t timeout_ns,
			      const sigset_t *sigmask)
{
	struct kevent_wait_arg arg;

	kevent_wait_arg_init(&arg, timeout_ns, sigmask);
	return kevent_queue_wait(q, e, &arg);
}

/* Copies what the ring holds, up to @max; consumes it. */
static unsigned int copy_ring(struct kevent_queue *q, struct ukevent *events, unsigned int max)
{
	unsigned int n = kevent_queue_ready(q), mask = q->ring_size - 1;

	if (n > max)
		n = max;
	for (unsigned int i = 0; i < n; i++)
		events[i] = q->ring->event[(q->uidx + i) & mask];
	if (n)
		kevent_queue_advance(q, n);
	return n;
}

int kevent_queue_harvest(struct kevent_queue *q, struct ukevent *events, unsigned int min,
			 unsigned int max, const struct kevent_wait_arg *arg)
{
	struct kevent_wait_arg abs;
	unsigned int got;

	if (min > max)
		return -EINVAL;
	if (!q->ring)
		return (int)neg_errno(kevent_get_events(q->fd, min, max, events, arg));
	got = copy_ring(q, events, max);
	if (got >= min)
		return (int)got;
	if (arg) {
		abs = *arg;
		make_absolute(&abs);
		arg = &abs;
	}
	while (got < min) {
		int ret = wait_ring(q, arg);

		if (ret)
			return got ? (int)got : ret;
		got += copy_ring(q, events + got, max - got);
	}
	return (int)got;
}

int kevent_queue_flush(struct kevent_queue *q)
{
	unsigned int size = q->ring_size;

	if (!q->ring)
		return -EINVAL;
	return (int)neg_errno(kevent_commit(q->fd, q->uidx & (size - 1), q->uidx / size));
}

int64_t kevent_queue_aio_send(struct kevent_queue *q, int sock, const void *buf, size_t len,
			      unsigned int flags)
{
	return neg_errno(aio_send(q->fd, sock, buf, len, flags));
}

int64_t kevent_queue_aio_recv(struct kevent_queue *q, int sock, void *buf, size_t len,
			      unsigned int flags)
{
	return neg_errno(aio_recv(q->fd, sock, buf, len, flags));
}

int64_t kevent_queue_aio_sendfile(struct kevent_queue *q, int sock, int in_fd, uint64_t offset,
				  size_t count)
{
	return neg_errno(aio_sendfile(q->fd, sock, in_fd, &offset, count));
}

int64_t kevent_queue_aio_read(struct kevent_queue *q, int fd, void *buf, size_t len,
			      uint64_t offset)
{
	return neg_errno(aio_read(q->fd, fd, buf, len, &offset));
}

int64_t kevent_queue_aio_write(struct kevent_queue *q, int fd, const void *buf, size_t len,
			       uint64_t offset)
{
	return neg_errno(aio_write(q->fd, fd, buf, len, &offset));
}

int kevent_queue_plug(struct kevent_queue *q)
{
	return (int)neg_errno(kevent_ctl(q->fd, KEVENT_CTL_PLUG, 0, NULL));
}

int kevent_queue_unplug(struct kevent_queue *q)
{
	return (int)neg_errno(kevent_ctl(q->fd, KEVENT_CTL_UNPLUG, 0, NULL));
}

const char *kevent_version(void)
{
	return LIBKEVENT_STR(LIBKEVENT_VERSION_MAJOR) "." LIBKEVENT_STR(LIBKEVENT_VERSION_MINOR);
}

int kevent_version_major(void)
{
	return LIBKEVENT_VERSION_MAJOR;
}

int kevent_version_minor(void)
{
	return LIBKEVENT_VERSION_MINOR;
}

bool kevent_check_version(int major, int minor)
{
	return major == LIBKEVENT_VERSION_MAJOR && minor <= LIBKEVENT_VERSION_MINOR;
}
