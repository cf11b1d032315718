// SPDX-License-Identifier: GPL-2.0
/*
 * Network AIO: aio_recv() on connected TCP sockets (IPv4 and IPv6), each
 * request completed by one KEVENT_NAIO event.
 *
 * Covers the completion event (its fields, the byte count, the data placed
 * in the caller's buffer), data queued before submission, MSG_WAITALL, a
 * full buffer leaving the rest on the socket, end of stream and reset,
 * several requests on one socket filling in submission order, every
 * argument error (nothing registered, no event, no page left pinned),
 * cancellation with KEVENT_CTL_REMOVE, a request outliving the socket's
 * descriptor, closing the queue with requests pending, and a 16 MiB stream
 * checked byte for byte. Page pins are counted with nr_foll_pin_acquired
 * and nr_foll_pin_released of /proc/vmstat.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kevent_test.h"
#include "naio_common.h"

/* Socket calls block for at most this long, so that no test hangs in one. */
#define SOCK_TIMEOUT_S	5
/* How long an expected event may take; and how long "no event" is watched. */
#define EVENT_MS	3000
#define QUIET_MS	200

/* Byte @i of every test stream. */
static inline unsigned char pat(uint64_t i)
{
	return (unsigned char)(i * 131 + 7);
}

static void fill_pat(void *buf, uint64_t off, size_t len)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pat(off + i);
}

/* Index of the first byte of @buf that is not stream byte @off + index, or @len. */
static size_t pat_mismatch(const void *buf, uint64_t off, size_t len)
{
	const unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != pat(off + i))
			break;
	return i;
}

/*
 * A connected TCP pair over loopback (v4 or v6): fds[0] is the peer (the
 * client), fds[1] the accepted socket the tests read with aio_recv().
 */
static int tcp_pair(int family, int fds[2])
{
	struct timeval tv = { .tv_sec = SOCK_TIMEOUT_S };
	struct sockaddr_storage ss;
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) :
					    sizeof(struct sockaddr_in6);
	int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret = -1;

	fds[0] = fds[1] = -1;
	if (l < 0)
		return -1;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = family;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	if (bind(l, (void *)&ss, len) || listen(l, 16) || getsockname(l, (void *)&ss, &len))
		goto out;
	fds[0] = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fds[0] < 0 || connect(fds[0], (void *)&ss, len))
		goto out;
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] < 0)
		goto out;
	ret = 0;
	for (int i = 0; i < 2; i++)
		if (setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
		    setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
		    setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
			ret = -1;
out:
	close(l);
	return ret;
}

/* The completion of request @id: @bytes received, @err 0 or -errno. */
static void check_event(struct __test_metadata *_metadata, const struct ukevent *e, long id,
			uint32_t bytes, int err)
{
	EXPECT_EQ((uint32_t)KEVENT_NAIO, e->type);
	EXPECT_EQ((uint64_t)id, e->id.raw_u64);
	EXPECT_EQ((uint32_t)KEVENT_SOCKET_RECV, e->event);
	EXPECT_EQ((uint32_t)KEVENT_REQ_ONESHOT, e->req_flags & KEVENT_REQ_ONESHOT);
	EXPECT_EQ(0u, e->ret_flags);
	EXPECT_EQ(bytes, e->ret_data[0]);
	EXPECT_EQ((uint32_t)err, e->ret_data[1]);
}

FIXTURE(naio) {
	int q;
	int s[2];	/* s[0]: the peer; s[1]: the socket aio_recv() reads */
};

FIXTURE_VARIANT(naio) {
	int family;
};

FIXTURE_VARIANT_ADD(naio, v4) {
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(naio, v6) {
	.family = AF_INET6,
};

FIXTURE_SETUP(naio)
{
	self->s[0] = self->s[1] = -1;
	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
	ASSERT_EQ(0, tcp_pair(variant->family, self->s));
}

FIXTURE_TEARDOWN(naio)
{
	closefd(&self->q);
	closefd(&self->s[0]);
	closefd(&self->s[1]);
}

/* ---- completion ---- */

TEST_F(naio, basic)
{
	unsigned char buf[100 + 28], msg[13];
	struct ukevent out[4];
	long id, id2;

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	id = aio_recv(self->q, self->s[1], buf, 100, 0);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	/* Nothing to read yet: pending, no event. */
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 0));
	ASSERT_EQ(10, write(self->s[0], msg, 10));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 10, 0);
	EXPECT_EQ(0, memcmp(buf, msg, 10));
	EXPECT_TRUE(all_bytes(buf + 10, 0xaa, sizeof(buf) - 10));
	/* One event per request, and the request is gone once delivered. */
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, id));
	/* The data went to the request, not to the socket. */
	errno = 0;
	EXPECT_EQ(-1, recv(self->s[1], buf, sizeof(buf), MSG_DONTWAIT));
	EXPECT_EQ(EAGAIN, errno);

	/* The socket takes another request, with a later id. */
	id2 = aio_recv(self->q, self->s[1], buf, 100, 0);
	ASSERT_LT(id, id2);
	ASSERT_EQ(3, write(self->s[0], msg + 10, 3));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id2, 3, 0);
	EXPECT_EQ(0, memcmp(buf, msg + 10, 3));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

TEST_F(naio, queued_before_submit)
{
	unsigned char buf[100], msg[50];
	struct ukevent out[4];
	long id;

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	ASSERT_EQ(50, write(self->s[0], msg, 50));
	ASSERT_TRUE(wait_for(self->s[1], POLLIN, EVENT_MS));
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), 0);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 50, 0);
	EXPECT_EQ(0, memcmp(buf, msg, 50));
	EXPECT_TRUE(all_bytes(buf + 50, 0xaa, sizeof(buf) - 50));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	/* Taken off the socket. */
	errno = 0;
	EXPECT_EQ(-1, recv(self->s[1], buf, sizeof(buf), MSG_DONTWAIT));
	EXPECT_EQ(EAGAIN, errno);
}

