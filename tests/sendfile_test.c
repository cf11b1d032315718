// SPDX-License-Identifier: GPL-2.0
/*
 * aio_sendfile(): a file's page-cache pages sent on a connected TCP socket
 * (IPv4 and IPv6) by a kernel worker, completed by one KEVENT_NAIO event.
 *
 * Covers the bytes the peer receives (every one checked against the file),
 * an offset and a count past the end of the file, the order of sends and
 * sendfiles on one socket, a socket that is full until the peer reads,
 * cancellation of a request that has not started, closing the queue and the
 * file while requests are pending, and every argument error.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

#define EVENT_MS 5000
#define QUIET_MS 200
#define FILE_BYTES (3u << 20)

static unsigned char pat(uint64_t i)
{
	return (unsigned char)(i * 2654435761u >> 13);
}

/* A connected pair over loopback: fds[0] the peer, fds[1] the socket sent on. */
static int tcp_pair(int family, int fds[2])
{
	struct timeval tv = { .tv_sec = 5 };
	struct sockaddr_storage ss = { .ss_family = family };
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) :
					    sizeof(struct sockaddr_in6);
	int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), ret = -1;

	fds[0] = fds[1] = -1;
	if (l < 0)
		return -1;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	if (bind(l, (void *)&ss, len) || listen(l, 4) || getsockname(l, (void *)&ss, &len))
		goto out;
	fds[1] = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fds[1] < 0 || connect(fds[1], (void *)&ss, len))
		goto out;
	fds[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[0] < 0)
		goto out;
	ret = 0;
	for (int i = 0; i < 2; i++)
		if (setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
		    setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
			ret = -1;
out:
	close(l);
	return ret;
}

/* Reads exactly @len bytes from @fd into @buf; false on error or end of stream. */
static bool read_all(int fd, unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);

		if (n <= 0)
			return false;
		buf += n;
		len -= n;
	}
	return true;
}

/* Whether @buf holds the file's bytes from offset @off. */
static bool file_bytes(const unsigned char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(off + i))
			return false;
	return true;
}

/* The next event, harvested within EVENT_MS; false if none came. */
static bool next_event(int q, struct ukevent *e)
{
	return harvest(q, 1, 1, e, EVENT_MS) == 1;
}

/* The completion of request @id: @bytes sent, @err 0 or -errno. */
static void check_done(struct __test_metadata *_metadata, const struct ukevent *e, long id,
		       uint32_t bytes, int err)
{
	EXPECT_EQ((uint32_t)KEVENT_NAIO, e->type);
	EXPECT_EQ((uint64_t)id, e->id.raw_u64);
	EXPECT_EQ((uint32_t)KEVENT_SOCKET_SEND, e->event);
	EXPECT_EQ(bytes, e->ret_data[0]);
	EXPECT_EQ((uint32_t)err, e->ret_data[1]);
}

FIXTURE(sf) {
	int q;
	int s[2];
	int fd;
	unsigned char *buf;
};

FIXTURE_VARIANT(sf) {
	int family;
};

