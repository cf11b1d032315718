// SPDX-License-Identifier: GPL-2.0
/*
 * Network AIO sends: aio_send() on connected TCP (IPv4 and IPv6) and UDP
 * sockets, each request completed by one KEVENT_NAIO event whose ret_data[0]
 * is the bytes sent and ret_data[1] 0 or -errno.
 *
 * Covers the completion event (its fields, KEVENT_RET_COPIED), small sends
 * copied at submission and larger ones sent without a copy (straight from
 * the caller's memory when the socket takes them at once, else from pinned
 * pages given back when the event is harvested), the order of many requests
 * on one socket and the bytes the peer receives, requests that wait for a
 * full socket and continue on their own (without holding up other sockets),
 * a buffer overwritten right after its completion, cancellation (idle,
 * started, finished, unknown, and racing the completion), errors after
 * submission (peer reset, shut down for writing), a request outliving the
 * socket's descriptor, closing the queue with requests pending (and while
 * they are being sent: the peer must see a prefix of the stream),
 * unreadable buffers, read-only buffers, every argument error,
 * RLIMIT_MEMLOCK, UDP datagrams (sizes, EMSGSIZE, a tiny send buffer, a
 * refused destination), and 16 sockets x 32 requests whose completions are
 * taken from the mmap'd ring. Page pins are counted with
 * nr_foll_pin_acquired and nr_foll_pin_released of /proc/vmstat. Every
 * stream carries a hashed pattern, so that a byte out of place is seen and a
 * failure can say which request the bytes came from.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
/* Sends of at most this many bytes are copied at submission (send.rs COPY_MAX). */
#define COPY_MAX	4096
/* The peer's receive buffer of the default pair: large sends complete unread. */
#define BIG_RCVBUF	(4 << 20)
/* Buffers of a pair that fills up quickly: a few tens of KiB in flight. */
#define SMALL_RCVBUF	16384
#define SMALL_SNDBUF	16384

/*
 * Byte @i of every test stream: a hash of @i, so that no run of bytes shows
 * up anywhere else (a pattern that repeats every 256 bytes would not see a
 * page sent twice, skipped or out of place, and a linear one repeats runs of
 * bytes at other offsets).
 */
static inline unsigned char pat(uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;

	x ^= x >> 31;
	x *= 0xd6e8feb86659fd93ull;
	return (unsigned char)(x >> 56);
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

/* Where in the pattern (below @limit) the bytes at @p come from (8 of them, or all @n), or -1. */
static long find_in_pattern(const unsigned char *p, size_t n, uint64_t limit)
{
	size_t k = n < 8 ? n : 8;

	for (uint64_t a = 0; a < limit; a++)
		if (pat_mismatch(p, a, k) == k)
			return (long)a;
	return -1;
}

/*
 * Describes @got (@n bytes received) as slices of the pattern, for a
 * failure report: "at:[from,to)" for each run of consecutive pattern bytes.
 */
static void describe_stream(struct __test_metadata *_metadata, const unsigned char *got, size_t n,
			    uint64_t limit, size_t at)
{
	char line[600];
	size_t pos = 0, len = 0;

	line[0] = 0;
	while (pos < n && len < sizeof(line) - 64) {
		long a = find_in_pattern(got + pos, n - pos, limit);
		size_t m;

		if (a < 0) {
			len += snprintf(line + len, sizeof(line) - len, " %zu:unknown (%02x %02x %02x %02x)",
					at + pos, got[pos], n - pos > 1 ? got[pos + 1] : 0,
					n - pos > 2 ? got[pos + 2] : 0, n - pos > 3 ? got[pos + 3] : 0);
			break;
		}
		m = pat_mismatch(got + pos, a, n - pos);
		len += snprintf(line + len, sizeof(line) - len, " %zu:[%ld,%zu)", at + pos, a, a + m);
		pos += m;
	}
	TH_LOG("the %zu bytes received from stream byte %zu on, as slices of the pattern:%s%s", n,
	       at, line, pos < n ? " ..." : "");
}

static void *map_rw(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Sets a buffer size beyond the sysctl maximum if allowed (root), else within it. */
static int set_buf(int fd, int force_opt, int opt, int bytes)
{
	if (!setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof(bytes)))
		return 0;
	return setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
}

static void loopback(int family, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = family;
	if (family == AF_INET) {
		((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
		*len = sizeof(struct sockaddr_in6);
	}
}

static int set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = SOCK_TIMEOUT_S };

	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	       setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * A connected TCP pair over loopback (v4 or v6): fds[0] is the peer (the
 * client), which reads; fds[1] the accepted socket the tests give aio_send().
 * @rcvbuf (the peer's, set before connecting so that the window follows it)
 * and @sndbuf (the sender's): 0 keeps the default.
 */
static int tcp_pair_buf(int family, int fds[2], int rcvbuf, int sndbuf)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret = -1;

	fds[0] = fds[1] = -1;
	if (l < 0)
		return -1;
	loopback(family, &ss, &len);
	if (bind(l, (void *)&ss, len) || listen(l, 16) || getsockname(l, (void *)&ss, &len))
		goto out;
	fds[0] = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fds[0] < 0 || (rcvbuf && set_buf(fds[0], SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf)) ||
	    connect(fds[0], (void *)&ss, len))
		goto out;
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] < 0 || (sndbuf && set_buf(fds[1], SO_SNDBUFFORCE, SO_SNDBUF, sndbuf)))
		goto out;
	ret = 0;
	for (int i = 0; i < 2; i++)
		if (setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
		    set_timeouts(fds[i]))
			ret = -1;
out:
	close(l);
	return ret;
}

/* A connected UDP pair over loopback: fds[0] receives, fds[1] sends (connected to it). */
static int udp_pair(int family, int fds[2], int rcvbuf)
{
	struct sockaddr_storage ss;
	socklen_t len;

	fds[1] = -1;
	fds[0] = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fds[0] < 0)
		return -1;
	loopback(family, &ss, &len);
	if (bind(fds[0], (void *)&ss, len) || getsockname(fds[0], (void *)&ss, &len) ||
	    (rcvbuf && set_buf(fds[0], SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf)) || set_timeouts(fds[0]))
		return -1;
	fds[1] = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fds[1] < 0 || connect(fds[1], (void *)&ss, len) || set_timeouts(fds[1]))
		return -1;
	return 0;
}