TEST_F(naio, waitall)
{
	unsigned char buf[100 + 16], msg[100];
	struct ukevent out[4];
	long id;

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	id = aio_recv(self->q, self->s[1], buf, 100, MSG_WAITALL);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(40, write(self->s[0], msg, 40));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	ASSERT_EQ(60, write(self->s[0], msg + 40, 60));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 100, 0);
	EXPECT_EQ(0, memcmp(buf, msg, 100));
	EXPECT_TRUE(all_bytes(buf + 100, 0xaa, sizeof(buf) - 100));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/* A full buffer completes the request; the rest of the data stays on the socket. */
static void full_buffer(struct __test_metadata *_metadata, int q, const int s[2],
			bool queued_first)
{
	unsigned char buf[16 + 16], msg[100], rest[100];
	struct ukevent out[4];
	long id = 0;

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	if (!queued_first) {
		id = aio_recv(q, s[1], buf, 16, 0);
		ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	}
	ASSERT_EQ(100, write(s[0], msg, 100));
	if (queued_first) {
		ASSERT_TRUE(wait_for(s[1], POLLIN, EVENT_MS));
		id = aio_recv(q, s[1], buf, 16, 0);
		ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	}
	ASSERT_EQ(1, collect(q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 16, 0);
	EXPECT_EQ(0, memcmp(buf, msg, 16));
	EXPECT_TRUE(all_bytes(buf + 16, 0xaa, sizeof(buf) - 16));
	/* The other 84 bytes, in order, for a plain recv(). */
	ASSERT_TRUE(wait_for(s[1], POLLIN, EVENT_MS));
	EXPECT_EQ(84, recv(s[1], rest, 84, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(rest, msg + 16, 84));
	errno = 0;
	EXPECT_EQ(-1, recv(s[1], rest, sizeof(rest), MSG_DONTWAIT));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(0, harvest(q, 1, 4, out, QUIET_MS));
}

TEST_F(naio, full_buffer_pending)
{
	full_buffer(_metadata, self->q, self->s, false);
}

TEST_F(naio, full_buffer_queued)
{
	full_buffer(_metadata, self->q, self->s, true);
}

/* ---- end of stream and errors ---- */

TEST_F(naio, eof_empty)
{
	unsigned char a[100], b[100];
	struct ukevent out[4];
	long ida, idb;

	memset(a, 0xaa, sizeof(a));
	memset(b, 0xaa, sizeof(b));
	ida = aio_recv(self->q, self->s[1], a, sizeof(a), 0);
	idb = aio_recv(self->q, self->s[1], b, sizeof(b), MSG_WAITALL);
	ASSERT_LT(0, ida);
	ASSERT_LT(ida, idb);
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	ASSERT_EQ(0, shutdown(self->s[0], SHUT_WR));
	/* Both end, empty, in order. */
	ASSERT_EQ(2, collect(self->q, out, 2, EVENT_MS));
	check_event(_metadata, &out[0], ida, 0, 0);
	check_event(_metadata, &out[1], idb, 0, 0);
	EXPECT_LT(out[0].seq, out[1].seq);
	EXPECT_TRUE(all_bytes(a, 0xaa, sizeof(a)));
	EXPECT_TRUE(all_bytes(b, 0xaa, sizeof(b)));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

TEST_F(naio, eof_partial)
{
	unsigned char buf[100], msg[5];
	struct ukevent out[4];
	long id;

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), MSG_WAITALL);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(5, write(self->s[0], msg, 5));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	ASSERT_EQ(0, shutdown(self->s[0], SHUT_WR));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 5, 0);
	EXPECT_EQ(0, memcmp(buf, msg, 5));
	EXPECT_TRUE(all_bytes(buf + 5, 0xaa, sizeof(buf) - 5));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

TEST_F(naio, eof_close)
{
	unsigned char buf[100];
	struct ukevent out[4];
	long id;

	memset(buf, 0xaa, sizeof(buf));
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), MSG_WAITALL);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	closefd(&self->s[0]);
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 0, 0);
	EXPECT_TRUE(all_bytes(buf, 0xaa, sizeof(buf)));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/* Data and end of stream both arrived before the requests. */
TEST_F(naio, eof_before_submit)
{
	unsigned char buf[100], buf2[100], msg[7];
	struct ukevent out[4];
	long id;

	memset(buf, 0xaa, sizeof(buf));
	memset(buf2, 0xaa, sizeof(buf2));
	fill_pat(msg, 0, sizeof(msg));
	ASSERT_EQ(7, write(self->s[0], msg, 7));
	ASSERT_EQ(0, shutdown(self->s[0], SHUT_WR));
	ASSERT_TRUE(wait_for(self->s[1], POLLRDHUP, EVENT_MS));
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), MSG_WAITALL);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 7, 0);
	EXPECT_EQ(0, memcmp(buf, msg, 7));
	/* Nothing left: the next request ends empty at once. */
	id = aio_recv(self->q, self->s[1], buf2, sizeof(buf2), 0);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 0, 0);
	EXPECT_TRUE(all_bytes(buf2, 0xaa, sizeof(buf2)));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/* Like recv(): the pending error once, then end of stream. */
TEST_F(naio, reset_before_submit)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	unsigned char buf[100];
	struct ukevent out[4];
	long id;

	memset(buf, 0xaa, sizeof(buf));
	ASSERT_EQ(0, setsockopt(self->s[0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	closefd(&self->s[0]);
	ASSERT_TRUE(wait_for(self->s[1], POLLRDHUP, EVENT_MS));
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), 0);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 0, -ECONNRESET);
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), MSG_WAITALL);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 0, 0);
	EXPECT_TRUE(all_bytes(buf, 0xaa, sizeof(buf)));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/*
 * A reset arrives while requests wait: it does not pass through tcp_data_ready, the
 * socket's error report completes them: with the error when they have nothing, with their
 * bytes when they have some.
 */