FIXTURE_VARIANT_ADD(sf, v4) {
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(sf, v6) {
	.family = AF_INET6,
};

FIXTURE_SETUP(sf)
{
	char name[] = "/tmp/kevent-sendfile-XXXXXX";

	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
	ASSERT_EQ(0, tcp_pair(variant->family, self->s));
	self->buf = malloc(FILE_BYTES);
	ASSERT_NE(NULL, self->buf);
	for (uint64_t i = 0; i < FILE_BYTES; i++)
		self->buf[i] = pat(i);
	self->fd = mkstemp(name);
	ASSERT_LE(0, self->fd);
	unlink(name);
	ASSERT_EQ((ssize_t)FILE_BYTES, write(self->fd, self->buf, FILE_BYTES));
	memset(self->buf, 0, FILE_BYTES);
}

FIXTURE_TEARDOWN(sf)
{
	close(self->q);
	close(self->s[0]);
	close(self->s[1]);
	close(self->fd);
	free(self->buf);
}

TEST_F(sf, bytes_from_offset)
{
	uint64_t off = 1000;
	size_t count = 2u << 20;
	struct ukevent e;
	long before = pins_held();
	long id = aio_sendfile(self->q, self->s[1], self->fd, &off, count);

	ASSERT_LT(0, id) TH_LOG("aio_sendfile: %s", strerror(errno));
	ASSERT_TRUE(read_all(self->s[0], self->buf, count));
	EXPECT_TRUE(file_bytes(self->buf, off, count));
	ASSERT_TRUE(next_event(self->q, &e));
	check_done(_metadata, &e, id, count, 0);
	EXPECT_EQ(0u, e.ret_flags & KEVENT_RET_COPIED);
	/* The file position is not used or moved; nothing is pinned. */
	EXPECT_EQ(0, lseek(self->fd, 0, SEEK_CUR) - FILE_BYTES);
	EXPECT_EQ(before, pins_held());
	EXPECT_EQ(0, harvest(self->q, 0, 1, &e, QUIET_MS));
}

TEST_F(sf, past_end_of_file)
{
	uint64_t off = FILE_BYTES - 5000;
	struct ukevent e;
	long id = aio_sendfile(self->q, self->s[1], self->fd, &off, 1u << 20);

	ASSERT_LT(0, id);
	ASSERT_TRUE(next_event(self->q, &e));
	check_done(_metadata, &e, id, 5000, 0);
	ASSERT_TRUE(read_all(self->s[0], self->buf, 5000));
	EXPECT_TRUE(file_bytes(self->buf, off, 5000));
	/* Starting at the end sends nothing. */
	off = FILE_BYTES;
	id = aio_sendfile(self->q, self->s[1], self->fd, &off, 100);
	ASSERT_LT(0, id);
	ASSERT_TRUE(next_event(self->q, &e));
	check_done(_metadata, &e, id, 0, 0);
}

/* Sends and sendfiles on one socket leave in submission order. */
TEST_F(sf, order_with_sends)
{
	static unsigned char a[3000], c[20000];
	uint64_t off = 777;
	size_t count = 300000;
	struct ukevent e[3];
	long ids[3];
	int got = 0;

	memset(a, 'a', sizeof(a));
	memset(c, 'c', sizeof(c));
	ids[0] = aio_send(self->q, self->s[1], a, sizeof(a), 0);
	ids[1] = aio_sendfile(self->q, self->s[1], self->fd, &off, count);
	ids[2] = aio_send(self->q, self->s[1], c, sizeof(c), 0);
	ASSERT_LT(0, ids[0]);
	ASSERT_LT(0, ids[1]);
	ASSERT_LT(0, ids[2]);
	ASSERT_TRUE(read_all(self->s[0], self->buf, sizeof(a) + count + sizeof(c)));
	EXPECT_EQ(0, memcmp(self->buf, a, sizeof(a)));
	EXPECT_TRUE(file_bytes(self->buf + sizeof(a), off, count));
	EXPECT_EQ(0, memcmp(self->buf + sizeof(a) + count, c, sizeof(c)));
	while (got < 3 && next_event(self->q, &e[got]))
		got++;
	ASSERT_EQ(3, got);
	for (int i = 0; i < 3; i++) {
		int k = e[i].id.raw_u64 == (uint64_t)ids[0] ? 0 :
			e[i].id.raw_u64 == (uint64_t)ids[1] ? 1 : 2;

		EXPECT_EQ(k == 0 ? sizeof(a) : k == 1 ? count : sizeof(c), e[i].ret_data[0]);
		EXPECT_EQ(0u, e[i].ret_data[1]);
	}
}

/*
 * A peer that does not read fills the socket: the request waits, a second
 * one behind it can be cancelled, and reading lets the first complete.
 */
TEST_F(sf, full_socket_then_cancel)
{
	uint64_t off = 0, off2 = 0;
	struct ukevent e;
	struct ukevent rm = uev(KEVENT_NAIO, 0, 0, 0);
	long id, id2;

	id = aio_sendfile(self->q, self->s[1], self->fd, &off, FILE_BYTES);
	ASSERT_LT(0, id);
	id2 = aio_sendfile(self->q, self->s[1], self->fd, &off2, 1000);
	ASSERT_LT(0, id2);
	/* Three megabytes do not fit in loopback buffers the peer does not empty. */
	EXPECT_EQ(0, harvest(self->q, 0, 1, &e, 500));
	rm.id.raw_u64 = id2;
	ASSERT_EQ(0, ctl1(self->q, KEVENT_CTL_REMOVE, &rm));
	ASSERT_TRUE(next_event(self->q, &e));
	check_done(_metadata, &e, id2, 0, -ECANCELED);
	ASSERT_TRUE(read_all(self->s[0], self->buf, FILE_BYTES));
	EXPECT_TRUE(file_bytes(self->buf, 0, FILE_BYTES));
	ASSERT_TRUE(next_event(self->q, &e));
	check_done(_metadata, &e, id, FILE_BYTES, 0);
	/* Nothing of the cancelled request was sent. */
	errno = 0;
	EXPECT_EQ(-1, recv(self->s[0], self->buf, 16, MSG_DONTWAIT));
	EXPECT_EQ(EAGAIN, errno);
}

/* Closing the file and then the queue with requests pending is clean. */
TEST_F(sf, close_while_pending)
{
	uint64_t off = 0;

	for (int i = 0; i < 4; i++)
		ASSERT_LT(0, aio_sendfile(self->q, self->s[1], self->fd, &off, FILE_BYTES));
	close(self->fd);
	self->fd = -1;
	usleep(100000);
	close(self->q);
	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
	/* The socket still carries a prefix of the file. */
	ASSERT_TRUE(read_all(self->s[0], self->buf, 4096));
	EXPECT_TRUE(file_bytes(self->buf, 0, 4096));
}

#define EXPECT_FAIL(want, call)							\
	do {									\
		struct ukevent ev_;						\
										\
		errno = 0;							\
		EXPECT_EQ(-1L, (long)(call)) TH_LOG("%s", #call);		\
		EXPECT_EQ(want, errno) TH_LOG("%s: %s", #call, strerror(errno)); \
		EXPECT_EQ(0, harvest(self->q, 0, 1, &ev_, 0)) TH_LOG("%s", #call); \
	} while (0)

TEST_F(sf, arg_errors)
{
	uint64_t off = 0, neg = (uint64_t)-1, near_max = (uint64_t)LLONG_MAX - 10;
	int p[2], wr, u, fresh;
	void *none;

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, none);
	EXPECT_FAIL(EINVAL, aio_sendfile(self->q, self->s[1], self->fd, &off, 0));
	EXPECT_FAIL(EINVAL, aio_sendfile(self->q, self->s[1], self->fd, &off, (size_t)INT_MAX + 1));
	EXPECT_FAIL(EINVAL, aio_sendfile(self->q, self->s[1], self->fd, NULL, 100));
	EXPECT_FAIL(EFAULT, aio_sendfile(self->q, self->s[1], self->fd, none, 100));
	EXPECT_FAIL(EINVAL, aio_sendfile(self->q, self->s[1], self->fd, &neg, 100));
	EXPECT_FAIL(EINVAL, aio_sendfile(self->q, self->s[1], self->fd, &near_max, 100));
	EXPECT_FAIL(EBADF, aio_sendfile(self->q, self->s[1], -1, &off, 100));
	EXPECT_FAIL(EBADF, aio_sendfile(-1, self->s[1], self->fd, &off, 100));
	EXPECT_FAIL(EBADF, aio_sendfile(self->q, -1, self->fd, &off, 100));
	EXPECT_FAIL(EINVAL, aio_sendfile(p[0], self->s[1], self->fd, &off, 100));
	/* The input: not readable, or not a seekable file with splice_read. */
	{
		char name[] = "/tmp/kevent-sendfile-wo-XXXXXX";

		wr = mkstemp(name);
		ASSERT_LE(0, wr);
		close(wr);
		wr = open(name, O_WRONLY | O_CLOEXEC);
		ASSERT_LE(0, wr);
		unlink(name);
	}
	EXPECT_FAIL(EBADF, aio_sendfile(self->q, self->s[1], wr, &off, 100));
	close(wr);
	EXPECT_FAIL(EINVAL, aio_sendfile(self->q, self->s[1], p[0], &off, 100));
	EXPECT_FAIL(EINVAL, aio_sendfile(self->q, self->s[1], self->s[0], &off, 100));
	/* The socket: not a socket, not TCP, not connected. */
	EXPECT_FAIL(ENOTSOCK, aio_sendfile(self->q, self->fd, self->fd, &off, 100));
	u = socket(variant->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, u);
	EXPECT_FAIL(EOPNOTSUPP, aio_sendfile(self->q, u, self->fd, &off, 100));
	close(u);
	fresh = socket(variant->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, fresh);
	EXPECT_FAIL(ENOTCONN, aio_sendfile(self->q, fresh, self->fd, &off, 100));
	close(fresh);
	close(p[0]);
	close(p[1]);
	munmap(none, 4096);
	/* Nothing was sent. */
	errno = 0;
	EXPECT_EQ(-1, recv(self->s[0], self->buf, 16, MSG_DONTWAIT));
	EXPECT_EQ(EAGAIN, errno);
}

TEST_HARNESS_MAIN