/* Reads up to @len bytes from @fd within @ms; returns how many it got. */
static size_t read_full(int fd, void *buf, size_t len, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
	size_t got = 0;

	while (got < len) {
		uint64_t now = now_ns();
		ssize_t n;

		if (now >= end || !wait_for(fd, POLLIN, (int)((end - now) / 1000000) + 1))
			break;
		n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

/* Whether nothing (no data, no end of stream) shows on @fd for @ms. */
static bool peer_quiet(int fd, int ms)
{
	return !wait_for(fd, POLLIN | POLLRDHUP, ms);
}

/* Reads what arrives on @fd until nothing more comes for @quiet_ms (at most @max bytes). */
static size_t read_quiet(int fd, void *buf, size_t max, int quiet_ms)
{
	size_t got = 0;

	while (got < max && wait_for(fd, POLLIN, quiet_ms)) {
		ssize_t n = recv(fd, (char *)buf + got, max - got, MSG_DONTWAIT);

		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

/* Fills the send side of @fd with zeros until it takes no more; returns the bytes written. */
static size_t fill_socket(int fd)
{
	static const unsigned char zeros[65536];
	size_t total = 0;

	for (;;) {
		ssize_t n = send(fd, zeros, sizeof(zeros), MSG_DONTWAIT);

		if (n <= 0)
			break;
		total += n;
	}
	return total;
}

/*
 * Fills @fd until the peer's window is closed too: nothing moves for 100 ms
 * and the socket takes no more. Returns the bytes written.
 */
static size_t fill_socket_full(int fd)
{
	size_t total = fill_socket(fd);

	while (wait_for(fd, POLLOUT, 100))
		total += fill_socket(fd);
	return total + fill_socket(fd);
}

/*
 * The completion of request @id: @bytes sent, @err 0 or -errno. Over loopback
 * every byte sent was copied (local delivery copies): KEVENT_RET_COPIED
 * whenever something was sent, never for an empty result.
 */
static void check_event(struct __test_metadata *_metadata, const struct ukevent *e, long id,
			uint32_t bytes, int err)
{
	EXPECT_EQ((uint32_t)KEVENT_NAIO, e->type);
	EXPECT_EQ((uint64_t)id, e->id.raw_u64);
	EXPECT_EQ((uint32_t)KEVENT_SOCKET_SEND, e->event);
	EXPECT_EQ((uint32_t)KEVENT_REQ_ONESHOT, e->req_flags & KEVENT_REQ_ONESHOT);
	if (!bytes) {
		EXPECT_EQ(0u, e->ret_flags);
	} else if (!err) {
		EXPECT_EQ((uint32_t)KEVENT_RET_COPIED, e->ret_flags);
	} else {
		EXPECT_EQ(0u, e->ret_flags & ~(uint32_t)KEVENT_RET_COPIED);
	}
	EXPECT_EQ(bytes, e->ret_data[0]);
	EXPECT_EQ((uint32_t)err, e->ret_data[1]);
	EXPECT_EQ(0ull, (unsigned long long)e->user);
}

/* Waits up to @ms for the pinned count to come back to @want; returns the last count. */
static long pins_back_within(long want, int ms)
{
	long cur = pins_held();

	for (int i = 0; i < ms / 20 && cur != want; i++) {
		usleep(20000);
		cur = pins_held();
	}
	return cur;
}

/*
 * The requests of one socket, for checking their completions: each is a
 * slice [off, off + len) of the pattern stream.
 */
struct req {
	long id;
	uint64_t off;
	uint32_t len;
	bool seen;
};

/*
 * Matches completion @e to one of the @n requests of a socket and checks it:
 * a request completes once, with all of its bytes, and not before the
 * requests submitted earlier could have: a copied one (at most COPY_MAX
 * bytes) completes when the socket took it, so after every earlier copied
 * one; a pinned one when the stack released its pages, which is after every
 * earlier request. Returns the index of the request, or -1.
 */
static int find_req(const struct req *r, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (id == (uint64_t)r[i].id)
			return i;
	return -1;
}

static int match_event(struct __test_metadata *_metadata, struct req *r, int n,
		       const struct ukevent *e)
{
	int i = find_req(r, n, e->id.raw_u64);

	if (i < 0)
		i = n;
	EXPECT_GT(n, i) TH_LOG("event for unknown request %llu",
			       (unsigned long long)e->id.raw_u64);
	if (i == n)
		return -1;
	EXPECT_FALSE(r[i].seen) TH_LOG("second event for request %d", i);
	check_event(_metadata, e, r[i].id, r[i].len, 0);
	/*
	 * A request never completes before an earlier copied one (copied
	 * requests complete when the socket took them, in send order). Zero-copy
	 * completions come in order in the common case only: as with
	 * MSG_ZEROCOPY, a retransmitted skb can hold an earlier request's pages
	 * after a later one's were released.
	 */
	for (int j = 0; j < i; j++) {
		if (r[j].len <= COPY_MAX) {
			EXPECT_TRUE(r[j].seen) TH_LOG("request %d (%u bytes) completed before %d (%u bytes)",
						      i, r[i].len, j, r[j].len);
		}
	}
	r[i].seen = true;
	return i;
}

/* Compares @got (@n bytes received) to the requests' slices in order; returns the requests' total. */
static size_t check_stream(struct __test_metadata *_metadata, const unsigned char *got, size_t n,
			   const struct req *r, int nr)
{
	uint64_t limit = 0;
	size_t pos = 0;

	for (int i = 0; i < nr; i++)
		if (limit < r[i].off + r[i].len)
			limit = r[i].off + r[i].len;
	for (int i = 0; i < nr; i++) {
		size_t len = r[i].len, bad;

		if (pos + len > n) {
			EXPECT_GE(n, pos + len) TH_LOG("stream ends in request %d", i);
			return pos + len;
		}
		bad = pat_mismatch(got + pos, r[i].off, len);
		EXPECT_EQ(len, bad) TH_LOG("request %d (pattern [%llu,%llu)): byte %zu is wrong (stream byte %zu)",
					   i, (unsigned long long)r[i].off,
					   (unsigned long long)(r[i].off + len), bad, pos + bad);
		if (bad != len) {
			describe_stream(_metadata, got + pos, n - pos, limit, pos);
			return pos + len;
		}
		pos += len;
	}
	return pos;
}

/* A thread reading @want bytes from @fd. */
struct reader {
	int fd;
	unsigned char *buf;
	size_t want;
	int ms;
	size_t got;	/* out */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->got = read_full(r->fd, r->buf, r->want, r->ms);
	return NULL;
}

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

/* Nothing was registered or sent: no event comes, the peer gets nothing. */
static void check_nothing_sent(struct __test_metadata *_metadata, int q, int peer)
{
	struct ukevent out[4];

	EXPECT_EQ(0, harvest(q, 1, 4, out, QUIET_MS));
	EXPECT_TRUE(peer_quiet(peer, 0));
}

FIXTURE(send) {
	int q;
	int s[2];	/* s[0]: the peer, which reads; s[1]: the socket aio_send() writes */
};

FIXTURE_VARIANT(send) {
	int family;
};

FIXTURE_VARIANT_ADD(send, v4) {
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(send, v6) {
	.family = AF_INET6,
};

FIXTURE_SETUP(send)
{
	self->s[0] = self->s[1] = -1;
	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
	ASSERT_EQ(0, tcp_pair_buf(variant->family, self->s, BIG_RCVBUF, 0));
}

FIXTURE_TEARDOWN(send)
{
	closefd(&self->q);
	closefd(&self->s[0]);
	closefd(&self->s[1]);
}

/* Replaces the fixture's pair with one that fills up after a few tens of KiB. */
static void small_pair(struct __test_metadata *_metadata, int s[2], int family)
{
	closefd(&s[0]);
	closefd(&s[1]);
	ASSERT_EQ(0, tcp_pair_buf(family, s, SMALL_RCVBUF, SMALL_SNDBUF));
}

/* ---- completion ---- */

TEST_F(send, basic_small)
{
	unsigned char msg[COPY_MAX], got[COPY_MAX + 16];
	long base = pins_settled(), id, id2, id3;
	struct ukevent out[4];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	fill_pat(msg, 0, sizeof(msg));
	id = aio_send(self->q, self->s[1], msg, 13, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 13, 0);
	ASSERT_EQ(13, read_full(self->s[0], got, 13, EVENT_MS));
	EXPECT_EQ(0, memcmp(got, msg, 13));
	/* One event per request, and the request is gone once delivered. */
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, id));
	EXPECT_TRUE(peer_quiet(self->s[0], 0));

	/* One byte, with a later id. */
	id2 = aio_send(self->q, self->s[1], msg + 13, 1, 0);
	ASSERT_LT(id, id2) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id2, 1, 0);
	ASSERT_EQ(1, read_full(self->s[0], got, 1, EVENT_MS));
	EXPECT_EQ(msg[13], got[0]);

	/*
	 * The largest copied send: copied at submission, so the buffer may be
	 * overwritten as soon as the call returns; no page is pinned.
	 */
	id3 = aio_send(self->q, self->s[1], msg, COPY_MAX, 0);
	ASSERT_LT(id2, id3) TH_LOG("aio_send: %s", strerror(errno));
	memset(msg, 0x5a, sizeof(msg));
	EXPECT_EQ(base, pins_held());
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id3, COPY_MAX, 0);
	ASSERT_EQ(COPY_MAX, read_full(self->s[0], got, COPY_MAX, EVENT_MS));
	EXPECT_EQ(COPY_MAX, pat_mismatch(got, 0, COPY_MAX));
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(base, pins_held());
}

/* Sends byte @i with aio_send(); the socket takes it at once. */
static int64_t send_one(struct kevent_queue *q, int i, void *arg)
{
	unsigned char msg = (unsigned char)i;

	return kevent_queue_aio_send(q, *(int *)arg, &msg, 1, 0);
}

/*
 * A ring consumer that never calls into the queue can go on sending: each
 * aio_send() reaps the requests delivered before it (see naio_test's
 * ring_consumer_never_waits). Before, the 101st failed with ENOSPC with
 * max_user_kevents at 100.
 */
TEST_F(send, ring_consumer_never_waits)
{
	unsigned char got[1000];
	struct kevent_queue q;
	int done, err;

	ASSERT_EQ(0, kevent_queue_init(&q, 64, 0));
	done = ring_only_requests(&q, 1000, send_one, &self->s[1], &err);
	EXPECT_EQ(1000, done) TH_LOG("request %d: %s", done, strerror(-err));
	EXPECT_EQ(0, err);
	ASSERT_LT(0, done);
	ASSERT_EQ(done, read_full(self->s[0], got, done, EVENT_MS));
	for (int i = 0; i < done; i++)
		EXPECT_EQ((unsigned char)i, got[i]);
	kevent_queue_exit(&q);
}

/* Ids come from one counter for sends and receives. */
TEST_F(send, ids_shared_with_recv)
{
	unsigned char msg[8] = "abcdefg", buf[8];
	long a, b, c;
	struct ukevent out[4];

	a = aio_send(self->q, self->s[1], msg, 3, 0);
	b = aio_recv(self->q, self->s[1], buf, sizeof(buf), 0);
	c = aio_send(self->q, self->s[1], msg, 3, 0);
	ASSERT_LT(0, a) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_LT(a, b) TH_LOG("aio_recv: %s", strerror(errno));
	ASSERT_LT(b, c) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(2, collect(self->q, out, 2, EVENT_MS));
	check_event(_metadata, &out[0], a, 3, 0);
	check_event(_metadata, &out[1], c, 3, 0);
	EXPECT_EQ(0, cancel_req(self->q, b));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	EXPECT_EQ((uint64_t)b, out[0].id.raw_u64);
	EXPECT_EQ((uint32_t)KEVENT_SOCKET_RECV, out[0].event);
	EXPECT_EQ((uint32_t)-ECANCELED, out[0].ret_data[1]);
}

/*
 * A large send that the socket takes at once leaves straight from the
 * caller's memory: no page is pinned (the stack holds page references until
 * it releases them, then the event comes), and nothing is left pinned after.
 */
TEST_F(send, basic_large)
{
	const size_t len = 100000, off = 123;
	size_t pg = page_size(), npages = (off + len + pg - 1) / pg;
	unsigned char *m = map_rw(npages * pg), *got = malloc(len + 16);
	long base = pins_settled(), id, held;
	struct ukevent out[4];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, got);
	fill_pat(m + off, 0, len);
	id = aio_send(self->q, self->s[1], m + off, len, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	/* Completed (the peer's buffer takes it all), never pinned. */
	ASSERT_TRUE(wait_for(self->q, POLLIN, EVENT_MS));
	held = pins_held();
	EXPECT_EQ(base, held) TH_LOG("%ld pages pinned, want none", held - base);
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, len, 0);
	EXPECT_EQ(base, pins_back_to(base));
	/* The data, and nothing else; the buffer was only read. */
	ASSERT_EQ(len, read_full(self->s[0], got, len, EVENT_MS));
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
	EXPECT_EQ(len, pat_mismatch(got, 0, len));
	EXPECT_EQ(len, pat_mismatch(m + off, 0, len));
	EXPECT_TRUE(all_bytes(m, 0, off));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, id));
	/* One byte more than copied sends take: zero-copy too. */
	id = aio_send(self->q, self->s[1], m + off, COPY_MAX + 1, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_TRUE(wait_for(self->q, POLLIN, EVENT_MS));
	EXPECT_EQ(base, pins_held());
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, COPY_MAX + 1, 0);
	EXPECT_EQ(base, pins_back_to(base));
	ASSERT_EQ(COPY_MAX + 1, read_full(self->s[0], got, COPY_MAX + 1, EVENT_MS));
	EXPECT_EQ(COPY_MAX + 1, pat_mismatch(got, 0, COPY_MAX + 1));
	/* Completed and never harvested: closing the queue is clean. */
	id = aio_send(self->q, self->s[1], m + off, len, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_TRUE(wait_for(self->q, POLLIN, EVENT_MS));
	EXPECT_EQ(base, pins_held());
	closefd(&self->q);
	EXPECT_EQ(base, pins_back_to(base));
	ASSERT_EQ(len, read_full(self->s[0], got, len, EVENT_MS));
	EXPECT_EQ(len, pat_mismatch(got, 0, len));
	munmap(m, npages * pg);
	free(got);
}

/* ---- order ---- */

#define ORDER_REQS	64
#define ORDER_MAX	300000
#define ORDER_SRC	(1 << 20)

/*
 * 64 requests of random sizes (1 to 300,000 bytes, a quarter of them at
 * most 64) from one pattern buffer, submitted at once: the peer receives
 * exactly their bytes, in submission order, and each completes once with
 * all of its bytes.
 */