TEST_F(naio, reset_while_pending)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	unsigned char buf[2][100], msg[5];
	struct ukevent out[4];
	long id[2];

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	id[0] = aio_recv(self->q, self->s[1], buf[0], sizeof(buf[0]), MSG_WAITALL);
	ASSERT_LT(0, id[0]) TH_LOG("aio_recv: %s", strerror(errno));
	id[1] = aio_recv(self->q, self->s[1], buf[1], sizeof(buf[1]), 0);
	ASSERT_LT(0, id[1]) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(5, write(self->s[0], msg, 5));
	/* The first (WAITALL) request holds the 5 bytes and waits for more. */
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	ASSERT_EQ(0, setsockopt(self->s[0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	closefd(&self->s[0]);
	ASSERT_EQ(2, collect(self->q, out, 2, EVENT_MS));
	if (out[0].id.raw_u64 != (uint64_t)id[0]) {
		struct ukevent t = out[0];

		out[0] = out[1];
		out[1] = t;
	}
	check_event(_metadata, &out[0], id[0], 5, 0);
	check_event(_metadata, &out[1], id[1], 0, -ECONNRESET);
	EXPECT_EQ(0, memcmp(buf[0], msg, 5));
	EXPECT_TRUE(all_bytes(buf[1], 0xaa, sizeof(buf[1])));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/* ---- several requests on one socket ---- */

TEST_F(naio, order)
{
	unsigned char buf[3][16], msg[30];
	uint64_t seq[3] = { 0 };
	struct ukevent out[4];
	int seen[3] = { 0 };
	long id[3];

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	for (int i = 0; i < 3; i++) {
		id[i] = aio_recv(self->q, self->s[1], buf[i], 10, 0);
		/* Ids are positive and increase. */
		ASSERT_LT(i ? id[i - 1] : 0, id[i]) TH_LOG("aio_recv: %s", strerror(errno));
	}
	ASSERT_EQ(30, write(self->s[0], msg, 30));
	ASSERT_EQ(3, collect(self->q, out, 3, EVENT_MS));
	for (int j = 0; j < 3; j++) {
		int i;

		for (i = 0; i < 3; i++)
			if (out[j].id.raw_u64 == (uint64_t)id[i])
				break;
		ASSERT_GT(3, i) TH_LOG("event for unknown request %llu",
				       (unsigned long long)out[j].id.raw_u64);
		check_event(_metadata, &out[j], id[i], 10, 0);
		seq[i] = out[j].seq;
		seen[i]++;
	}
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(1, seen[i]);
		EXPECT_EQ(0, memcmp(buf[i], msg + 10 * i, 10)) TH_LOG("request %d", i);
		EXPECT_TRUE(all_bytes(buf[i] + 10, 0xaa, 6));
	}
	/* Completed in submission order. */
	EXPECT_LT(seq[0], seq[1]);
	EXPECT_LT(seq[1], seq[2]);
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/*
 * Two writes of 15 bytes for three requests of 10: the first write fills the
 * first request and ends the second with 5 (the socket is drained); the
 * second write fills the third and leaves 5 bytes on the socket.
 */
TEST_F(naio, order_split_writes)
{
	unsigned char buf[3][16], msg[30], rest[16];
	struct ukevent out[4];
	long id[3];

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	for (int i = 0; i < 3; i++) {
		id[i] = aio_recv(self->q, self->s[1], buf[i], 10, 0);
		ASSERT_LT(0, id[i]) TH_LOG("aio_recv: %s", strerror(errno));
	}
	ASSERT_EQ(15, write(self->s[0], msg, 15));
	ASSERT_EQ(2, collect(self->q, out, 2, EVENT_MS));
	check_event(_metadata, &out[0], id[0], 10, 0);
	check_event(_metadata, &out[1], id[1], 5, 0);
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	ASSERT_EQ(15, write(self->s[0], msg + 15, 15));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id[2], 10, 0);
	EXPECT_EQ(0, memcmp(buf[0], msg, 10));
	EXPECT_EQ(0, memcmp(buf[1], msg + 10, 5));
	EXPECT_TRUE(all_bytes(buf[1] + 5, 0xaa, 11));
	EXPECT_EQ(0, memcmp(buf[2], msg + 15, 10));
	ASSERT_TRUE(wait_for(self->s[1], POLLIN, EVENT_MS));
	EXPECT_EQ(5, recv(self->s[1], rest, sizeof(rest), 0));
	EXPECT_EQ(0, memcmp(rest, msg + 25, 5));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/* ---- errors ---- */

/* @call fails with errno @want and leaves the queue without events. */
#define EXPECT_FAIL(want, call)							\
	do {									\
		struct ukevent ev_[4];						\
										\
		errno = 0;							\
		EXPECT_EQ(-1L, (long)(call)) TH_LOG("%s", #call);		\
		EXPECT_EQ(want, errno) TH_LOG("%s: %s", #call, strerror(errno)); \
		EXPECT_EQ(0, harvest(self->q, 0, 4, ev_, 0)) TH_LOG("%s", #call); \
	} while (0)

/* Nothing was registered on the pair: data sent now stay on the socket. */
static void check_nothing_registered(struct __test_metadata *_metadata, int q,
				     const int s[2])
{
	unsigned char msg[8], got[16];
	struct ukevent out[4];

	fill_pat(msg, 1000, sizeof(msg));
	ASSERT_EQ(8, write(s[0], msg, 8));
	EXPECT_EQ(0, harvest(q, 1, 4, out, QUIET_MS));
	ASSERT_TRUE(wait_for(s[1], POLLIN, EVENT_MS));
	EXPECT_EQ(8, recv(s[1], got, sizeof(got), 0));
	EXPECT_EQ(0, memcmp(got, msg, 8));
}

TEST_F(naio, arg_errors)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	unsigned char buf[64];
	int p[2], sp[2], fd;

	memset(buf, 0xaa, sizeof(buf));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));

	/* Length and flags (checked first). */
	EXPECT_FAIL(EINVAL, aio_recv(self->q, self->s[1], buf, 0, 0));
	EXPECT_FAIL(EINVAL, aio_recv(self->q, self->s[1], buf, 0, MSG_WAITALL));
	EXPECT_FAIL(EINVAL, aio_recv(self->q, self->s[1], buf, sizeof(buf), MSG_PEEK));
	EXPECT_FAIL(EINVAL, aio_recv(self->q, self->s[1], buf, sizeof(buf), MSG_DONTWAIT));
	EXPECT_FAIL(EINVAL, aio_recv(self->q, self->s[1], buf, sizeof(buf),
				     MSG_WAITALL | MSG_TRUNC));
	EXPECT_FAIL(EINVAL, aio_recv(self->q, self->s[1], buf, sizeof(buf), 0x80000000u));
	EXPECT_FAIL(EINVAL, aio_recv(self->q, self->s[1], buf, (size_t)INT_MAX + 1, 0));

	/* The socket descriptor. */
	fd = dup(self->s[1]);
	ASSERT_LE(0, fd);
	close(fd);
	EXPECT_FAIL(EBADF, aio_recv(self->q, fd, buf, sizeof(buf), 0));
	EXPECT_FAIL(EBADF, aio_recv(self->q, -1, buf, sizeof(buf), 0));

	/* The queue descriptor: not open, or not a queue. */
	EXPECT_FAIL(EBADF, aio_recv(fd, self->s[1], buf, sizeof(buf), 0));
	EXPECT_FAIL(EBADF, aio_recv(-1, self->s[1], buf, sizeof(buf), 0));
	EXPECT_FAIL(EINVAL, aio_recv(p[0], self->s[1], buf, sizeof(buf), 0));
	EXPECT_FAIL(EINVAL, aio_recv(self->s[0], self->s[1], buf, sizeof(buf), 0));

	/* Not a socket. */
	EXPECT_FAIL(ENOTSOCK, aio_recv(self->q, p[0], buf, sizeof(buf), 0));
	EXPECT_FAIL(ENOTSOCK, aio_recv(self->q, self->q, buf, sizeof(buf), 0));
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_FAIL(ENOTSOCK, aio_recv(self->q, fd, buf, sizeof(buf), 0));
	close(fd);

	/* Not TCP: UDP (unconnected and connected), AF_UNIX stream and datagram. */
	fd = socket(variant->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	EXPECT_FAIL(EOPNOTSUPP, aio_recv(self->q, fd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, getsockname(self->s[1], (void *)&ss, &sslen));
	ASSERT_EQ(0, connect(fd, (void *)&ss, sslen));
	EXPECT_FAIL(EOPNOTSUPP, aio_recv(self->q, fd, buf, sizeof(buf), 0));
	close(fd);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
	EXPECT_FAIL(EOPNOTSUPP, aio_recv(self->q, sp[0], buf, sizeof(buf), 0));
	close(sp[0]);
	close(sp[1]);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp));
	EXPECT_FAIL(EOPNOTSUPP, aio_recv(self->q, sp[0], buf, sizeof(buf), 0));
	close(sp[0]);
	close(sp[1]);

	/* TCP but not connected: fresh, bound, listening. */
	fd = socket(variant->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	EXPECT_FAIL(ENOTCONN, aio_recv(self->q, fd, buf, sizeof(buf), 0));
	EXPECT_FAIL(ENOTCONN, aio_recv(self->q, fd, buf, sizeof(buf), MSG_WAITALL));
	ASSERT_EQ(0, getsockname(self->s[1], (void *)&ss, &sslen));
	if (variant->family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	ASSERT_EQ(0, bind(fd, (void *)&ss, sslen));
	EXPECT_FAIL(ENOTCONN, aio_recv(self->q, fd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, listen(fd, 4));
	EXPECT_FAIL(ENOTCONN, aio_recv(self->q, fd, buf, sizeof(buf), 0));
	close(fd);

	EXPECT_TRUE(all_bytes(buf, 0xaa, sizeof(buf)));
	close(p[0]);
	close(p[1]);
	check_nothing_registered(_metadata, self->q, self->s);
}

/* Buffers the kernel cannot write into. */
TEST_F(naio, efault)
{
	size_t pg = page_size();
	unsigned char *m, *ro, *none, *gone, *half;
	long base = pins_settled();

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ro = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gone = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	half = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_NE(MAP_FAILED, none);
	ASSERT_NE(MAP_FAILED, gone);
	ASSERT_NE(MAP_FAILED, half);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, munmap(gone, 2 * pg));
	memset(half, 0xaa, 2 * pg);
	memset(m, 0xaa, 2 * pg);
	ASSERT_EQ(0, mprotect(half + pg, pg, PROT_NONE));
	ASSERT_EQ(0, mprotect(m + pg, pg, PROT_READ));

	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], NULL, 16, 0));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], NULL, 16, MSG_WAITALL));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], gone, 100, 0));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], gone + pg - 8, 16, 0));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], none, 100, 0));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], ro, 100, 0));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], ro, 1, MSG_WAITALL));
	/* Writable first page, bad second page. */
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], half + pg - 8, 16, 0));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], m + pg - 8, 16, 0));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], m, 2 * pg, MSG_WAITALL));
	/* Kernel addresses and a range that wraps around. */
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], (void *)0xffff888000000000ull, 16, 0));
	EXPECT_FAIL(EFAULT, aio_recv(self->q, self->s[1], (void *)(UINTPTR_MAX - 100), 200, 0));

	EXPECT_TRUE(all_bytes(half, 0xaa, pg));
	EXPECT_TRUE(all_bytes(m, 0xaa, 2 * pg));
	check_nothing_registered(_metadata, self->q, self->s);
	EXPECT_EQ(base, pins_back_to(base));
	munmap(ro, pg);
	munmap(none, pg);
	munmap(half, 2 * pg);
	munmap(m, 2 * pg);
}

/* A request that fails after pinning part of its buffer unpins that part. */
TEST_F(naio, efault_no_pin_leak)
{
	size_t pg = page_size();
	unsigned char *m;
	long base = pins_settled();
	/* Second page: not accessible, read-only, not mapped. */
	static const int prot[3] = { PROT_NONE, PROT_READ, -1 };

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	for (int k = 0; k < 3; k++) {
		long bad = 0;

		m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, m);
		memset(m, 0xaa, 2 * pg);
		ASSERT_EQ(0, prot[k] < 0 ? munmap(m + pg, pg) : mprotect(m + pg, pg, prot[k]));
		for (int i = 0; i < 1024; i++) {
			errno = 0;
			if (aio_recv(self->q, self->s[1], m + (i % pg), pg + 1,
				     i & 1 ? MSG_WAITALL : 0) != -1 || errno != EFAULT)
				bad++;
		}
		EXPECT_EQ(0, bad) TH_LOG("second page %d: %ld calls did not fail with EFAULT",
					 prot[k], bad);
		EXPECT_TRUE(all_bytes(m, 0xaa, pg));
		munmap(m, prot[k] < 0 ? pg : 2 * pg);
		EXPECT_EQ(base, pins_back_to(base)) TH_LOG("second page %d", prot[k]);
	}
	check_nothing_registered(_metadata, self->q, self->s);
	closefd(&self->q);
	EXPECT_EQ(base, pins_back_to(base));
}