TEST_F_TIMEOUT(send, order_many, 90)
{
	unsigned char *src = map_rw(ORDER_SRC + ORDER_MAX), *got;
	struct req r[ORDER_REQS];
	struct ukevent out[16];
	struct reader rd = { .fd = self->s[0], .ms = 60000 };
	long base = pins_settled(), last = 0;
	uint64_t s = 0x5eed5e1d;
	size_t total = 0;
	int seen = 0;
	pthread_t t;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	fill_pat(src, 0, ORDER_SRC + ORDER_MAX);
	for (int i = 0; i < ORDER_REQS; i++) {
		uint64_t x = rnd(&s);

		r[i].len = x & 3 ? 1 + (x >> 8) % ORDER_MAX : 1 + (x >> 8) % 64;
		r[i].off = (x >> 32) % ORDER_SRC;
		r[i].seen = false;
		total += r[i].len;
	}
	got = malloc(total + 1);
	ASSERT_NE(NULL, got);
	rd.buf = got;
	rd.want = total;
	ASSERT_EQ(0, pthread_create(&t, NULL, reader_main, &rd));
	for (int i = 0; i < ORDER_REQS; i++) {
		r[i].id = aio_send(self->q, self->s[1], src + r[i].off, r[i].len, 0);
		ASSERT_LT(last, r[i].id) TH_LOG("request %d: %s", i, strerror(errno));
		last = r[i].id;
	}
	while (seen < ORDER_REQS) {
		int n = harvest(self->q, 1, 16, out, 30000);

		ASSERT_LT(0, n) TH_LOG("%d of %d completed", seen, ORDER_REQS);
		for (int j = 0; j < n; j++) {
			ASSERT_LE(0, match_event(_metadata, r, ORDER_REQS, &out[j]));
		}
		seen += n;
	}
	pthread_join(t, NULL);
	EXPECT_EQ(total, rd.got) TH_LOG("%zu bytes sent, %zu received", total, rd.got);
	check_stream(_metadata, got, rd.got, r, ORDER_REQS);
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	TH_LOG("%zu bytes in %d requests", total, ORDER_REQS);
	free(got);
	munmap(src, ORDER_SRC + ORDER_MAX);
}

/*
 * The peer does not read: the socket fills, the requests wait without an
 * event. When the peer reads, they continue on their own (no system call on
 * the queue) and complete.
 */
TEST_F(send, blocked_continues)
{
	static const uint32_t lens[] = { 200000, 3000, 100000, 1, 70000 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	unsigned char *src = map_rw(1 << 20), *got;
	long base = pins_settled();
	struct ukevent out[8];
	struct req r[N];
	size_t total = 0;
	int seen = 0;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	small_pair(_metadata, self->s, variant->family);
	fill_pat(src, 0, 1 << 20);
	for (int i = 0; i < N; i++) {
		r[i] = (struct req){ .off = total, .len = lens[i] };
		total += lens[i];
		r[i].id = aio_send(self->q, self->s[1], src + r[i].off, r[i].len, 0);
		ASSERT_LT(i ? r[i - 1].id : 0, r[i].id) TH_LOG("aio_send: %s", strerror(errno));
	}
	/* The first request does not fit: nothing completes, the socket is full. */
	EXPECT_EQ(0, harvest(self->q, 1, 8, out, 2 * QUIET_MS));
	EXPECT_FALSE(wait_for(self->s[1], POLLOUT, 0));
	EXPECT_TRUE(wait_for(self->s[0], POLLIN, 0));
	/* Everything arrives while the peer reads, in order. */
	got = malloc(total + 1);
	ASSERT_NE(NULL, got);
	EXPECT_EQ(total, read_full(self->s[0], got, total, 10000));
	check_stream(_metadata, got, total, r, N);
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
	while (seen < N) {
		int n = collect(self->q, out, N - seen, EVENT_MS);

		ASSERT_LT(0, n) TH_LOG("%d of %d completed", seen, N);
		for (int j = 0; j < n; j++) {
			ASSERT_LE(0, match_event(_metadata, r, N, &out[j]));
		}
		seen += n;
	}
	EXPECT_EQ(0, harvest(self->q, 1, 8, out, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	free(got);
	munmap(src, 1 << 20);
}

/*
 * Sockets do not wait for each other: while one is full (its peer does not
 * read) with requests waiting, another one's requests, copied and pinned,
 * complete at once; the first continues when its peer reads.
 */
TEST_F(send, independent_sockets)
{
	const size_t len = 500000;
	unsigned char *src = map_rw(len), *got = malloc(len);
	long base = pins_settled(), a, b, c, d;
	struct ukevent out[4];
	struct req r[2];
	int x[2];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	fill_pat(src, 0, len);
	ASSERT_EQ(0, tcp_pair_buf(variant->family, x, SMALL_RCVBUF, SMALL_SNDBUF));
	a = aio_send(self->q, x[1], src, len, 0);
	b = aio_send(self->q, x[1], src, 10, 0);
	ASSERT_LT(0, a) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_LT(a, b) TH_LOG("aio_send: %s", strerror(errno));
	c = aio_send(self->q, self->s[1], src + 1, 100, 0);
	d = aio_send(self->q, self->s[1], src + 101, 30000, 0);
	ASSERT_LT(b, c) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_LT(c, d) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(2, collect(self->q, out, 2, EVENT_MS));
	check_event(_metadata, &out[0], c, 100, 0);
	check_event(_metadata, &out[1], d, 30000, 0);
	EXPECT_EQ(30100, read_full(self->s[0], got, 30100, EVENT_MS));
	EXPECT_EQ(30100, pat_mismatch(got, 1, 30100));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(len, read_full(x[0], got, len, 10000));
	EXPECT_EQ(len, pat_mismatch(got, 0, len));
	EXPECT_EQ(10, read_full(x[0], got, 10, EVENT_MS));
	EXPECT_EQ(10, pat_mismatch(got, 0, 10));
	ASSERT_EQ(2, collect(self->q, out, 2, EVENT_MS));
	r[0] = (struct req){ .id = a, .len = len };
	r[1] = (struct req){ .id = b, .len = 10 };
	ASSERT_LE(0, match_event(_metadata, r, 2, &out[0]));
	ASSERT_LE(0, match_event(_metadata, r, 2, &out[1]));
	EXPECT_EQ(base, pins_back_to(base));
	close(x[0]);
	close(x[1]);
	munmap(src, len);
	free(got);
}

/*
 * The buffer may be reused as soon as the completion arrives. Round 0: a
 * send the peer's buffer holds completes before the peer reads anything;
 * the buffer is overwritten, then the peer reads. Rounds 1 and 2: a send
 * that fills a small socket many times over completes while the peer reads
 * (in another thread, started at once or a little later); the buffer is
 * overwritten as soon as the event arrives. The peer must receive the
 * original bytes, all of them.
 */
TEST_F_TIMEOUT(send, overwrite_after_completion, 60)
{
	const size_t len = 2 << 20;
	unsigned char *m = map_rw(len), *got = malloc(len + 1);
	struct reader rd = { .fd = self->s[0], .buf = got, .want = len, .ms = 30000 };
	long base = pins_settled(), id;
	struct ukevent out[4];
	pthread_t t;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, got);
	fill_pat(m, 0, len);
	id = aio_send(self->q, self->s[1], m, len, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, 30000));
	memset(m, 0xee, len);
	check_event(_metadata, &out[0], id, len, 0);
	EXPECT_EQ(base, pins_back_to(base));
	EXPECT_EQ(len, read_full(self->s[0], got, len, 10000));
	EXPECT_EQ(len, pat_mismatch(got, 0, len)) TH_LOG("round 0");
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));

	small_pair(_metadata, self->s, variant->family);
	rd.fd = self->s[0];
	for (int round = 1; round < 3; round++) {
		fill_pat(m, round * 7, len);
		id = aio_send(self->q, self->s[1], m, len, 0);
		ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
		/* Round 2: the peer starts reading only a while after the call returned. */
		if (round == 2)
			usleep(QUIET_MS * 1000);
		ASSERT_EQ(0, pthread_create(&t, NULL, reader_main, &rd));
		ASSERT_EQ(1, collect(self->q, out, 1, 30000));
		memset(m, 0xee, len);
		check_event(_metadata, &out[0], id, len, 0);
		pthread_join(t, NULL);
		EXPECT_EQ(len, rd.got);
		EXPECT_EQ(len, pat_mismatch(got, round * 7, len)) TH_LOG("round %d", round);
		EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
		EXPECT_EQ(base, pins_back_to(base));
	}
	munmap(m, len);
	free(got);
}

/* ---- cancellation ---- */

/* Requests behind one that waits for a full socket have sent nothing: REMOVE cancels them. */
TEST_F(send, cancel_idle)
{
	const size_t alen = 1 << 20;
	unsigned char *src = map_rw(alen + 65536), *got = malloc(alen + 65536);
	long base = pins_settled(), a, b, c, d;
	struct ukevent out[4];
	struct req r[2];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	small_pair(_metadata, self->s, variant->family);
	fill_pat(src, 0, alen + 65536);
	a = aio_send(self->q, self->s[1], src, alen, 0);
	ASSERT_LT(0, a) TH_LOG("aio_send: %s", strerror(errno));
	/* Different bytes: any of them on the stream would show. */
	memset(src + alen, 0xb0, 100);
	memset(src + alen + 4096, 0xc0, 20000);
	b = aio_send(self->q, self->s[1], src + alen, 100, 0);
	c = aio_send(self->q, self->s[1], src + alen + 4096, 20000, 0);
	ASSERT_LT(a, b) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_LT(b, c) TH_LOG("aio_send: %s", strerror(errno));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	/* Cancelled into their one event each: nothing sent, -ECANCELED. */
	EXPECT_EQ(0, cancel_req(self->q, c));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], c, 0, -ECANCELED);
	EXPECT_EQ(0, cancel_req(self->q, b));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], b, 0, -ECANCELED);
	EXPECT_EQ(-ENOENT, cancel_req(self->q, b));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, c));
	/* A later request goes right after the first. */
	d = aio_send(self->q, self->s[1], src + alen + 65536 - 50, 50, 0);
	ASSERT_LT(c, d) TH_LOG("aio_send: %s", strerror(errno));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	r[0] = (struct req){ .id = a, .off = 0, .len = alen };
	r[1] = (struct req){ .id = d, .off = alen + 65536 - 50, .len = 50 };
	EXPECT_EQ(alen + 50, read_full(self->s[0], got, alen + 50, 10000));
	check_stream(_metadata, got, alen + 50, r, 2);
	ASSERT_EQ(2, collect(self->q, out, 2, EVENT_MS));
	ASSERT_LE(0, match_event(_metadata, r, 2, &out[0]));
	ASSERT_LE(0, match_event(_metadata, r, 2, &out[1]));
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, alen + 65536);
	free(got);
}