/* Requests are made by aio_recv() only; an unknown id cannot be removed. */
TEST_F(naio, ctl_misuse)
{
	struct ukevent e = uev(KEVENT_NAIO, 1, KEVENT_SOCKET_RECV, KEVENT_REQ_ONESHOT), out[4];

	ASSERT_EQ(1, ctl1(self->q, KEVENT_CTL_ADD, &e));
	EXPECT_EQ((uint32_t)(KEVENT_RET_BROKEN | KEVENT_RET_DONE), e.ret_flags);
	EXPECT_EQ((uint32_t)-EINVAL, e.ret_data[1]);
	EXPECT_EQ(-ENOENT, cancel_req(self->q, 0));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, 1L << 62));
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 0));
	check_nothing_registered(_metadata, self->q, self->s);
}

/* ---- cancellation ---- */

TEST_F(naio, cancel)
{
	unsigned char buf[100], msg[10], got[100];
	struct ukevent out[4];
	long base = pins_settled(), id;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), 0);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	/* Pending: its pages are pinned. */
	EXPECT_LT(base, pins_held());
	/* Cancelled into its one completion: nothing received, -ECANCELED. */
	EXPECT_EQ(0, cancel_req(self->q, id));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 0, -ECANCELED);
	/* Delivered: gone, and its pages unpinned. */
	EXPECT_EQ(base, pins_back_to(base));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, id));
	ASSERT_EQ(10, write(self->s[0], msg, 10));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_TRUE(all_bytes(buf, 0xaa, sizeof(buf)));
	ASSERT_TRUE(wait_for(self->s[1], POLLIN, EVENT_MS));
	EXPECT_EQ(10, recv(self->s[1], got, sizeof(got), 0));
	EXPECT_EQ(0, memcmp(got, msg, 10));
	closefd(&self->q);
	EXPECT_EQ(base, pins_back_to(base));
}

/*
 * REMOVE racing the completion: a writer thread sends one byte per round while
 * this thread submits a request and cancels it at once. Each byte must end up
 * exactly once: reported by an event, left on the socket, or taken into the
 * cancelled request's buffer (cancelling discards what a request held); never
 * two of those, never lost, and nothing stays pinned.
 */
struct racer {
	int fd;
	atomic_int round;	/* the round the writer may send in */
	atomic_int stop;
};

static void *race_writer(void *arg)
{
	struct racer *r = arg;
	int last = 0;

	while (!atomic_load(&r->stop)) {
		int now = atomic_load(&r->round);

		if (now == last)
			continue;
		last = now;
		if (write(r->fd, "U", 1) != 1)
			break;
	}
	return NULL;
}

TEST_F_TIMEOUT(naio, cancel_race, 90)
{
	struct racer r = { .fd = self->s[0] };
	long base = pins_settled(), rounds = 0, completed = 0, cancelled = 0;
	uint64_t end = now_ns() + 20ull * 1000000000, seed = 42;
	struct ukevent out[4];
	pthread_t t;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_EQ(0, pthread_create(&t, NULL, race_writer, &r));
	for (; rounds < 100000 && now_ns() < end; rounds++) {
		unsigned char buf = 0xaa, got;
		long id = aio_recv(self->q, self->s[1], &buf, 1, 0);
		int ret;

		ASSERT_LT(0, id) TH_LOG("round %ld: aio_recv: %s", rounds, strerror(errno));
		atomic_fetch_add(&r.round, 1);
		/* A random head start for the byte, so that both sides win often. */
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		for (uint64_t until = now_ns() + (seed >> 33) % 400000; now_ns() < until;)
			;
		ret = cancel_req(self->q, id);
		ASSERT_EQ(0, ret) TH_LOG("round %ld: REMOVE %d", rounds, ret);
		/* Exactly one completion: the byte, or the cancellation. */
		ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS)) TH_LOG("round %ld", rounds);
		ASSERT_EQ((uint64_t)id, out[0].id.raw_u64);
		if (out[0].ret_data[0] == 1) {
			ASSERT_EQ(0, (int)out[0].ret_data[1]);
			ASSERT_EQ('U', buf);
			completed++;
			continue;
		}
		ASSERT_EQ(0, (int)out[0].ret_data[0]);
		ASSERT_EQ(-ECANCELED, (int)out[0].ret_data[1]);
		ASSERT_EQ(0xaa, buf);
		/* Then the byte is on the socket (now, or as soon as the writer sends it). */
		ASSERT_TRUE(wait_for(self->s[1], POLLIN, EVENT_MS)) TH_LOG("round %ld", rounds);
		ASSERT_EQ(1, recv(self->s[1], &got, 1, 0));
		ASSERT_EQ('U', got);
		cancelled++;
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%ld rounds: %ld completed with the byte, %ld cancelled (byte left on the socket)",
	       rounds, completed, cancelled);
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	/* About 20,000 rounds on the release kernel, 3,500 on the debug one, in 20 s. */
	EXPECT_LE(1000, rounds);
	/* Both outcomes happened: the race was really run (the emulated VM favours the REMOVE). */
	EXPECT_LE(5, completed);
	EXPECT_LE(5, cancelled);
	EXPECT_EQ(base, pins_back_to(base));
}

/*
 * Pinned buffers are charged to RLIMIT_MEMLOCK like MSG_ZEROCOPY: a user without
 * CAP_IPC_LOCK gets ENOBUFS beyond the limit, and the charge comes back when a
 * request ends. (Root is not charged, so the check runs in a child that became
 * "nobody".) A request of 16 KiB is charged 4 pages plus 2 (the worst case of
 * mm_account_pinned_pages); the limit of 16 pages takes two of them, not three.
 */
TEST_F(naio, memlock_limit)
{
	struct rlimit lim = { 16 * 4096, 16 * 4096 };
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		static unsigned char buf[4][16384];
		struct ukevent out[4];
		long id[4];

		if (setrlimit(RLIMIT_MEMLOCK, &lim) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(10);
		for (int i = 0; i < 2; i++) {
			id[i] = aio_recv(self->q, self->s[1], buf[i], sizeof(buf[i]), 0);
			if (id[i] <= 0)
				_exit(11 + i);
		}
		if (aio_recv(self->q, self->s[1], buf[2], sizeof(buf[2]), 0) != -1 ||
		    errno != ENOBUFS)
			_exit(13);
		/* Ending one request gives its charge back. */
		if (cancel_req(self->q, id[0]) || collect(self->q, out, 1, EVENT_MS) != 1 ||
		    (int)out[0].ret_data[1] != -ECANCELED)
			_exit(14);
		id[2] = aio_recv(self->q, self->s[1], buf[2], sizeof(buf[2]), 0);
		if (id[2] <= 0)
			_exit(15);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("child step %d failed", WEXITSTATUS(status));
}

/* Cancelling the middle one of three: the others fill as if it never was. */
TEST_F(naio, cancel_middle)
{
	unsigned char buf[3][16], msg[20];
	struct ukevent out[4];
	long id[3];

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	for (int i = 0; i < 3; i++) {
		id[i] = aio_recv(self->q, self->s[1], buf[i], 10, 0);
		ASSERT_LT(0, id[i]) TH_LOG("aio_recv: %s", strerror(errno));
	}
	ASSERT_EQ(0, cancel_req(self->q, id[1]));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id[1], 0, -ECANCELED);
	ASSERT_EQ(20, write(self->s[0], msg, 20));
	ASSERT_EQ(2, collect(self->q, out, 2, EVENT_MS));
	check_event(_metadata, &out[0], id[0], 10, 0);
	check_event(_metadata, &out[1], id[2], 10, 0);
	EXPECT_EQ(0, memcmp(buf[0], msg, 10));
	EXPECT_TRUE(all_bytes(buf[1], 0xaa, sizeof(buf[1])));
	EXPECT_EQ(0, memcmp(buf[2], msg + 10, 10));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/* A partly filled request keeps what it took; later data go to the socket. */
TEST_F(naio, cancel_partial)
{
	unsigned char buf[100], msg[50], got[100];
	struct ukevent out[4];
	long base = pins_settled(), id;
	uint64_t end;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), MSG_WAITALL);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_EQ(40, write(self->s[0], msg, 40));
	/* The kernel copies into the buffer as data arrive, before completion. */
	end = now_ns() + EVENT_MS * 1000000ull;
	while (memcmp(buf, msg, 40) && now_ns() < end)
		usleep(1000);
	EXPECT_EQ(0, memcmp(buf, msg, 40));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	/* Cancelling a request that holds bytes completes it with them: nothing is lost. */
	EXPECT_EQ(0, cancel_req(self->q, id));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 40, 0);
	EXPECT_EQ(base, pins_back_to(base));
	ASSERT_EQ(10, write(self->s[0], msg + 40, 10));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	ASSERT_TRUE(wait_for(self->s[1], POLLIN, EVENT_MS));
	EXPECT_EQ(10, recv(self->s[1], got, sizeof(got), 0));
	EXPECT_EQ(0, memcmp(got, msg + 40, 10));
	EXPECT_TRUE(all_bytes(buf + 40, 0xaa, sizeof(buf) - 40));
}

/* ---- lifetime ---- */

TEST_F(naio, close_socket_fd_pending)
{
	unsigned char buf[100], msg[10], c;
	struct ukevent out[4];
	long id;

	memset(buf, 0xaa, sizeof(buf));
	fill_pat(msg, 0, sizeof(msg));
	id = aio_recv(self->q, self->s[1], buf, sizeof(buf), 0);
	ASSERT_LT(0, id) TH_LOG("aio_recv: %s", strerror(errno));
	closefd(&self->s[1]);
	/* The request holds the socket: it neither ends nor closes it. */
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_FALSE(wait_for(self->s[0], POLLIN | POLLRDHUP, 0));
	ASSERT_EQ(10, write(self->s[0], msg, 10));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 10, 0);
	EXPECT_EQ(0, memcmp(buf, msg, 10));
	/* Delivered: the request let go of the socket, which closes now. */
	ASSERT_TRUE(wait_for(self->s[0], POLLIN, EVENT_MS));
	EXPECT_EQ(0, recv(self->s[0], &c, 1, 0));
}

struct recv_one {
	int peer, sock;
	unsigned char buf[1];
};