/*
 * The first request of a socket that was full before it came (filled with
 * send()) has tried and sent nothing: it can be cancelled too, copied or
 * pinned, and nothing of it is ever sent.
 */
TEST_F(send, cancel_idle_head)
{
	unsigned char *src = map_rw(65536), *got = malloc(1 << 20);
	long base = pins_settled();
	struct ukevent out[4];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	memset(src, 0xa5, 65536);
	small_pair(_metadata, self->s, variant->family);
	for (int k = 0; k < 2; k++) {
		size_t plug = fill_socket_full(self->s[1]), len = k ? 30000 : 1000;
		long id, id2;

		ASSERT_LT(0, plug);
		id = aio_send(self->q, self->s[1], src, len, 0);
		id2 = aio_send(self->q, self->s[1], src + 40000, 100, 0);
		ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
		ASSERT_LT(id, id2) TH_LOG("aio_send: %s", strerror(errno));
		EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
		EXPECT_EQ(0, cancel_req(self->q, id));
		ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS)) TH_LOG("%zu bytes", len);
		check_event(_metadata, &out[0], id, 0, -ECANCELED);
		EXPECT_EQ(0, cancel_req(self->q, id2));
		ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
		check_event(_metadata, &out[0], id2, 0, -ECANCELED);
		/* The peer gets the zeros of send(), then nothing. */
		EXPECT_EQ(plug, read_full(self->s[0], got, plug, EVENT_MS)) TH_LOG("%zu bytes", len);
		EXPECT_TRUE(all_bytes(got, 0, plug));
		EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
		EXPECT_EQ(base, pins_back_to(base));
	}
	munmap(src, 65536);
	free(got);
}

/*
 * A request that has started keeps its normal completion; so does one that
 * has finished (its event is not harvested yet). Either way, one event.
 */
TEST_F(send, cancel_started)
{
	const size_t len = 1 << 20;
	unsigned char *src = map_rw(len), *got = malloc(len + 1);
	long base = pins_settled(), id;
	struct ukevent out[4];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	small_pair(_metadata, self->s, variant->family);
	fill_pat(src, 0, len);
	id = aio_send(self->q, self->s[1], src, len, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	/* Part of it is on the socket. */
	ASSERT_TRUE(wait_for(self->s[0], POLLIN, EVENT_MS));
	EXPECT_EQ(0, cancel_req(self->q, id));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(len, read_full(self->s[0], got, len, 10000));
	EXPECT_EQ(len, pat_mismatch(got, 0, len));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, len, 0);
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, id));

	/* Finished, event waiting: REMOVE leaves the completion as it is. */
	for (int k = 0; k < 2; k++) {
		size_t n = k ? 20000 : 500;

		id = aio_send(self->q, self->s[1], src, n, 0);
		ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
		ASSERT_TRUE(wait_for(self->q, POLLIN, EVENT_MS)) TH_LOG("%zu bytes", n);
		EXPECT_EQ(0, cancel_req(self->q, id));
		ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
		check_event(_metadata, &out[0], id, n, 0);
		EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
		EXPECT_EQ(-ENOENT, cancel_req(self->q, id));
		EXPECT_EQ(n, read_full(self->s[0], got, n, EVENT_MS));
		EXPECT_EQ(n, pat_mismatch(got, 0, n));
		EXPECT_TRUE(peer_quiet(self->s[0], 0));
	}
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, len);
	free(got);
}

/* Requests are made by aio_send() only; an unknown id cannot be removed. */
TEST_F(send, cancel_unknown)
{
	struct ukevent e = uev(KEVENT_NAIO, 1, KEVENT_SOCKET_SEND, KEVENT_REQ_ONESHOT), out[4];
	unsigned char msg[4] = "abc";
	int q2 = kevent_init(0, 0);
	long id, id2;

	ASSERT_LE(0, q2);
	ASSERT_EQ(1, ctl1(self->q, KEVENT_CTL_ADD, &e));
	EXPECT_EQ((uint32_t)(KEVENT_RET_BROKEN | KEVENT_RET_DONE), e.ret_flags);
	EXPECT_EQ((uint32_t)-EINVAL, e.ret_data[1]);
	EXPECT_EQ(-ENOENT, cancel_req(self->q, 0));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, 1L << 62));
	id = aio_send(self->q, self->s[1], msg, 3, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, id + 1));
	EXPECT_EQ(-ENOENT, cancel_req(self->q, id + 1000));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 3, 0);
	EXPECT_EQ(-ENOENT, cancel_req(self->q, id));
	/* Another queue does not know the request either. */
	id2 = aio_send(self->q, self->s[1], msg, 3, 0);
	ASSERT_LT(id, id2);
	EXPECT_EQ(-ENOENT, cancel_req(q2, id2));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id2, 3, 0);
	close(q2);
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

/*
 * REMOVE racing the completion. Each round fills the socket with zeros
 * (send()), submits a request (copied or pinned, its bytes all equal to a
 * tag of the round), lets a thread read the zeros (which makes room, and
 * the request continues from a worker) and cancels the request after a
 * random delay. Each round ends with exactly one event: cancelled (nothing
 * of the request ever reaches the peer) or complete (all of it does, right
 * after the zeros). The delay adapts so that both outcomes stay frequent.
 * Rounds for 10 seconds (about 1,000 on the emulated VM, 450 on the debug
 * kernel), pins balanced at the end.
 */
struct racer {
	int fd;
	atomic_int round;	/* the round whose plug the reader may read */
	atomic_int done;	/* the last round read */
	atomic_int stop;
	atomic_size_t plug;
	atomic_int bad;		/* the first round that read something wrong */
};

static void *race_reader(void *arg)
{
	static unsigned char buf[1 << 20];
	struct racer *r = arg;
	int last = 0;

	while (!atomic_load(&r->stop)) {
		int now = atomic_load(&r->round);
		size_t plug, n;

		if (now == last) {
			sched_yield();
			continue;
		}
		last = now;
		plug = atomic_load(&r->plug);
		n = read_full(r->fd, buf, plug, EVENT_MS);
		if ((n != plug || !all_bytes(buf, 0, n)) && !atomic_load(&r->bad))
			atomic_store(&r->bad, now);
		atomic_store(&r->done, now);
	}
	return NULL;
}

TEST_F_TIMEOUT(send, cancel_race, 90)
{
	struct racer r = { .fd = -1 };
	unsigned char *src = map_rw(2 * 8192), got[8192];
	long base = pins_settled(), rounds = 0, completed = 0, cancelled = 0, delay = 50;
	uint64_t end = now_ns() + 10ull * 1000000000, seed = 42;
	struct ukevent out[4];
	pthread_t t;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	small_pair(_metadata, self->s, variant->family);
	r.fd = self->s[0];
	ASSERT_EQ(0, pthread_create(&t, NULL, race_reader, &r));
	for (; rounds < 1000000 && now_ns() < end; rounds++) {
		unsigned char tag = 1 + rounds % 255;
		size_t len = rounds & 1 ? 8192 : 1000, plug = fill_socket(self->s[1]);
		uint64_t until;
		long id;
		int ret;

		ASSERT_LT(0, plug) TH_LOG("round %ld", rounds);
		memset(src, tag, len);
		id = aio_send(self->q, self->s[1], src, len, 0);
		ASSERT_LT(0, id) TH_LOG("round %ld: aio_send: %s", rounds, strerror(errno));
		atomic_store(&r.plug, plug);
		atomic_store(&r.round, (int)rounds + 1);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		until = now_ns() + (seed >> 33) % (2 * delay + 1) * 1000;
		while (now_ns() < until)
			;
		ret = cancel_req(self->q, id);
		ASSERT_EQ(0, ret) TH_LOG("round %ld: REMOVE %d", rounds, ret);
		ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS)) TH_LOG("round %ld", rounds);
		ASSERT_EQ((uint64_t)id, out[0].id.raw_u64);
		for (uint64_t lim = now_ns() + EVENT_MS * 1000000ull;
		     atomic_load(&r.done) != rounds + 1 && now_ns() < lim;)
			sched_yield();
		ASSERT_EQ(rounds + 1, atomic_load(&r.done)) TH_LOG("reader stuck");
		ASSERT_EQ(0, atomic_load(&r.bad)) TH_LOG("round %d: plug not read whole, or not zeros",
							 atomic_load(&r.bad));
		if ((int)out[0].ret_data[1] == -ECANCELED) {
			check_event(_metadata, &out[0], id, 0, -ECANCELED);
			ASSERT_TRUE(peer_quiet(self->s[0], 0)) TH_LOG("round %ld", rounds);
			cancelled++;
			delay += delay / 8 + 1;
		} else {
			check_event(_metadata, &out[0], id, len, 0);
			ASSERT_EQ(len, read_full(self->s[0], got, len, EVENT_MS))
				TH_LOG("round %ld", rounds);
			ASSERT_TRUE(all_bytes(got, tag, len)) TH_LOG("round %ld", rounds);
			completed++;
			delay -= delay / 8;
		}
		if (_metadata->exit_code == KSFT_FAIL)
			break;
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%ld rounds: %ld completed, %ld cancelled (delay %ld us)", rounds, completed,
	       cancelled, delay);
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_LE(200, rounds);
	EXPECT_LE(5, completed);
	EXPECT_LE(5, cancelled);
	closefd(&self->q);
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, 2 * 8192);
}

/* ---- errors after submission ---- */

/*
 * The peer resets the connection while requests wait: the first ends with
 * the bytes the socket took before and the error, the others (copied or
 * pinned) with the error and nothing sent. Then the socket is closed and
 * its error reported: new requests are refused.
 */