/* Queues one byte on the socket, then receives it with aio_recv(). */
static int64_t recv_one(struct kevent_queue *q, int i, void *arg)
{
	struct recv_one *r = arg;
	unsigned char msg = (unsigned char)i;

	if (write(r->peer, &msg, 1) != 1 || !wait_for(r->sock, POLLIN, EVENT_MS))
		return -EIO;
	/* The byte is queued: the request completes inside aio_recv(). */
	return kevent_queue_aio_recv(q, r->sock, r->buf, 1, 0);
}

/*
 * A ring consumer that never calls into the queue (it takes completions with
 * kevent_queue_peek() and gives slots back with kevent_queue_advance(), no
 * kevent_wait(), kevent_get_events() or kevent_ctl()) can go on submitting:
 * each submission reaps the requests delivered before it. Before, they stayed
 * in the queue until its next wait, so with max_user_kevents at 100 the 101st
 * aio_recv() failed with ENOSPC (and memory grew with every request).
 */
TEST_F(naio, ring_consumer_never_waits)
{
	struct recv_one r = { .peer = self->s[0], .sock = self->s[1] };
	struct kevent_queue q;
	int done, err;

	ASSERT_EQ(0, kevent_queue_init(&q, 64, 0));
	done = ring_only_requests(&q, 1000, recv_one, &r, &err);
	EXPECT_EQ(1000, done) TH_LOG("request %d: %s", done, strerror(-err));
	EXPECT_EQ(0, err);
	EXPECT_EQ((unsigned char)999, r.buf[0]);
	kevent_queue_exit(&q);
}

#define QC_SOCKS	8
#define QC_REQS		8

TEST_F(naio, queue_close_pending)
{
	size_t pg = page_size();
	int s[QC_SOCKS][2], x[2];
	unsigned char *region, xbuf[100], msg[50], got[16], c;
	struct ukevent out[4];
	long base = pins_settled(), id, held;
	uint64_t end;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	region = mmap(NULL, QC_SOCKS * QC_REQS * pg, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, region);
	memset(region, 0xaa, QC_SOCKS * QC_REQS * pg);
	fill_pat(msg, 0, sizeof(msg));
	/* One page per request; the first of each socket waits for 100 bytes. */
	for (int k = 0; k < QC_SOCKS; k++) {
		ASSERT_EQ(0, tcp_pair(variant->family, s[k]));
		for (int r = 0; r < QC_REQS; r++) {
			id = aio_recv(self->q, s[k][1], region + (k * QC_REQS + r) * pg, 100,
				      r ? 0 : MSG_WAITALL);
			ASSERT_LT(0, id) TH_LOG("aio_recv %d/%d: %s", k, r, strerror(errno));
		}
	}
	held = pins_held();
	EXPECT_LE(base + QC_SOCKS * QC_REQS, held) TH_LOG("%ld pages pinned", held - base);
	/* Half a buffer for each first request, which stays pending. */
	end = now_ns() + EVENT_MS * 1000000ull;
	for (int k = 0; k < QC_SOCKS; k++) {
		unsigned char *b = region + k * QC_REQS * pg;

		ASSERT_EQ(50, write(s[k][0], msg, 50));
		while (memcmp(b, msg, 50) && now_ns() < end)
			usleep(1000);
		EXPECT_EQ(0, memcmp(b, msg, 50)) TH_LOG("socket %d", k);
	}
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	/* And one request whose socket has no descriptor left. */
	ASSERT_EQ(0, tcp_pair(variant->family, x));
	ASSERT_LT(0, aio_recv(self->q, x[1], xbuf, sizeof(xbuf), 0));
	closefd(&x[1]);

	closefd(&self->q);
	EXPECT_EQ(base, pins_back_to(base));
	/* The queue held the last reference to that socket. */
	ASSERT_TRUE(wait_for(x[0], POLLIN, EVENT_MS));
	EXPECT_EQ(0, recv(x[0], &c, 1, 0));
	closefd(&x[0]);
	/* The other sockets work as before, and no buffer is written any more. */
	for (int k = 0; k < QC_SOCKS; k++) {
		ASSERT_EQ(10, write(s[k][0], msg + 20, 10));
		ASSERT_TRUE(wait_for(s[k][1], POLLIN, EVENT_MS));
		EXPECT_EQ(10, recv(s[k][1], got, sizeof(got), 0));
		EXPECT_EQ(0, memcmp(got, msg + 20, 10));
	}
	for (int k = 0; k < QC_SOCKS; k++) {
		for (int r = 0; r < QC_REQS; r++) {
			unsigned char *b = region + (k * QC_REQS + r) * pg;
			size_t off = r ? 0 : 50;

			EXPECT_TRUE(all_bytes(b + off, 0xaa, pg - off)) TH_LOG("%d/%d", k, r);
		}
		closefd(&s[k][0]);
		closefd(&s[k][1]);
	}
	munmap(region, QC_SOCKS * QC_REQS * pg);
}

/* ---- a long stream ---- */

#define STREAM_BYTES	(16ull << 20)
#define STREAM_SLOTS	4
#define RECV_MAX	65536
#define WRITE_MAX	131072

struct writer {
	int fd;
	uint64_t total;
	uint64_t seed;
	uint64_t sent;	/* out */
	int err;	/* out: errno of a failed write, or 0 */
};

/* Writes the stream in chunks of random sizes, then ends it. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned char *p = malloc(WRITE_MAX + 256);
	uint64_t s = w->seed;

	if (!p) {
		w->err = ENOMEM;
		goto out;
	}
	/* The pattern repeats every 256 bytes: byte i of the stream is p[i % 256 + ...]. */
	fill_pat(p, 0, WRITE_MAX + 256);
	while (w->sent < w->total) {
		uint64_t r = rnd(&s);
		size_t len = r & 3 ? 1 + (r >> 8) % WRITE_MAX : 1 + (r >> 8) % 64;
		ssize_t n;

		if (len > w->total - w->sent)
			len = w->total - w->sent;
		n = write(w->fd, p + (w->sent & 255), len);
		if (n <= 0) {
			w->err = n < 0 ? errno : EIO;
			break;
		}
		w->sent += n;
	}
	free(p);