TEST_F(send, peer_reset)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	const size_t len = 1 << 20;
	unsigned char *src = map_rw(len);
	long base = pins_settled(), id[3];
	struct ukevent out[4], ev[3];
	int err[3];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	small_pair(_metadata, self->s, variant->family);
	fill_pat(src, 0, len);
	id[0] = aio_send(self->q, self->s[1], src, len, 0);
	id[1] = aio_send(self->q, self->s[1], src, 100, 0);
	id[2] = aio_send(self->q, self->s[1], src, 20000, 0);
	ASSERT_LT(0, id[0]) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_LT(id[0], id[1]) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_LT(id[1], id[2]) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_TRUE(wait_for(self->s[0], POLLIN, EVENT_MS));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	ASSERT_EQ(0, setsockopt(self->s[0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	closefd(&self->s[0]);
	ASSERT_EQ(3, collect(self->q, out, 3, EVENT_MS));
	for (int j = 0; j < 3; j++) {
		int i;

		for (i = 0; i < 3 && out[j].id.raw_u64 != (uint64_t)id[i]; i++)
			;
		ASSERT_GT(3, i) TH_LOG("event for unknown request %llu",
				       (unsigned long long)out[j].id.raw_u64);
		ev[i] = out[j];
		id[i] = -id[i];
	}
	for (int i = 0; i < 3; i++) {
		ASSERT_GT(0, id[i]) TH_LOG("no event for request %d", i);
		id[i] = -id[i];
		err[i] = -(int)ev[i].ret_data[1];
		EXPECT_TRUE(err[i] == ECONNRESET || err[i] == EPIPE)
			TH_LOG("request %d: %s", i, strerror(err[i]));
		check_event(_metadata, &ev[i], id[i], i ? 0 : ev[0].ret_data[0], -err[i]);
	}
	EXPECT_LT(0u, ev[0].ret_data[0]);
	EXPECT_GT((uint32_t)len, ev[0].ret_data[0]);
	TH_LOG("first request: %u of %zu bytes, %s; then %s, %s", ev[0].ret_data[0], len,
	       strerror(err[0]), strerror(err[1]), strerror(err[2]));
	/* The reset is reported once (ECONNRESET), then the stream is broken (EPIPE). */
	EXPECT_EQ(1, (err[0] == ECONNRESET) + (err[1] == ECONNRESET) + (err[2] == ECONNRESET));
	EXPECT_FAIL(ENOTCONN, aio_send(self->q, self->s[1], src, 100, 0));
	EXPECT_FAIL(ENOTCONN, aio_send(self->q, self->s[1], src, 20000, 0));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, len);
}

/* A socket shut down for writing takes requests, which fail with EPIPE. */
TEST_F(send, shutdown_wr)
{
	unsigned char *src = map_rw(65536), c;
	long base = pins_settled(), id;
	struct ukevent out[4];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	fill_pat(src, 0, 65536);
	ASSERT_EQ(0, shutdown(self->s[1], SHUT_WR));
	for (int k = 0; k < 2; k++) {
		size_t len = k ? 65536 : 100;

		id = aio_send(self->q, self->s[1], src, len, 0);
		ASSERT_LT(0, id) TH_LOG("aio_send %zu: %s", len, strerror(errno));
		ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
		check_event(_metadata, &out[0], id, 0, -EPIPE);
	}
	/* The peer sees the end of the stream and no data. */
	ASSERT_TRUE(wait_for(self->s[0], POLLIN, EVENT_MS));
	EXPECT_EQ(0, recv(self->s[0], &c, 1, 0));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, 65536);
}

/* ---- lifetime ---- */

/* A request holds the socket's file: closing the descriptor neither ends nor closes it. */
TEST_F(send, close_socket_fd_pending)
{
	const size_t len = 300000;
	unsigned char *src = map_rw(len), *got = malloc(len + 1), c;
	long base = pins_settled(), id;
	struct ukevent out[4];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	small_pair(_metadata, self->s, variant->family);
	fill_pat(src, 0, len);
	id = aio_send(self->q, self->s[1], src, len, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	closefd(&self->s[1]);
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(len, read_full(self->s[0], got, len, 10000));
	EXPECT_EQ(len, pat_mismatch(got, 0, len));
	/* Completed, not harvested: the request still holds the socket open. */
	ASSERT_TRUE(wait_for(self->q, POLLIN, EVENT_MS));
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, len, 0);
	/* Delivered: the request let go of the socket, which closes now. */
	ASSERT_TRUE(wait_for(self->s[0], POLLIN, EVENT_MS));
	EXPECT_EQ(0, recv(self->s[0], &c, 1, 0));
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, len);
	free(got);
}

#define QC_SOCKS	4

/*
 * Closing the queue with requests waiting ends them: every pin is given back
 * (within a few seconds), no more of their bytes are sent, and what the peer
 * got is a prefix of the requests' bytes in order. A socket whose descriptor
 * was closed is released by the queue and ends its stream.
 */
TEST_F_TIMEOUT(send, close_queue_pending, 60)
{
	static const uint32_t lens[] = { 500000, 2000, 100000, 3 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	const size_t total = 500000 + 2000 + 100000 + 3;
	unsigned char *src = map_rw(1 << 20), *got = malloc(total + 1), c;
	int s[QC_SOCKS + 1][2];
	long base = pins_settled(), held;
	struct req r[N];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, got);
	fill_pat(src, 0, 1 << 20);
	for (int i = 0, off = 0; i < N; off += lens[i], i++)
		r[i] = (struct req){ .off = off, .len = lens[i] };
	for (int k = 0; k <= QC_SOCKS; k++) {
		ASSERT_EQ(0, tcp_pair_buf(variant->family, s[k], SMALL_RCVBUF, SMALL_SNDBUF));
		for (int i = 0; i < N; i++) {
			ASSERT_LT(0, aio_send(self->q, s[k][1], src + r[i].off, r[i].len, 0))
				TH_LOG("%d/%d: %s", k, i, strerror(errno));
		}
	}
	/*
	 * Pinned: what waits, which is all of the 100,000-byte request and all
	 * but what each socket took at once of the first one (its small buffers
	 * take far less than 100 KB).
	 */
	held = pins_held();
	EXPECT_LE(base + (QC_SOCKS + 1) * (400000 + 100000) / 4096, held)
		TH_LOG("%ld pages pinned", held - base);
	/* The last socket's descriptor goes: only the queue holds it. */
	closefd(&s[QC_SOCKS][1]);
	closefd(&self->q);
	EXPECT_EQ(base, pins_back_within(base, 5000));
	for (int k = 0; k <= QC_SOCKS; k++) {
		size_t n = read_quiet(s[k][0], got, total + 1, 500), pos = 0;

		/* A prefix of the requests' bytes, in order; never all of them. */
		EXPECT_LT(0, n) TH_LOG("socket %d", k);
		EXPECT_GT(total, n) TH_LOG("socket %d", k);
		for (int i = 0; i < N && pos < n; i++) {
			size_t part = n - pos < r[i].len ? n - pos : r[i].len;
			size_t bad = pat_mismatch(got + pos, r[i].off, part);

			EXPECT_EQ(part, bad) TH_LOG("socket %d request %d (pattern [%llu,%llu)): stream byte %zu",
						    k, i, (unsigned long long)r[i].off,
						    (unsigned long long)(r[i].off + r[i].len), pos + bad);
			if (bad != part) {
				describe_stream(_metadata, got, n, 1 << 20, 0);
				break;
			}
			pos += part;
		}
		if (k == QC_SOCKS) {
			/* Its stream ends there. */
			ASSERT_TRUE(wait_for(s[k][0], POLLIN, EVENT_MS));
			EXPECT_EQ(0, recv(s[k][0], &c, 1, 0));
		} else {
			/* Its socket works as before. */
			EXPECT_TRUE(peer_quiet(s[k][0], QUIET_MS)) TH_LOG("socket %d", k);
			ASSERT_EQ(5, send(s[k][1], "hello", 5, 0));
			EXPECT_EQ(5, read_full(s[k][0], got, 5, EVENT_MS));
			EXPECT_EQ(0, memcmp(got, "hello", 5));
			closefd(&s[k][1]);
		}
		closefd(&s[k][0]);
	}
	EXPECT_EQ(base, pins_held());
	munmap(src, 1 << 20);
	free(got);
}

/* A thread reading what arrives on @fd until nothing more comes for @ms. */
struct quiet_reader {
	int fd;
	unsigned char *buf;
	size_t max;
	int ms;
	size_t got;	/* out */
};

static void *quiet_reader_main(void *arg)
{
	struct quiet_reader *r = arg;

	r->got = read_quiet(r->fd, r->buf, r->max, r->ms);
	return NULL;
}

#define CQ_PAIRS	4

/*
 * The queue is closed while the requests of four sockets are being sent,
 * their peers reading all the time (so the sockets keep reporting write
 * space): what each peer gets must be a prefix of its requests' bytes in
 * order, whose end may fall anywhere; a later request is never sent after
 * an earlier one was cut short. Random delays before the close, rounds for
 * about 4 seconds.
 */
TEST_F_TIMEOUT(send, close_queue_while_sending, 60)
{
	static const uint32_t lens[] = { 1 << 19, 3000, 100000, 10, 300000 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	const size_t total = (1 << 19) + 3000 + 100000 + 10 + 300000;
	unsigned char *src = map_rw(1 << 20), *got[CQ_PAIRS];
	uint64_t end = now_ns() + 4000000000ull, seed = 7;
	long base = pins_settled(), rounds = 0, cut[N + 1] = { 0 };
	int s[CQ_PAIRS][2];
	struct req r[N];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	for (int k = 0; k < CQ_PAIRS; k++) {
		got[k] = malloc(total + 1);
		ASSERT_NE(NULL, got[k]);
	}
	fill_pat(src, 0, 1 << 20);
	for (int i = 0, off = 0; i < N; off += lens[i] + 1000, i++)
		r[i] = (struct req){ .off = off, .len = lens[i] };
	closefd(&self->q);
	for (; now_ns() < end || rounds < 4; rounds++) {
		struct quiet_reader rd[CQ_PAIRS];
		pthread_t t[CQ_PAIRS];

		self->q = kevent_init(0, 0);
		ASSERT_LE(0, self->q);
		for (int k = 0; k < CQ_PAIRS; k++) {
			ASSERT_EQ(0, tcp_pair_buf(variant->family, s[k], SMALL_RCVBUF, SMALL_SNDBUF));
			for (int i = 0; i < N; i++) {
				ASSERT_LT(0, aio_send(self->q, s[k][1], src + r[i].off, r[i].len, 0))
					TH_LOG("round %ld request %d: %s", rounds, i, strerror(errno));
			}
			rd[k] = (struct quiet_reader){ .fd = s[k][0], .buf = got[k], .max = total + 1,
						       .ms = 150 };
			ASSERT_EQ(0, pthread_create(&t[k], NULL, quiet_reader_main, &rd[k]));
		}
		usleep(rnd(&seed) % 20000);
		closefd(&self->q);
		for (int k = 0; k < CQ_PAIRS; k++) {
			size_t pos = 0;
			int i;

			pthread_join(t[k], NULL);
			for (i = 0; i < N && pos < rd[k].got; i++) {
				size_t part = rd[k].got - pos < r[i].len ? rd[k].got - pos : r[i].len;
				size_t bad = pat_mismatch(got[k] + pos, r[i].off, part);

				EXPECT_EQ(part, bad) TH_LOG("round %ld socket %d request %d: stream byte %zu",
							    rounds, k, i, pos + bad);
				if (bad != part) {
					describe_stream(_metadata, got[k], rd[k].got, 1 << 20, 0);
					break;
				}
				pos += part;
			}
			EXPECT_EQ(pos, rd[k].got);
			/* Where the stream was cut: in request i - 1, or after the last one (N). */
			cut[pos == total ? N : i - (i > 0)]++;
			closefd(&s[k][0]);
			closefd(&s[k][1]);
		}
		if (_metadata->exit_code == KSFT_FAIL)
			break;
	}
	TH_LOG("%ld rounds x %d sockets; cut in request 0..%d or complete: %ld %ld %ld %ld %ld %ld",
	       rounds, CQ_PAIRS, N - 1, cut[0], cut[1], cut[2], cut[3], cut[4], cut[5]);
	EXPECT_EQ(base, pins_back_within(base, 5000));
	munmap(src, 1 << 20);
	for (int k = 0; k < CQ_PAIRS; k++)
		free(got[k]);
}

/* ---- buffers ---- */

/* Buffers the kernel cannot read: refused at once, nothing registered, nothing pinned. */
TEST_F(send, efault)
{
	size_t pg = page_size();
	unsigned char *none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *gone = map_rw(2 * pg), *half = map_rw(2 * pg), *mid = map_rw(3 * pg);
	unsigned char *big = map_rw(16 * pg), got[64];
	long base = pins_settled(), id;
	struct ukevent out[4];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(MAP_FAILED, none);
	ASSERT_NE(NULL, gone);
	ASSERT_NE(NULL, half);
	ASSERT_NE(NULL, mid);
	ASSERT_NE(NULL, big);
	ASSERT_EQ(0, munmap(gone, 2 * pg));
	ASSERT_EQ(0, mprotect(half + pg, pg, PROT_NONE));
	ASSERT_EQ(0, mprotect(mid + pg, pg, PROT_NONE));
	ASSERT_EQ(0, munmap(big + 15 * pg, pg));

	/* Copied sends. */
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], NULL, 16, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], gone, 100, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], none, COPY_MAX, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], half + pg - 8, 16, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], (void *)0xffff888000000000ull, 16, 0));
	/* Pinned sends. */
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], NULL, 2 * pg, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], gone, 2 * pg, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], none, pg + 1, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], half, 2 * pg, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], half + 100, pg + 1, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], mid, 3 * pg, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], big, 16 * pg, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], big + 1, 15 * pg, 0));
	/* Kernel addresses, and a range that wraps around. */
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], (void *)0xffff888000000000ull,
				     8 * pg, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], (void *)(UINTPTR_MAX - 100), 200, 0));
	EXPECT_FAIL(EFAULT, aio_send(self->q, self->s[1], (void *)(UINTPTR_MAX - 100),
				     2 * pg, 0));
	check_nothing_sent(_metadata, self->q, self->s[0]);
	EXPECT_EQ(base, pins_back_to(base));
	/* The good parts are fine to send. */
	fill_pat(half, 0, pg);
	id = aio_send(self->q, self->s[1], half + pg - 16, 16, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 16, 0);
	ASSERT_EQ(16, read_full(self->s[0], got, 16, EVENT_MS));
	EXPECT_EQ(16, pat_mismatch(got, pg - 16, 16));
	munmap(none, pg);
	munmap(half, 2 * pg);
	munmap(mid, 3 * pg);
	munmap(big, 15 * pg);
}

/*
 * 1,024 sends whose second page is bad (PROT_NONE, or not mapped), at every
 * offset of the first, pinned and copied: each fails with EFAULT, and the
 * pins taken on the first page are given back.
 */
TEST_F(send, efault_no_pin_leak)
{
	size_t pg = page_size();
	long base = pins_settled();

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	for (int k = 0; k < 2; k++) {
		unsigned char *m = map_rw(2 * pg);
		long bad = 0;

		ASSERT_NE(NULL, m);
		memset(m, 0xaa, 2 * pg);
		ASSERT_EQ(0, k ? munmap(m + pg, pg) : mprotect(m + pg, pg, PROT_NONE));
		for (int i = 0; i < 1024; i++) {
			size_t off = (i * 37) % pg;
			size_t len = i % 4 ? pg + 1 + i % 100 : pg - off + 1;

			errno = 0;
			if (aio_send(self->q, self->s[1], m + off, len, 0) != -1 || errno != EFAULT)
				bad++;
		}
		EXPECT_EQ(0, bad) TH_LOG("second page %s: %ld calls did not fail with EFAULT",
					 k ? "unmapped" : "PROT_NONE", bad);
		EXPECT_EQ(base, pins_back_to(base)) TH_LOG("second page %s",
							    k ? "unmapped" : "PROT_NONE");
		munmap(m, k ? pg : 2 * pg);
	}
	check_nothing_sent(_metadata, self->q, self->s[0]);
	closefd(&self->q);
	EXPECT_EQ(base, pins_back_to(base));
}