out:
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

struct slot {
	unsigned char *buf;
	long id;	/* 0: free */
	uint32_t len;
	bool waitall;
	bool done;
	uint32_t got;
};

/*
 * Up to STREAM_SLOTS requests of random sizes (some with MSG_WAITALL) stay
 * pending while a thread writes the stream in random chunks. Completions of
 * one socket come in submission order, so each event must be for the oldest
 * request not yet completed, and the requests, taken in that order, must
 * hold the stream exactly.
 */
static void stream(struct __test_metadata *_metadata, FIXTURE_DATA(naio) *self,
		   uint64_t total, size_t recv_max, int seconds)
{
	struct writer w = { .fd = self->s[0], .total = total, .seed = 0x5eed0001 };
	struct slot slot[STREAM_SLOTS];
	int fifo[STREAM_SLOTS], head = 0, pending = 0;
	uint64_t s = 0x5eed0002, off = 0, requests = 0;
	uint64_t deadline = now_ns() + (uint64_t)seconds * 1000000000ull;
	long base = pins_settled(), last_id = 0;
	struct ukevent out[8];
	bool eof = false;
	pthread_t t;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	for (int i = 0; i < STREAM_SLOTS; i++) {
		slot[i].buf = malloc(recv_max);
		ASSERT_NE(NULL, slot[i].buf);
		slot[i].id = 0;
	}
	ASSERT_EQ(0, pthread_create(&t, NULL, writer_main, &w));
	while (!eof || pending) {
		int n;

		/* Keep every slot busy until the end of the stream shows. */
		while (!eof && pending < STREAM_SLOTS) {
			uint64_t r = rnd(&s);
			struct slot *sl;
			int i = 0;

			while (slot[i].id)
				i++;
			sl = &slot[i];
			sl->len = r & 3 ? 1 + (r >> 8) % recv_max : 1 + (r >> 8) % 64;
			sl->waitall = !((r >> 40) & 3);
			sl->done = false;
			sl->got = 0;
			sl->id = aio_recv(self->q, self->s[1], sl->buf, sl->len,
					  sl->waitall ? MSG_WAITALL : 0);
			ASSERT_LT(last_id, sl->id) TH_LOG("aio_recv: %s", strerror(errno));
			last_id = sl->id;
			fifo[(head + pending) % STREAM_SLOTS] = i;
			pending++;
			requests++;
		}
		n = harvest(self->q, 1, 8, out, 5000);
		ASSERT_LT(0, n) TH_LOG("stalled at byte %llu of %llu (%d pending, writer at %llu)",
				       (unsigned long long)off, (unsigned long long)total, pending,
				       (unsigned long long)w.sent);
		for (int j = 0; j < n; j++) {
			struct slot *sl = NULL;
			int k;

			for (k = 0; k < pending; k++) {
				sl = &slot[fifo[(head + k) % STREAM_SLOTS]];
				if (!sl->done)
					break;
			}
			ASSERT_LT(k, pending) TH_LOG("event for %llu with nothing pending",
						     (unsigned long long)out[j].id.raw_u64);
			ASSERT_EQ((uint64_t)sl->id, out[j].id.raw_u64) TH_LOG("out of order");
			ASSERT_EQ((uint32_t)KEVENT_NAIO, out[j].type);
			ASSERT_EQ(0u, out[j].ret_data[1]);
			ASSERT_GE(sl->len, out[j].ret_data[0]);
			sl->done = true;
			sl->got = out[j].ret_data[0];
		}
		/* Check the data in stream order and free the slots. */
		while (pending && slot[fifo[head]].done) {
			struct slot *sl = &slot[fifo[head]];
			size_t bad = pat_mismatch(sl->buf, off, sl->got);

			ASSERT_EQ((size_t)sl->got, bad) TH_LOG("stream byte %llu is wrong",
							       (unsigned long long)(off + bad));
			if (!sl->got) {
				eof = true;
			} else if (sl->waitall && sl->got < sl->len) {
				/* Short only at the end of the stream. */
				ASSERT_EQ(total, off + sl->got);
			}
			off += sl->got;
			ASSERT_GE(total, off);
			sl->id = 0;
			head = (head + 1) % STREAM_SLOTS;
			pending--;
		}
		ASSERT_LT(now_ns(), deadline) TH_LOG("at byte %llu after %llu requests",
						     (unsigned long long)off,
						     (unsigned long long)requests);
	}
	EXPECT_EQ(total, off);
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(0, w.err);
	EXPECT_EQ(total, w.sent);
	EXPECT_EQ(0, harvest(self->q, 1, 8, out, QUIET_MS));
	closefd(&self->q);
	EXPECT_EQ(base, pins_back_to(base));
	for (int i = 0; i < STREAM_SLOTS; i++)
		free(slot[i].buf);
}

TEST_F_TIMEOUT(naio, stream_exact, 90)
{
	stream(_metadata, self, STREAM_BYTES, RECV_MAX, 45);
}

/*
 * A gibibyte, in requests of up to a mebibyte: long enough for the receive
 * buffer autotuning, window updates and memory accounting of a real stream.
 * Once (over IPv4); a quarter of it on the debug kernel (lockdep, KASAN),
 * which moves data about ten times slower.
 */
TEST_F_TIMEOUT(naio, stream_1gib, 600)
{
	bool debug = access("/proc/lockdep", F_OK) == 0;

	if (variant->family != AF_INET)
		SKIP(return, "the gibibyte stream runs once, over IPv4");
	if (debug)
		TH_LOG("debug kernel: 256 MiB instead of 1 GiB");
	stream(_metadata, self, debug ? 256ull << 20 : 1ull << 30, 1 << 20, 540);
}

TEST_HARNESS_MAIN