/* Sends only read their buffer: read-only mappings are fine, copied or pinned. */
TEST_F(send, prot_read)
{
	size_t pg = page_size();
	unsigned char *m = map_rw(4 * pg), *zero, *got = malloc(8 * pg + 100);
	long base = pins_settled();
	struct ukevent out[4];
	struct req r[3];
	int seen = 0;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, got);
	fill_pat(m, 0, 4 * pg);
	ASSERT_EQ(0, mprotect(m, 4 * pg, PROT_READ));
	/* Never written: every page is the shared zero page. */
	zero = mmap(NULL, 4 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, zero);
	r[0] = (struct req){ .off = 10, .len = 100 };
	r[1] = (struct req){ .off = 5, .len = 4 * pg - 5 };
	r[0].id = aio_send(self->q, self->s[1], m + 10, 100, 0);
	r[1].id = aio_send(self->q, self->s[1], m + 5, 4 * pg - 5, 0);
	r[2].id = aio_send(self->q, self->s[1], zero, 4 * pg, 0);
	r[2].len = 4 * pg;
	ASSERT_LT(0, r[0].id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_LT(r[0].id, r[1].id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_LT(r[1].id, r[2].id) TH_LOG("aio_send: %s", strerror(errno));
	for (int i = 0; i < 3; i++)
		r[i].seen = false;
	while (seen < 3) {
		int n = collect(self->q, out, 3 - seen, EVENT_MS);

		ASSERT_LT(0, n);
		for (int j = 0; j < n; j++) {
			ASSERT_LE(0, match_event(_metadata, r, 3, &out[j]));
		}
		seen += n;
	}
	ASSERT_EQ(100 + 8 * pg - 5, read_full(self->s[0], got, 100 + 8 * pg - 5, EVENT_MS));
	EXPECT_TRUE(peer_quiet(self->s[0], QUIET_MS));
	check_stream(_metadata, got, 100 + 4 * pg - 5, r, 2);
	EXPECT_TRUE(all_bytes(got + 100 + 4 * pg - 5, 0, 4 * pg));
	EXPECT_EQ(base, pins_back_to(base));
	munmap(m, 4 * pg);
	munmap(zero, 4 * pg);
	free(got);
}

/* ---- argument errors ---- */

TEST_F(send, arg_errors)
{
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned char buf[64];
	struct ukevent out[4];
	int p[2], sp[2], fd;
	long id;

	memset(buf, 0xaa, sizeof(buf));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));

	/* Length and flags. */
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], buf, 0, 0));
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], NULL, 0, 0));
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], buf, (size_t)INT_MAX + 1, 0));
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], buf, SIZE_MAX, 0));
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], buf, sizeof(buf), MSG_DONTWAIT));
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], buf, sizeof(buf), MSG_ZEROCOPY));
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], buf, sizeof(buf), MSG_NOSIGNAL));
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], buf, sizeof(buf), 1));
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], buf, sizeof(buf), 0x80000000u));
	/* Flags are checked before the buffer. */
	EXPECT_FAIL(EINVAL, aio_send(self->q, self->s[1], NULL, sizeof(buf), MSG_MORE));

	/* The queue descriptor: not open, or not a queue. */
	fd = dup(self->s[1]);
	ASSERT_LE(0, fd);
	close(fd);
	EXPECT_FAIL(EBADF, aio_send(fd, self->s[1], buf, sizeof(buf), 0));
	EXPECT_FAIL(EBADF, aio_send(-1, self->s[1], buf, sizeof(buf), 0));
	EXPECT_FAIL(EINVAL, aio_send(p[0], self->s[1], buf, sizeof(buf), 0));
	EXPECT_FAIL(EINVAL, aio_send(self->s[0], self->s[1], buf, sizeof(buf), 0));

	/* The socket descriptor: not open. */
	EXPECT_FAIL(EBADF, aio_send(self->q, fd, buf, sizeof(buf), 0));
	EXPECT_FAIL(EBADF, aio_send(self->q, -1, buf, sizeof(buf), 0));
	EXPECT_FAIL(EBADF, aio_send(self->q, 100000, buf, sizeof(buf), 0));

	/* Not a socket. */
	EXPECT_FAIL(ENOTSOCK, aio_send(self->q, p[1], buf, sizeof(buf), 0));
	EXPECT_FAIL(ENOTSOCK, aio_send(self->q, self->q, buf, sizeof(buf), 0));
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_FAIL(ENOTSOCK, aio_send(self->q, fd, buf, sizeof(buf), 0));
	close(fd);

	/* Neither TCP nor UDP: AF_UNIX stream, datagram and seqpacket, raw IP. */
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
	EXPECT_FAIL(EOPNOTSUPP, aio_send(self->q, sp[0], buf, sizeof(buf), 0));
	EXPECT_FAIL(EOPNOTSUPP, aio_send(self->q, sp[0], buf, 8192, 0));
	close(sp[0]);
	close(sp[1]);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp));
	EXPECT_FAIL(EOPNOTSUPP, aio_send(self->q, sp[0], buf, sizeof(buf), 0));
	close(sp[0]);
	close(sp[1]);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp));
	EXPECT_FAIL(EOPNOTSUPP, aio_send(self->q, sp[0], buf, sizeof(buf), 0));
	close(sp[0]);
	close(sp[1]);
	fd = socket(variant->family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd >= 0) {
		loopback(variant->family, &ss, &sslen);
		ASSERT_EQ(0, connect(fd, (void *)&ss, sslen));
		EXPECT_FAIL(EOPNOTSUPP, aio_send(self->q, fd, buf, sizeof(buf), 0));
		close(fd);
	} else {
		TH_LOG("no raw socket: %s", strerror(errno));
	}

	/* TCP but not connected: fresh, bound, listening. */
	fd = socket(variant->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	EXPECT_FAIL(ENOTCONN, aio_send(self->q, fd, buf, sizeof(buf), 0));
	EXPECT_FAIL(ENOTCONN, aio_send(self->q, fd, buf, 8192, 0));
	loopback(variant->family, &ss, &sslen);
	ASSERT_EQ(0, bind(fd, (void *)&ss, sslen));
	EXPECT_FAIL(ENOTCONN, aio_send(self->q, fd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, listen(fd, 4));
	EXPECT_FAIL(ENOTCONN, aio_send(self->q, fd, buf, sizeof(buf), 0));
	close(fd);

	/* UDP without a destination: fresh, bound, disconnected again. */
	fd = socket(variant->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	EXPECT_FAIL(EDESTADDRREQ, aio_send(self->q, fd, buf, sizeof(buf), 0));
	EXPECT_FAIL(EDESTADDRREQ, aio_send(self->q, fd, buf, 8192, 0));
	loopback(variant->family, &ss, &sslen);
	ASSERT_EQ(0, bind(fd, (void *)&ss, sslen));
	EXPECT_FAIL(EDESTADDRREQ, aio_send(self->q, fd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, getsockname(fd, (void *)&ss, &sslen));
	ASSERT_EQ(0, connect(fd, (void *)&ss, sslen));
	ASSERT_EQ(0, connect(fd, &unspec, sizeof(unspec)));
	EXPECT_FAIL(EDESTADDRREQ, aio_send(self->q, fd, buf, sizeof(buf), 0));
	close(fd);

	close(p[0]);
	close(p[1]);
	check_nothing_sent(_metadata, self->q, self->s[0]);
	/* The queue and the socket still work. */
	id = aio_send(self->q, self->s[1], buf, 8, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 8, 0);
	EXPECT_EQ(8, read_full(self->s[0], buf, 8, EVENT_MS));
	EXPECT_TRUE(all_bytes(buf, 0xaa, 8));
}

/*
 * Zero-copy sends are charged to RLIMIT_MEMLOCK like MSG_ZEROCOPY, for as
 * long as the stack holds their pages: a user without CAP_IPC_LOCK gets
 * ENOBUFS beyond the limit, copied sends are not charged, and the charge comes
 * back when a send completes. A send of 48 KiB is charged 12 or 13 pages; the
 * limit of 16 pages takes one of them at a time. The peer reads nothing at
 * first, and its small window keeps the first send in flight.
 */
TEST_F(send, memlock_limit)
{
	struct rlimit lim = { 16 * 4096, 16 * 4096 };
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		static unsigned char big[128 << 10], got[(48 << 10) + COPY_MAX];
		struct ukevent out[8];
		int p[2];

		if (tcp_pair_buf(variant->family, p, SMALL_RCVBUF, SMALL_SNDBUF))
			_exit(9);
		if (setrlimit(RLIMIT_MEMLOCK, &lim) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(10);
		/* Beyond the limit by itself. */
		if (aio_send(self->q, p[1], big, sizeof(big), 0) != -1 || errno != ENOBUFS)
			_exit(11);
		if (aio_send(self->q, p[1], big, 48 << 10, 0) <= 0)
			_exit(12);
		/* The first one still holds its pages. */
		if (aio_send(self->q, p[1], big, 48 << 10, 0) != -1 || errno != ENOBUFS)
			_exit(13);
		if (aio_send(self->q, p[1], big, COPY_MAX, 0) <= 0)
			_exit(14);
		if (read_full(p[0], got, sizeof(got), EVENT_MS) != sizeof(got))
			_exit(15);
		if (collect(self->q, out, 2, EVENT_MS) != 2)
			_exit(16);
		/* Completed: the charge is back. */
		if (aio_send(self->q, p[1], big, 48 << 10, 0) <= 0)
			_exit(17);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("child step %d failed", WEXITSTATUS(status));
}

/* ---- many sockets through the ring ---- */

#define RING_PAIRS	16
#define RING_REQS	32
#define RING_SIZE	64
#define RING_SRC	(256 << 10)
#define RING_MAX	40000

struct multi_reader {
	int fd[RING_PAIRS];
	unsigned char *buf[RING_PAIRS];
	size_t want[RING_PAIRS], got[RING_PAIRS];
	int ms;
};

/* Reads every peer until each has its bytes (and one more would be too many) or time is up. */
static void *multi_reader_main(void *arg)
{
	struct multi_reader *m = arg;
	uint64_t end = now_ns() + (uint64_t)m->ms * 1000000ull;
	struct pollfd p[RING_PAIRS];

	for (;;) {
		int n = 0, k;

		for (k = 0; k < RING_PAIRS; k++)
			if (m->got[k] < m->want[k])
				p[n++] = (struct pollfd){ .fd = m->fd[k], .events = POLLIN };
		if (!n || now_ns() >= end)
			break;
		if (poll(p, n, 100) < 0)
			break;
		for (k = 0; k < RING_PAIRS; k++) {
			ssize_t r;

			if (m->got[k] >= m->want[k])
				continue;
			r = recv(m->fd[k], m->buf[k] + m->got[k], m->want[k] + 1 - m->got[k],
				 MSG_DONTWAIT);
			if (r > 0)
				m->got[k] += r;
		}
	}
	return NULL;
}

static size_t ring_len(unsigned int size)
{
	return (KEVENT_RING_BYTES(size) + 4095) & ~4095ul;
}

/*
 * 16 connections x 32 requests (copied and pinned, random sizes), submitted
 * interleaved on one queue whose ring is smaller than the number of
 * completions: each completion is taken from the ring exactly once, with all
 * of its bytes, and every peer receives exactly its requests' bytes in order.
 */
TEST_F_TIMEOUT(send, ring_many_sockets, 120)
{
	static struct req r[RING_PAIRS][RING_REQS];
	struct multi_reader mr = { .ms = 60000 };
	unsigned char *src = map_rw(RING_SRC + RING_MAX);
	int s[RING_PAIRS][2], rq = kevent_init(RING_SIZE, 0), seen = 0, count[RING_PAIRS] = { 0 };
	long base = pins_settled(), last = 0;
	uint64_t x = 0x12345, end;
	size_t total = 0;
	struct kevent_wait_arg quiet;
	struct kevent_ring *ring;
	unsigned int uidx = 0;
	pthread_t t;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	ASSERT_LE(0, rq);
	ring = mmap(NULL, ring_len(RING_SIZE), PROT_READ | PROT_WRITE, MAP_SHARED, rq, 0);
	ASSERT_NE(MAP_FAILED, ring);
	fill_pat(src, 0, RING_SRC + RING_MAX);
	for (int k = 0; k < RING_PAIRS; k++) {
		ASSERT_EQ(0, tcp_pair_buf(variant->family, s[k], 0, 0));
		mr.fd[k] = s[k][0];
		mr.want[k] = 0;
		for (int i = 0; i < RING_REQS; i++) {
			uint64_t v = rnd(&x);

			r[k][i].len = v & 1 ? 1 + (v >> 8) % COPY_MAX :
					      COPY_MAX + 1 + (v >> 8) % (RING_MAX - COPY_MAX);
			r[k][i].off = (v >> 32) % RING_SRC;
			r[k][i].seen = false;
			mr.want[k] += r[k][i].len;
		}
		mr.buf[k] = malloc(mr.want[k] + 1);
		ASSERT_NE(NULL, mr.buf[k]);
		total += mr.want[k];
	}
	ASSERT_EQ(0, pthread_create(&t, NULL, multi_reader_main, &mr));
	for (int i = 0; i < RING_REQS; i++)
		for (int k = 0; k < RING_PAIRS; k++) {
			r[k][i].id = aio_send(rq, s[k][1], src + r[k][i].off, r[k][i].len, 0);
			ASSERT_LT(last, r[k][i].id) TH_LOG("%d/%d: %s", k, i, strerror(errno));
			last = r[k][i].id;
		}
	end = now_ns() + 60ull * 1000000000;
	while (seen < RING_PAIRS * RING_REQS) {
		unsigned int kidx = __atomic_load_n(&ring->ring_kidx, __ATOMIC_ACQUIRE);
		struct kevent_wait_arg wa = kevent_timeout_ns(200000000ull);

		ASSERT_GT(end, now_ns()) TH_LOG("%d of %d completions", seen,
						RING_PAIRS * RING_REQS);
		if (kidx == uidx) {
			ASSERT_LE(0, kevent_wait(rq, 0, uidx, &wa));
			continue;
		}
		ASSERT_GE(RING_SIZE, kidx - uidx);
		for (; uidx != kidx; uidx++) {
			struct ukevent e = ring->event[uidx % RING_SIZE];
			int k;

			for (k = 0; k < RING_PAIRS; k++)
				if (find_req(r[k], RING_REQS, e.id.raw_u64) >= 0 &&
				    match_event(_metadata, r[k], RING_REQS, &e) >= 0)
					break;
			ASSERT_GT(RING_PAIRS, k) TH_LOG("ring entry %u: id %llu", uidx,
							(unsigned long long)e.id.raw_u64);
			count[k]++;
			seen++;
		}
		__atomic_store_n(&ring->ring_uidx, uidx, __ATOMIC_RELEASE);
	}
	pthread_join(t, NULL);
	for (int k = 0; k < RING_PAIRS; k++) {
		EXPECT_EQ(RING_REQS, count[k]);
		EXPECT_EQ(mr.want[k], mr.got[k]) TH_LOG("socket %d", k);
		check_stream(_metadata, mr.buf[k], mr.got[k], r[k], RING_REQS);
	}
	/* Nothing more: the ring and the ready list are empty. */
	quiet = kevent_timeout_ns(QUIET_MS * 1000000ull);
	EXPECT_EQ(0, kevent_wait(rq, 0, uidx, &quiet));
	EXPECT_EQ(uidx, __atomic_load_n(&ring->ring_kidx, __ATOMIC_ACQUIRE));
	TH_LOG("%zu bytes in %d requests, ring wrapped %u times", total,
	       RING_PAIRS * RING_REQS, ring->ring_over);
	EXPECT_EQ(base, pins_back_to(base));
	munmap(ring, ring_len(RING_SIZE));
	close(rq);
	for (int k = 0; k < RING_PAIRS; k++) {
		close(s[k][0]);
		close(s[k][1]);
		free(mr.buf[k]);
	}
	munmap(src, RING_SRC + RING_MAX);
}

/* ---- UDP ---- */

FIXTURE(udp) {
	int q;
	int u[2];	/* u[0]: the peer, which receives; u[1]: the connected sender */
};

FIXTURE_VARIANT(udp) {
	int family;
};

FIXTURE_VARIANT_ADD(udp, v4) {
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(udp, v6) {
	.family = AF_INET6,
};

FIXTURE_SETUP(udp)
{
	self->u[0] = self->u[1] = -1;
	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
	ASSERT_EQ(0, udp_pair(variant->family, self->u, BIG_RCVBUF));
}

FIXTURE_TEARDOWN(udp)
{
	closefd(&self->q);
	closefd(&self->u[0]);
	closefd(&self->u[1]);
}

#define UDP_MAX		65507	/* the largest datagram over IPv4 */
#define UDP_BUF		(1 << 20)

/* Receives one datagram of @len bytes, stream bytes [@off, @off + @len). */
static void check_datagram(struct __test_metadata *_metadata, int fd, uint64_t off, size_t len)
{
	static unsigned char got[UDP_BUF];
	ssize_t n;

	ASSERT_TRUE(wait_for(fd, POLLIN, EVENT_MS)) TH_LOG("no datagram of %zu bytes", len);
	n = recv(fd, got, sizeof(got), MSG_TRUNC | MSG_DONTWAIT);
	EXPECT_EQ((ssize_t)len, n);
	if (n == (ssize_t)len) {
		EXPECT_EQ(len, pat_mismatch(got, off, len)) TH_LOG("datagram of %zu bytes", len);
	}
}

/* Each request is one datagram, received whole, in order. */
TEST_F(udp, datagrams)
{
	static const uint32_t lens[] = { 1, 1000, 4096, 4097, 30000, 65000, UDP_MAX, 3 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	unsigned char *src = map_rw(UDP_BUF);
	long base = pins_settled();
	struct ukevent out[N];
	struct req r[N];
	int seen = 0;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	fill_pat(src, 0, UDP_BUF);
	for (int i = 0; i < N; i++) {
		r[i] = (struct req){ .off = i * 1000 + 1, .len = lens[i] };
		r[i].id = aio_send(self->q, self->u[1], src + r[i].off, r[i].len, 0);
		ASSERT_LT(i ? r[i - 1].id : 0, r[i].id) TH_LOG("%u bytes: %s", lens[i],
							       strerror(errno));
	}
	while (seen < N) {
		int n = collect(self->q, out, N - seen, EVENT_MS);

		ASSERT_LT(0, n) TH_LOG("%d of %d completed", seen, N);
		for (int j = 0; j < n; j++) {
			ASSERT_LE(0, match_event(_metadata, r, N, &out[j]));
		}
		seen += n;
	}
	for (int i = 0; i < N; i++)
		check_datagram(_metadata, self->u[0], r[i].off, r[i].len);
	EXPECT_FALSE(wait_for(self->u[0], POLLIN, QUIET_MS));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, UDP_BUF);
}

/*
 * Datagrams longer than IP can carry are accepted and fail in their
 * completion with EMSGSIZE, nothing sent; the socket goes on working. IPv6
 * carries up to 65,527 bytes (no header in its payload length): 65,508 is
 * too long for IPv4 only.
 */
TEST_F(udp, emsgsize)
{
	const uint32_t lens[] = { 65528, 65536, 100000, UDP_BUF - 1, 65508 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	unsigned char *src = map_rw(UDP_BUF);
	long base = pins_settled();
	struct ukevent out[4];

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	fill_pat(src, 0, UDP_BUF);
	for (int i = 0; i < N; i++) {
		bool fits = lens[i] == 65508 && variant->family == AF_INET6;
		long id = aio_send(self->q, self->u[1], src, lens[i], 0), id2;

		ASSERT_LT(0, id) TH_LOG("%u bytes: %s", lens[i], strerror(errno));
		ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
		if (fits) {
			check_event(_metadata, &out[0], id, lens[i], 0);
			check_datagram(_metadata, self->u[0], 0, lens[i]);
		} else {
			check_event(_metadata, &out[0], id, 0, -EMSGSIZE);
		}
		id2 = aio_send(self->q, self->u[1], src + 7, 10, 0);
		ASSERT_LT(id, id2) TH_LOG("aio_send: %s", strerror(errno));
		ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
		check_event(_metadata, &out[0], id2, 10, 0);
		check_datagram(_metadata, self->u[0], 7, 10);
	}
	EXPECT_FALSE(wait_for(self->u[0], POLLIN, QUIET_MS));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, UDP_BUF);
}

/* A send buffer smaller than the datagrams: they go one after the other, none lost. */
TEST_F(udp, small_sndbuf)
{
	enum { N = 32, LEN = 20000 };
	unsigned char *src = map_rw(N * LEN + 4096);
	long base = pins_settled();
	struct ukevent out[N];
	struct req r[N];
	int one = 4096, seen = 0;

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, src);
	fill_pat(src, 0, N * LEN + 4096);
	ASSERT_EQ(0, setsockopt(self->u[1], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)));
	for (int i = 0; i < N; i++) {
		r[i] = (struct req){ .off = i * LEN + i, .len = i % 4 ? LEN : 1000 + i };
		r[i].id = aio_send(self->q, self->u[1], src + r[i].off, r[i].len, 0);
		ASSERT_LT(i ? r[i - 1].id : 0, r[i].id) TH_LOG("aio_send: %s", strerror(errno));
	}
	while (seen < N) {
		int n = collect(self->q, out, N - seen, EVENT_MS);

		ASSERT_LT(0, n) TH_LOG("%d of %d completed", seen, N);
		for (int j = 0; j < n; j++) {
			ASSERT_LE(0, match_event(_metadata, r, N, &out[j]));
		}
		seen += n;
	}
	for (int i = 0; i < N; i++)
		check_datagram(_metadata, self->u[0], r[i].off, r[i].len);
	EXPECT_FALSE(wait_for(self->u[0], POLLIN, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	munmap(src, N * LEN + 4096);
}

/*
 * A datagram from memory the kernel cannot read, copied or zero-copy, with
 * the bad page first, in the middle or last: the call fails with EFAULT,
 * nothing is sent or queued, nothing stays pinned or charged, and the socket
 * goes on working. (A zero-copy datagram is not checked page by page before
 * it is sent, as a stream's is: the stack sends it whole or not at all.)
 */
TEST_F(udp, efault)
{
	size_t pg = page_size();
	unsigned char *m = map_rw(16 * pg), *gone = map_rw(16 * pg);
	long base = pins_settled(), id;
	struct ukevent out[4];
	struct {
		size_t off, len;
	} bad[] = {
		{ 0, 100 },			/* copied, the first page bad */
		{ 2 * pg - 50, 100 },		/* copied, the second page bad */
		{ 0, 60000 },			/* zero-copy, the first page bad */
		{ pg + 10, 4097 },		/* zero-copy, the last page bad */
		{ 2 * pg - 1, 30000 },		/* zero-copy, the second page bad */
		{ 4 * pg, 40000 },		/* zero-copy, a page in the middle bad */
	};

	ASSERT_NE(LONG_MIN, base) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, gone);
	fill_pat(m, 0, 16 * pg);
	fill_pat(gone, 0, 16 * pg);
	/* Bad pages: 0, 2 and 9 of each mapping (PROT_NONE in one, unmapped in the other). */
	for (int k = 0; k < 3; k++) {
		size_t at = (size_t[]){ 0, 2, 9 }[k] * pg;

		ASSERT_EQ(0, mprotect(m + at, pg, PROT_NONE));
		ASSERT_EQ(0, munmap(gone + at, pg));
	}
	for (int k = 0; k < 2; k++) {
		unsigned char *buf = k ? gone : m;

		for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			errno = 0;
			EXPECT_EQ(-1, aio_send(self->q, self->u[1], buf + bad[i].off, bad[i].len, 0))
				TH_LOG("%s page, %zu bytes at %zu: sent", k ? "unmapped" : "PROT_NONE",
				       bad[i].len, bad[i].off);
			EXPECT_EQ(EFAULT, errno) TH_LOG("%zu bytes at %zu", bad[i].len, bad[i].off);
		}
	}
	EXPECT_FALSE(wait_for(self->u[0], POLLIN, QUIET_MS));
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
	EXPECT_EQ(base, pins_back_to(base));
	/* The readable pages between are fine to send, zero-copy. */
	id = aio_send(self->q, self->u[1], m + 3 * pg, 6 * pg, 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 6 * pg, 0);
	check_datagram(_metadata, self->u[0], 3 * pg, 6 * pg);
	EXPECT_EQ(base, pins_back_to(base));
	munmap(m, 16 * pg);
	munmap(gone, 16 * pg);
}

/*
 * Connected to a port nobody listens on: the first datagram goes out, the
 * ICMP error that comes back is the next request's completion
 * (ECONNREFUSED, nothing sent), and the one after that goes out again.
 */
TEST_F(udp, refused)
{
	unsigned char msg[8] = "refused";
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct ukevent out[4];
	long id;

	ASSERT_EQ(0, getsockname(self->u[0], (void *)&ss, &sslen));
	closefd(&self->u[0]);
	id = aio_send(self->q, self->u[1], msg, sizeof(msg), 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, sizeof(msg), 0);
	ASSERT_TRUE(wait_for(self->u[1], POLLERR, EVENT_MS));
	id = aio_send(self->q, self->u[1], msg, sizeof(msg), 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, 0, -ECONNREFUSED);
	id = aio_send(self->q, self->u[1], msg, sizeof(msg), 0);
	ASSERT_LT(0, id) TH_LOG("aio_send: %s", strerror(errno));
	ASSERT_EQ(1, collect(self->q, out, 1, EVENT_MS));
	check_event(_metadata, &out[0], id, sizeof(msg), 0);
	EXPECT_EQ(0, harvest(self->q, 1, 4, out, QUIET_MS));
}

TEST_HARNESS_MAIN
