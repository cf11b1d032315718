// SPDX-License-Identifier: GPL-2.0
/*
 * Event sources: pipes, sockets (TCP v4/v6, UDP, AF_UNIX), generic poll
 * (eventfd, timerfd, epoll, another kevent queue), signals, POSIX timers,
 * and teardown when files close, processes exit and fds are reused.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kevent_test.h"
#include <libkevent.h>

#define RECV KEVENT_SOCKET_RECV
#define SEND KEVENT_SOCKET_SEND
#define ACCEPT KEVENT_SOCKET_ACCEPT

static int add(int q, uint32_t type, uint64_t id, uint32_t event, uint32_t flags)
{
	struct ukevent e = uev(type, id, event, flags);
	int ret = ctl1(q, KEVENT_CTL_ADD, &e);

	if (ret == 1 && (e.ret_flags & KEVENT_RET_BROKEN))
		return (int)e.ret_data[1];
	return ret;
}

static int del(int q, uint32_t type, uint64_t id)
{
	struct ukevent e = uev(type, id, 0, 0);
	int ret = ctl1(q, KEVENT_CTL_REMOVE, &e);

	return ret == 1 ? (int)e.ret_data[1] : ret;
}

/* A connected TCP pair over loopback (v4 or v6): fds[0] client, fds[1] server. */
static int tcp_pair(int family, int fds[2])
{
	struct sockaddr_storage ss;
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int l = socket(family, SOCK_STREAM, 0), one = 1;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = family;
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	if (l < 0 || bind(l, (void *)&ss, len) || listen(l, 128) ||
	    getsockname(l, (void *)&ss, &len))
		return -1;
	fds[0] = socket(family, SOCK_STREAM, 0);
	if (connect(fds[0], (void *)&ss, len))
		return -1;
	fds[1] = accept(l, NULL, NULL);
	setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	close(l);
	return fds[1] < 0 ? -1 : 0;
}

static int listener(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (void *)sin, len) || listen(l, 512) ||
	    getsockname(l, (void *)sin, &len))
		return -1;
	return l;
}

FIXTURE(src) {
	int q;
	int p[2];
};

FIXTURE_SETUP(src)
{
	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
	ASSERT_EQ(0, pipe2(self->p, O_NONBLOCK));
}

FIXTURE_TEARDOWN(src)
{
	close(self->q);
	close(self->p[0]);
	close(self->p[1]);
}

/* ---- pipes ---- */

TEST_F(src, pipe_recv_level_triggered)
{
	struct ukevent out[4];
	char c;

	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[0], RECV, 0));
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 0));
	ASSERT_EQ(1, write(self->p[1], "x", 1));
	ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
	EXPECT_EQ(KEVENT_PIPE, out[0].type);
	EXPECT_EQ((uint64_t)self->p[0], out[0].id.raw_u64);
	EXPECT_EQ(0, out[0].ret_flags);
	/* Still readable: reported again, with a later seq. */
	ASSERT_EQ(1, harvest(self->q, 1, 4, out + 1, 1000));
	EXPECT_LT(out[0].seq, out[1].seq);
	ASSERT_EQ(1, read(self->p[0], &c, 1));
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 50));
}

TEST_F(src, pipe_edge_triggered)
{
	struct ukevent out[4];

	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[0], RECV, KEVENT_REQ_ET));
	ASSERT_EQ(1, write(self->p[1], "x", 1));
	ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 50));
	ASSERT_EQ(1, write(self->p[1], "y", 1));
	EXPECT_EQ(1, harvest(self->q, 1, 4, out, 1000));
}

TEST_F(src, pipe_oneshot_and_dispatch)
{
	struct ukevent out[4], m;

	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[0], RECV, KEVENT_REQ_ONESHOT));
	ASSERT_EQ(1, write(self->p[1], "x", 1));
	ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 50));
	EXPECT_EQ(-ENOENT, del(self->q, KEVENT_PIPE, self->p[0]));

	/* DISPATCH: one event, then nothing until MODIFY, which re-checks at once. */
	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[1], SEND, KEVENT_REQ_DISPATCH |
			 KEVENT_REQ_ALWAYS_QUEUE));
	ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 50));
	m = uev(KEVENT_PIPE, self->p[1], SEND, KEVENT_REQ_DISPATCH);
	ASSERT_EQ(0, ctl1(self->q, KEVENT_CTL_MODIFY, &m));
	EXPECT_EQ(1, harvest(self->q, 1, 4, out, 1000));
}

TEST_F(src, pipe_ready_at_add_is_reported_not_kept)
{
	struct ukevent e = uev(KEVENT_PIPE, self->p[1], SEND, 0), out[2];

	ASSERT_EQ(1, ctl1(self->q, KEVENT_CTL_ADD, &e));
	EXPECT_EQ(KEVENT_RET_DONE, e.ret_flags);
	EXPECT_EQ(-ENOENT, del(self->q, KEVENT_PIPE, self->p[1]));
	/* ALWAYS_QUEUE keeps it and queues it. */
	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[1], SEND, KEVENT_REQ_ALWAYS_QUEUE));
	EXPECT_EQ(1, harvest(self->q, 1, 2, out, 1000));
}

TEST_F(src, pipe_writer_close_is_broken)
{
	struct ukevent out[2];

	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[0], RECV, 0));
	close(self->p[1]);
	self->p[1] = open("/dev/null", O_RDONLY);
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(KEVENT_RET_BROKEN, out[0].ret_flags & KEVENT_RET_BROKEN);
}

TEST_F(src, pipe_send_then_reader_close)
{
	struct ukevent out[2];
	char buf[4096];
	int n = 0;

	memset(buf, 'a', sizeof(buf));
	while (write(self->p[1], buf, sizeof(buf)) > 0)
		n++;
	ASSERT_LT(0, n);
	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[1], SEND, 0));
	EXPECT_EQ(0, harvest(self->q, 0, 2, out, 50));
	/* Room again. */
	ASSERT_EQ(sizeof(buf), read(self->p[0], buf, sizeof(buf)));
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(0, out[0].ret_flags);
	/* Refill, then the reader goes away. */
	while (write(self->p[1], buf, sizeof(buf)) > 0)
		;
	EXPECT_EQ(0, harvest(self->q, 0, 2, out, 50));
	close(self->p[0]);
	self->p[0] = open("/dev/null", O_RDONLY);
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(KEVENT_RET_BROKEN, out[0].ret_flags & KEVENT_RET_BROKEN);
}

TEST_F(src, file_type_errors)
{
	int efd = eventfd(0, 0);

	EXPECT_EQ(-EBADF, add(self->q, KEVENT_PIPE, 9999, RECV, 0));
	EXPECT_EQ(-EINVAL, add(self->q, KEVENT_PIPE, efd, RECV, 0));
	EXPECT_EQ(-ENOTSOCK, add(self->q, KEVENT_SOCKET, self->p[0], RECV, 0));
	EXPECT_EQ(-EINVAL, add(self->q, KEVENT_PIPE, self->p[0], 0, 0));
	EXPECT_EQ(-EINVAL, add(self->q, KEVENT_PIPE, self->p[0], 0x8, 0));
	EXPECT_EQ(-EINVAL, add(self->q, KEVENT_POLL, self->q, POLLIN, 0));
	EXPECT_EQ(-EINVAL, add(self->q, KEVENT_POSIX_TIMER, 1, 1, 0));
	EXPECT_EQ(-EINVAL, add(self->q, KEVENT_SIGNAL, SIGKILL, 1, 0));
	EXPECT_EQ(-EINVAL, add(self->q, KEVENT_SIGNAL, 65, 1, 0));
	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[0], RECV, 0));
	EXPECT_EQ(-EEXIST, add(self->q, KEVENT_PIPE, self->p[0], RECV, 0));
	close(efd);
}

/* ---- sockets ---- */

TEST_F(src, tcp_trigger_modes)
{
	static const uint32_t modes[] = { 0, KEVENT_REQ_ET, KEVENT_REQ_ONESHOT,
					  KEVENT_REQ_DISPATCH };
	struct ukevent out[4];
	char buf[64];
	int s[2];

	ASSERT_EQ(0, tcp_pair(AF_INET, s));
	for (unsigned int i = 0; i < 4; i++) {
		ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, s[1], RECV, modes[i]));
		ASSERT_EQ(10, write(s[0], "0123456789", 10));
		ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
		EXPECT_EQ(KEVENT_SOCKET, out[0].type);
		EXPECT_EQ(10, out[0].ret_data[0]);
		EXPECT_EQ(0, out[0].ret_flags);
		/* Data still unread: only level-triggered reports it again. */
		EXPECT_EQ(modes[i] == 0, harvest(self->q, 0, 4, out, 50));
		if (modes[i] == KEVENT_REQ_ONESHOT) {
			EXPECT_EQ(-ENOENT, del(self->q, KEVENT_SOCKET, s[1]));
		} else {
			if (modes[i] == KEVENT_REQ_DISPATCH) {
				struct ukevent m = uev(KEVENT_SOCKET, s[1], RECV, modes[i]);

				ASSERT_EQ(0, ctl1(self->q, KEVENT_CTL_MODIFY, &m));
				EXPECT_EQ(1, harvest(self->q, 1, 4, out, 1000));
			}
			EXPECT_EQ(0, del(self->q, KEVENT_SOCKET, s[1]));
		}
		ASSERT_EQ(10, read(s[1], buf, sizeof(buf)));
	}
	close(s[0]);
	close(s[1]);
}

TEST_F(src, tcp_send_space)
{
	struct ukevent out[2];
	static char buf[65536];
	int s[2];

	ASSERT_EQ(0, tcp_pair(AF_INET, s));
	fcntl(s[0], F_SETFL, O_NONBLOCK);
	fcntl(s[1], F_SETFL, O_NONBLOCK);
	while (write(s[0], buf, sizeof(buf)) > 0)
		;
	ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, s[0], SEND, KEVENT_REQ_ET));
	EXPECT_EQ(0, harvest(self->q, 0, 2, out, 50));
	for (int i = 0; i < 64; i++)
		if (read(s[1], buf, sizeof(buf)) <= 0)
			break;
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 2000));
	EXPECT_EQ(0, out[0].ret_flags);
	close(s[0]);
	close(s[1]);
}

TEST_F(src, tcp_eof_and_reset_are_broken)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct ukevent out[2];
	int s[2], t[2];

	ASSERT_EQ(0, tcp_pair(AF_INET, s));
	ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, s[1], RECV, 0));
	close(s[0]);
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(KEVENT_RET_BROKEN, out[0].ret_flags);
	EXPECT_EQ(0, out[0].ret_data[1]);
	close(s[1]);

	ASSERT_EQ(0, tcp_pair(AF_INET, t));
	ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, t[1], RECV, 0));
	ASSERT_EQ(0, setsockopt(t[0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	close(t[0]);
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(KEVENT_RET_BROKEN, out[0].ret_flags);
	EXPECT_EQ(-ECONNRESET, (int)out[0].ret_data[1]);
	close(t[1]);
}

TEST_F(src, tcp6_recv)
{
	struct ukevent out[2];
	int s[2];

	ASSERT_EQ(0, tcp_pair(AF_INET6, s));
	ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, s[1], RECV, KEVENT_REQ_ET));
	ASSERT_EQ(3, write(s[0], "abc", 3));
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(3, out[0].ret_data[0]);
	close(s[0]);
	close(s[1]);
}

TEST_F(src, accept_100_concurrent_connects)
{
	struct sockaddr_in sin;
	struct ukevent out[16];
	int l = listener(&sin), c[100], accepted = 0, events = 0;
	uint64_t end;

	ASSERT_LE(0, l);
	ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, l, ACCEPT, 0));
	for (int i = 0; i < 100; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(c[i], (void *)&sin, sizeof(sin));
	}
	end = now_ns() + 10000000000ull;
	while (accepted < 100 && now_ns() < end) {
		int n = harvest(self->q, 1, 16, out, 1000), fd;

		ASSERT_LE(0, n);
		for (int i = 0; i < n; i++) {
			EXPECT_EQ((uint64_t)l, out[i].id.raw_u64);
			EXPECT_LT(0, out[i].ret_data[0]);
			events++;
		}
		while ((fd = accept(l, NULL, NULL)) >= 0) {
			close(fd);
			accepted++;
		}
	}
	EXPECT_EQ(100, accepted);
	EXPECT_LE(1, events);
	for (int i = 0; i < 100; i++)
		close(c[i]);
	close(l);
}

TEST_F(src, udp_and_unix_sockets)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	struct ukevent out[2];
	int u = socket(AF_INET, SOCK_DGRAM, 0), v = socket(AF_INET, SOCK_DGRAM, 0);
	int types[2] = { SOCK_STREAM, SOCK_DGRAM }, sp[2];

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(0, bind(u, (void *)&sin, len));
	ASSERT_EQ(0, getsockname(u, (void *)&sin, &len));
	ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, u, RECV, KEVENT_REQ_ET));
	ASSERT_EQ(2, sendto(v, "hi", 2, 0, (void *)&sin, len));
	ASSERT_EQ(2, sendto(v, "yo", 2, 0, (void *)&sin, len));
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ((uint64_t)u, out[0].id.raw_u64);
	EXPECT_LE(1, out[0].ret_data[0]);
	close(u);
	close(v);

	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, socketpair(AF_UNIX, types[i], 0, sp));
		ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, sp[1], RECV, 0));
		ASSERT_EQ(0, add(self->q, KEVENT_SOCKET, sp[0], SEND, KEVENT_REQ_ALWAYS_QUEUE));
		ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
		EXPECT_EQ((uint64_t)sp[0], out[0].id.raw_u64);
		ASSERT_EQ(0, del(self->q, KEVENT_SOCKET, sp[0]));
		ASSERT_EQ(4, write(sp[0], "ping", 4));
		ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
		EXPECT_EQ((uint64_t)sp[1], out[0].id.raw_u64);
		EXPECT_EQ(1, out[0].ret_data[0]);
		close(sp[0]);
		close(sp[1]);
	}
}

/* ---- generic poll ---- */

TEST_F(src, poll_eventfd_timerfd_epoll_queue)
{
	struct itimerspec its = { .it_value = { 0, 20000000 } };
	struct epoll_event ev = { .events = EPOLLIN };
	int efd = eventfd(0, EFD_NONBLOCK), tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	int ep = epoll_create1(0), efd2 = eventfd(0, 0), inner = kevent_init(0, 0);
	struct ukevent out[4], u = uev(KEVENT_UNOTIFY, 1, 0, 0);
	uint64_t one = 1;

	ASSERT_EQ(0, add(self->q, KEVENT_POLL, efd, POLLIN, 0));
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 20));
	ASSERT_EQ(8, write(efd, &one, 8));
	ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
	EXPECT_EQ(KEVENT_POLL, out[0].type);
	EXPECT_EQ(POLLIN, out[0].ret_data[0] & POLLIN);
	ASSERT_EQ(8, read(efd, &one, 8));
	EXPECT_EQ(0, harvest(self->q, 0, 4, out, 20));

	ASSERT_EQ(0, add(self->q, KEVENT_POLL, tfd, POLLIN, 0));
	ASSERT_EQ(0, timerfd_settime(tfd, 0, &its, NULL));
	ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
	EXPECT_EQ((uint64_t)tfd, out[0].id.raw_u64);
	ASSERT_EQ(0, del(self->q, KEVENT_POLL, tfd));

	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, efd2, &ev));
	ASSERT_EQ(0, add(self->q, KEVENT_POLL, ep, POLLIN, KEVENT_REQ_ET));
	ASSERT_EQ(8, write(efd2, &one, 8));
	ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
	EXPECT_EQ((uint64_t)ep, out[0].id.raw_u64);

	/* Another kevent queue. */
	ASSERT_EQ(0, ctl1(inner, KEVENT_CTL_ADD, &u));
	ASSERT_EQ(0, add(self->q, KEVENT_POLL, inner, POLLIN, KEVENT_REQ_ET));
	ASSERT_EQ(0, fire(inner, 1));
	ASSERT_EQ(1, harvest(self->q, 1, 4, out, 1000));
	EXPECT_EQ((uint64_t)inner, out[0].id.raw_u64);
	close(inner);
	close(ep);
	close(efd2);
	close(tfd);
	close(efd);
}

/*
 * An edge-triggered poll registration waiting for room in a full ring keeps
 * every wake-up's mask: the write readiness found at ADD and the read
 * wake-up that follows arrive as one entry with both (a single slot per
 * registration must not hide the first).
 */
TEST(poll_masks_add_up_while_waiting_for_the_ring)
{
	struct kevent_queue q;
	struct ukevent *e, u;
	int sv[2];

	ASSERT_EQ(0, kevent_queue_init(&q, 1, 0));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	/* The one slot holds a user event, unconsumed. */
	kevent_prep_user(&u, 1, 0, 1);
	ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_ADD, &u));
	kevent_prep_fire(&u, 1);
	ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_READY, &u));
	ASSERT_EQ(1, kevent_queue_ready(&q));
	kevent_prep_poll(&u, sv[0], POLLIN | POLLOUT, KEVENT_REQ_ET | KEVENT_REQ_ALWAYS_QUEUE, 2);
	ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_ADD, &u));
	/* Writable at ADD; then a read wake-up while it waits on the ready list. */
	ASSERT_EQ(1, write(sv[1], "x", 1));
	ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, 1000000000ull, NULL));
	ASSERT_EQ(1, e->user);
	kevent_queue_advance(&q, 1);
	ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, 1000000000ull, NULL));
	ASSERT_EQ(2, e->user);
	EXPECT_EQ(POLLIN | POLLOUT, e->ret_data[0] & (POLLIN | POLLOUT));
	kevent_queue_advance(&q, 1);
	close(sv[0]);
	close(sv[1]);
	kevent_queue_exit(&q);
}

/* ---- level-triggered events through the ring ---- */

#define SEC 1000000000ull

/*
 * A level-triggered socket event in the ring is re-checked by kevent_wait
 * once the consumer has caught up (as epoll_wait re-checks a delivered LT
 * item): it comes again while the data stay unread, and not after they were
 * read. An edge-triggered one comes once.
 */
TEST(ring_level_event_repeats_while_the_socket_stays_readable)
{
	struct kevent_queue q;
	struct ukevent *e, u;
	char buf[8];
	int sv[2];

	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	kevent_prep_socket(&u, sv[0], RECV, 0, 7);
	ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_ADD, &u));
	kevent_prep_socket(&u, sv[1], RECV, KEVENT_REQ_ET, 8);
	ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_ADD, &u));
	ASSERT_EQ(2, write(sv[1], "ab", 2));
	ASSERT_EQ(1, write(sv[0], "z", 1));
	/* More data while the entry waits in the ring: still one entry. */
	ASSERT_EQ(2, kevent_queue_ready(&q));
	ASSERT_EQ(1, write(sv[1], "c", 1));
	EXPECT_EQ(2, kevent_queue_ready(&q));
	for (int round = 0; round < 3; round++) {
		int seen[2] = { 0, 0 };

		do {
			ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, SEC, NULL));
			ASSERT_TRUE(e->user == 7 || e->user == 8);
			seen[e->user - 7]++;
			if (e->user == 7)
				EXPECT_LE(1, e->ret_data[0]);
			kevent_queue_advance(&q, 1);
		} while (kevent_queue_ready(&q));
		EXPECT_EQ(1, seen[0]) TH_LOG("round %d", round);
		EXPECT_EQ(round == 0, seen[1]) TH_LOG("round %d", round);
	}
	ASSERT_EQ(3, read(sv[0], buf, sizeof(buf)));
	EXPECT_EQ(-ETIME, kevent_queue_wait_timeout(&q, &e, SEC / 20, NULL));
	/* Data again: the registration was idle, so the hook publishes it. */
	ASSERT_EQ(1, write(sv[1], "c", 1));
	EXPECT_EQ(1, kevent_queue_ready(&q));
	kevent_queue_advance(&q, 1);
	/*
	 * More data after its entry was consumed: no second entry (the re-check
	 * stands for it), until kevent_wait re-checks the socket.
	 */
	ASSERT_EQ(1, write(sv[1], "d", 1));
	EXPECT_EQ(0, kevent_queue_ready(&q));
	ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, SEC, NULL));
	EXPECT_EQ(7, e->user);
	kevent_queue_advance(&q, 1);
	close(sv[0]);
	close(sv[1]);
	kevent_queue_exit(&q);
}

/*
 * @n socket pairs, each read end registered level-triggered for RECV (user
 * i + 1), then one byte written to each. 0, or -1 if a step failed.
 */
static int lt_readable_pairs(struct kevent_queue *q, int n, int (*sv)[2])
{
	struct ukevent u;

	for (int i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]))
			return -1;
		kevent_prep_socket(&u, sv[i][0], RECV, 0, i + 1);
		if (kevent_queue_ctl(q, KEVENT_CTL_ADD, &u))
			return -1;
	}
	for (int i = 0; i < n; i++) {
		if (write(sv[i][1], "x", 1) != 1)
			return -1;
	}
	return 0;
}

/*
 * Only entries the consumer has consumed are re-checked: with a's entry
 * consumed and b's not, kevent_wait (or kevent_commit) publishes a again
 * behind b, and b once.
 */
TEST(ring_level_recheck_only_for_consumed_entries)
{
	int p[2][2], *a = p[0], *b = p[1];
	struct kevent_queue q;

	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	ASSERT_EQ(0, lt_readable_pairs(&q, 2, p));
	ASSERT_EQ(2, kevent_queue_ready(&q));
	EXPECT_EQ(1, kevent_queue_peek(&q)->user);
	kevent_queue_advance(&q, 1);
	/* The ring is not empty: kevent_wait returns at once, with a again. */
	EXPECT_EQ(2, kevent_wait(q.fd, 0, q.uidx, NULL));
	ASSERT_EQ(2, kevent_queue_ready(&q));
	EXPECT_EQ(2, kevent_queue_peek(&q)->user);
	kevent_queue_advance(&q, 1);
	EXPECT_EQ(1, kevent_queue_peek(&q)->user);
	kevent_queue_advance(&q, 1);
	/* kevent_commit re-checks too: both come again, in turn. */
	EXPECT_LE(0, kevent_queue_flush(&q));
	ASSERT_EQ(2, kevent_queue_ready(&q));
	EXPECT_EQ(2, kevent_queue_peek(&q)->user);
	kevent_queue_advance(&q, 1);
	EXPECT_EQ(1, kevent_queue_peek(&q)->user);
	kevent_queue_advance(&q, 1);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	kevent_queue_exit(&q);
}

/*
 * 40 readable level-triggered sockets through an 8-entry ring: every
 * kevent_wait re-checks what the consumer took and queues it behind the
 * others, so each socket comes once per 40 entries, round after round.
 */
TEST(ring_level_events_take_turns_in_a_small_ring)
{
	enum { N = 40, ROUNDS = 3 };
	int sv[N][2], count[N] = { 0 };
	struct kevent_queue q;
	struct ukevent *e, u;

	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]));
		ASSERT_EQ(1, write(sv[i][1], "x", 1));
		kevent_prep_socket(&u, sv[i][0], RECV, KEVENT_REQ_ALWAYS_QUEUE, i);
		ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_ADD, &u));
	}
	for (int got = 0; got < N * ROUNDS; got++) {
		ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, SEC, NULL)) TH_LOG("%d entries", got);
		ASSERT_GT(N, e->user);
		count[e->user]++;
		EXPECT_EQ(got / N + 1, count[e->user]) TH_LOG("socket %llu, entry %d",
							      (unsigned long long)e->user, got);
		kevent_queue_advance(&q, 1);
	}
	for (int i = 0; i < N; i++) {
		char c;

		ASSERT_EQ(1, read(sv[i][0], &c, 1));
	}
	/* The entries already published stay; then nothing more comes. */
	while (kevent_queue_ready(&q))
		kevent_queue_advance(&q, 1);
	EXPECT_EQ(-ETIME, kevent_queue_wait_timeout(&q, &e, SEC / 20, NULL));
	for (int i = 0; i < N; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
	kevent_queue_exit(&q);
}

/*
 * A level-triggered registration has at most one entry in the ring, and a new
 * one only after a re-check that followed the consumption of the last: so a
 * consumer that reads one byte per entry never finds a socket empty, while
 * another thread keeps writing to 8 sockets (20,000 bytes) and notifications
 * race with the re-checks. Every byte is read.
 */
struct lt_writer {
	int (*sv)[2];
	int n, total;
};

static void *lt_write_main(void *arg)
{
	struct lt_writer *w = arg;
	uint64_t x = 0x1234567;

	for (int i = 0; i < w->total; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		if (write(w->sv[(x >> 33) % w->n][1], "x", 1) != 1)
			return (void *)1;
		if ((x >> 40) % 8 == 0)
			usleep(10);
	}
	return NULL;
}

TEST(ring_level_entries_are_never_stale_for_a_single_consumer)
{
	enum { N = 8, TOTAL = 20000 };
	int sv[N][2], got = 0, empty = 0;
	struct lt_writer w = { .sv = sv, .n = N, .total = TOTAL };
	struct kevent_queue q;
	struct ukevent *e, u;
	pthread_t t;
	void *ret;

	ASSERT_EQ(0, kevent_queue_init(&q, 4, 0));
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]));
		kevent_prep_socket(&u, sv[i][0], RECV, 0, i);
		ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_ADD, &u));
	}
	ASSERT_EQ(0, pthread_create(&t, NULL, lt_write_main, &w));
	while (got < TOTAL) {
		char c;

		ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, 10 * SEC, NULL))
			TH_LOG("%d of %d bytes", got, TOTAL);
		ASSERT_GT(N, e->user);
		if (read(sv[e->user][0], &c, 1) == 1) {
			got++;
		} else {
			empty++;
			TH_LOG("entry for socket %llu (ret_data %u) after %d bytes",
			       (unsigned long long)e->user, e->ret_data[0], got);
		}
		kevent_queue_advance(&q, 1);
	}
	pthread_join(t, &ret);
	EXPECT_EQ(NULL, ret);
	EXPECT_EQ(0, empty) TH_LOG("%d entries found their socket empty", empty);
	EXPECT_EQ(-ETIME, kevent_queue_wait_timeout(&q, &e, SEC / 20, NULL));
	for (int i = 0; i < N; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
	kevent_queue_exit(&q);
}

/*
 * A level-triggered registration waiting in the ring to be re-checked can be
 * removed, modified or have its file closed; nothing of it comes back, and
 * the queue closes cleanly with others still waiting.
 */
TEST(ring_level_event_removed_or_closed_while_waiting_for_the_recheck)
{
	int p[3][2], *a = p[0], *b = p[1], *c = p[2];
	struct kevent_queue q;
	struct ukevent *e, u;

	ASSERT_EQ(0, kevent_queue_init(&q, 8, 0));
	ASSERT_EQ(0, lt_readable_pairs(&q, 3, p));
	ASSERT_EQ(3, kevent_queue_ready(&q));
	kevent_queue_advance(&q, 3);
	/* a is removed, b's file closed, c turned edge-triggered. */
	kevent_prep_key(&u, KEVENT_SOCKET, a[0]);
	ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_REMOVE, &u));
	close(b[0]);
	kevent_prep_socket(&u, c[0], RECV, KEVENT_REQ_ET, 33);
	ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_MODIFY, &u));
	/* A MODIFY re-checks the file at once: c comes once more, edge-triggered. */
	if (kevent_queue_ready(&q) == 0)
		ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, SEC, NULL));
	e = kevent_queue_peek(&q);
	ASSERT_NE(NULL, e);
	EXPECT_EQ(33, e->user);
	kevent_queue_advance(&q, 1);
	EXPECT_EQ(-ETIME, kevent_queue_wait_timeout(&q, &e, SEC / 20, NULL));
	/* A registration waiting for its re-check when the queue closes. */
	ASSERT_EQ(1, write(a[1], "y", 1));
	kevent_prep_socket(&u, a[0], RECV, KEVENT_REQ_ALWAYS_QUEUE, 4);
	ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_ADD, &u));
	ASSERT_EQ(1, kevent_queue_ready(&q));
	EXPECT_EQ(4, kevent_queue_peek(&q)->user);
	kevent_queue_advance(&q, 1);
	close(a[0]);
	close(a[1]);
	close(b[1]);
	close(c[0]);
	close(c[1]);
	kevent_queue_exit(&q);
}

struct ctl_loop {
	struct kevent_queue *q;
	int fd;
	int rounds;
	atomic_int *running;
	int failed;
};

/* MODIFYs a level-triggered RECV registration of @fd over and over. */
static void *modify_in_a_loop(void *arg)
{
	struct ctl_loop *c = arg;
	struct ukevent u;

	for (int i = 0; i < c->rounds && !c->failed; i++) {
		kevent_prep_socket(&u, c->fd, RECV, 0, 5);
		if (kevent_queue_ctl(c->q, KEVENT_CTL_MODIFY, &u))
			c->failed = 1;
	}
	atomic_fetch_sub(c->running, 1);
	return NULL;
}

/*
 * kevent_wait re-checks consumed level-triggered entries under the queue's
 * registrations lock while more threads than CPUs change registrations, so
 * that some wait for that lock: every round still brings each readable
 * socket back once. (The debug kernel's lockdep checks the order of the
 * locks: it reported the registrations mutex released, with waiters, under
 * the ready lock, which interrupts take. A timer on another queue takes a
 * ready lock in an interrupt, for lockdep to know.)
 */
TEST(ring_level_recheck_races_with_ctl)
{
	enum { THREADS = 4, N = 32 };
	int p[N][2], other[THREADS][2], rounds = 0;
	struct kevent_queue q;
	struct ctl_loop c[THREADS];
	atomic_int running = THREADS;
	pthread_t t[THREADS];
	struct ukevent u;
	int timers = kevent_init(0, 0);

	ASSERT_LE(0, timers);
	kevent_prep_timer(&u, 1000000, 0, 1);
	ASSERT_EQ(0, kevent_ctl(timers, KEVENT_CTL_ADD, 1, &u));
	ASSERT_EQ(0, kevent_queue_init(&q, 64, 0));
	ASSERT_EQ(0, lt_readable_pairs(&q, N, p));
	for (int i = 0; i < THREADS; i++) {
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, other[i]));
		kevent_prep_socket(&u, other[i][0], RECV, 0, 100);
		ASSERT_EQ(0, kevent_queue_ctl(&q, KEVENT_CTL_ADD, &u));
		c[i] = (struct ctl_loop){ &q, other[i][0], 2000, &running, 0 };
	}
	for (int i = 0; i < THREADS; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, modify_in_a_loop, &c[i]));
	while (atomic_load(&running)) {
		unsigned long long seen = 0;
		struct ukevent *e;

		for (int i = 0; i < N; i++) {
			ASSERT_EQ(0, kevent_queue_wait_timeout(&q, &e, SEC, NULL));
			ASSERT_TRUE(e->user >= 1 && e->user <= N);
			seen |= 1ull << (e->user - 1);
			kevent_queue_advance(&q, 1);
		}
		EXPECT_EQ((1ull << N) - 1, seen) TH_LOG("round %d", rounds);
		rounds++;
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, c[i].failed) TH_LOG("thread %d", i);
		close(other[i][0]);
		close(other[i][1]);
	}
	TH_LOG("%d rounds of %d re-checks during %d MODIFYs", rounds, N,
	       THREADS * c[0].rounds);
	EXPECT_LT(0, rounds);
	for (int i = 0; i < N; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
	kevent_queue_exit(&q);
	close(timers);
}

/* ---- teardown ---- */

TEST_F(src, close_removes_and_dup_reuse_gets_nothing)
{
	struct ukevent out[2];
	int fd = self->p[0], other[2];

	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, fd, RECV, 0));
	close(fd);
	EXPECT_EQ(-ENOENT, del(self->q, KEVENT_PIPE, fd));
	ASSERT_EQ(0, pipe(other));
	ASSERT_EQ(fd, dup2(other[0], fd));
	ASSERT_EQ(1, write(other[1], "z", 1));
	EXPECT_EQ(0, harvest(self->q, 0, 2, out, 100));
	close(other[0]);
	close(other[1]);
}

TEST_F(src, close_while_events_fire)
{
	struct ukevent out[64];

	for (int round = 0; round < 200; round++) {
		int p[2];

		ASSERT_EQ(0, pipe2(p, O_NONBLOCK));
		ASSERT_EQ(0, add(self->q, KEVENT_PIPE, p[0], RECV, 0));
		ASSERT_EQ(1, write(p[1], "x", 1));
		/* Half the time the file goes away with its event queued. */
		if (round & 1)
			close(p[0]);
		EXPECT_EQ(round & 1 ? 0 : 1, harvest(self->q, 0, 64, out, 0));
		close(p[0]);
		close(p[1]);
	}
	EXPECT_EQ(0, harvest(self->q, 0, 64, out, 0));
}

/* ---- signals ---- */

static volatile sig_atomic_t handled;

static void count_handler(int sig)
{
	handled++;
}

TEST_F(src, signal_nomask_consumes)
{
	struct ukevent out[2];
	sigset_t pend;

	handled = 0;
	signal(SIGUSR1, count_handler);
	ASSERT_EQ(0, add(self->q, KEVENT_SIGNAL, SIGUSR1 | KEVENT_SIGNAL_NOMASK,
			 KEVENT_SIGNAL_DELIVERY, 0));
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(KEVENT_SIGNAL, out[0].type);
	EXPECT_EQ(1, out[0].ret_data[0]);
	EXPECT_EQ(getpid(), (pid_t)out[0].ret_data[1]);
	EXPECT_EQ(0, handled);
	sigpending(&pend);
	EXPECT_FALSE(sigismember(&pend, SIGUSR1));
	signal(SIGUSR1, SIG_DFL);
}

TEST_F(src, signal_without_nomask_runs_handler_too)
{
	struct ukevent out[2];

	handled = 0;
	signal(SIGUSR2, count_handler);
	ASSERT_EQ(0, add(self->q, KEVENT_SIGNAL, SIGUSR2, KEVENT_SIGNAL_DELIVERY, 0));
	ASSERT_EQ(0, kill(getpid(), SIGUSR2));
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(1, handled);
	signal(SIGUSR2, SIG_DFL);
}

TEST_F(src, rt_signals_are_counted)
{
	union sigval v = { .sival_int = 1 };
	struct ukevent out[2];
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &set, NULL);
	ASSERT_EQ(0, add(self->q, KEVENT_SIGNAL, SIGRTMIN | KEVENT_SIGNAL_NOMASK,
			 KEVENT_SIGNAL_DELIVERY, 0));
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(0, sigqueue(getpid(), SIGRTMIN, v));
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(5, out[0].ret_data[0]);
	sigpending(&set);
	EXPECT_FALSE(sigismember(&set, SIGRTMIN));
	/* A thread-directed signal counts too. */
	ASSERT_EQ(0, pthread_kill(pthread_self(), SIGRTMIN));
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 1000));
	EXPECT_EQ(1, out[0].ret_data[0]);
}

TEST_F(src, sigchld_names_the_child)
{
	struct ukevent out[2];
	pid_t child;

	ASSERT_EQ(0, add(self->q, KEVENT_SIGNAL, SIGCHLD, KEVENT_SIGNAL_DELIVERY, 0));
	child = fork();
	if (child == 0)
		_exit(0);
	ASSERT_EQ(1, harvest(self->q, 1, 2, out, 2000));
	EXPECT_EQ(child, (pid_t)out[0].ret_data[1]);
	waitpid(child, NULL, 0);
}

TEST_F_TIMEOUT(src, signal_and_io_order_matches_seq, 300)
{
	struct ukevent out[4];
	unsigned int seed = 0x6b65, bad = 0;
	uint64_t start = now_ns();
	char c;

	ASSERT_EQ(0, add(self->q, KEVENT_SIGNAL, SIGUSR2 | KEVENT_SIGNAL_NOMASK,
			 KEVENT_SIGNAL_DELIVERY, 0));
	ASSERT_EQ(0, add(self->q, KEVENT_PIPE, self->p[0], RECV, KEVENT_REQ_ET));
	for (int i = 0; i < 100000; i++) {
		int signal_first = rand_r(&seed) & 1, n;

		if (signal_first)
			kill(getpid(), SIGUSR2);
		ASSERT_EQ(1, write(self->p[1], "x", 1));
		if (!signal_first)
			kill(getpid(), SIGUSR2);
		n = harvest(self->q, 2, 4, out, 1000);
		ASSERT_EQ(2, n);
		ASSERT_LT(out[0].seq, out[1].seq);
		if ((out[0].type == KEVENT_SIGNAL) != signal_first)
			bad++;
		ASSERT_EQ(1, read(self->p[0], &c, 1));
	}
	EXPECT_EQ(0, bad);
	ksft_print_msg("100000 signal/write pairs in random order, harvested in order, in %.1f s\n",
		       (now_ns() - start) / 1e9);
}

TEST_F(src, exiting_process_leaves_no_registration)
{
	struct ukevent out[2];
	pid_t child = fork();

	if (child == 0) {
		/* Registers its own signal and a pipe on the parent's queue, then exits. */
		if (add(self->q, KEVENT_SIGNAL, SIGUSR1, KEVENT_SIGNAL_DELIVERY, 0))
			_exit(1);
		if (add(self->q, KEVENT_PIPE, self->p[0], RECV, 0))
			_exit(2);
		_exit(0);
	}
	ASSERT_LT(0, child);
	int status;

	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* The signal registration went with the process; the pipe one stays (the file lives). */
	EXPECT_EQ(-ENOENT, del(self->q, KEVENT_SIGNAL, SIGUSR1));
	EXPECT_EQ(0, del(self->q, KEVENT_PIPE, self->p[0]));
	EXPECT_EQ(0, harvest(self->q, 0, 2, out, 0));
}

/* ---- POSIX timers ---- */

TEST_F(src, posix_timer_periodic_then_delete)
{
	struct itimerspec its = { .it_value = { 0, 5000000 }, .it_interval = { 0, 5000000 } };
	struct ukevent out[8];
	struct sigevent sev;
	unsigned int total = 0;
	timer_t t;
	uint64_t end;

	kevent_sigevent(&sev, self->q);
	sev.sigev_value.sival_ptr = (void *)0x1234;
	ASSERT_EQ(0, timer_create(CLOCK_MONOTONIC, &sev, &t));
	ASSERT_EQ(0, timer_settime(t, 0, &its, NULL));
	end = now_ns() + 100000000ull;
	while (now_ns() < end) {
		int n = harvest(self->q, 1, 8, out, 200);

		ASSERT_LE(0, n);
		for (int i = 0; i < n; i++) {
			EXPECT_EQ(KEVENT_POSIX_TIMER, out[i].type);
			EXPECT_EQ((uint64_t)(uintptr_t)t, out[i].id.raw_u64);
			EXPECT_EQ(0x1234, out[i].user);
			total += out[i].ret_data[0];
		}
	}
	EXPECT_LE(5, total);
	ASSERT_EQ(0, timer_delete(t));
	EXPECT_EQ(-ENOENT, del(self->q, KEVENT_POSIX_TIMER, (uintptr_t)t));
	harvest(self->q, 0, 8, out, 0);
	EXPECT_EQ(0, harvest(self->q, 0, 8, out, 50));

	/* Closing the queue first leaves the timer running, silently. */
	int q2 = kevent_init(0, 0);

	kevent_sigevent(&sev, q2);
	ASSERT_EQ(0, timer_create(CLOCK_MONOTONIC, &sev, &t));
	ASSERT_EQ(0, timer_settime(t, 0, &its, NULL));
	usleep(20000);
	close(q2);
	usleep(20000);
	ASSERT_EQ(0, timer_delete(t));
	kevent_sigevent(&sev, self->p[0]);
	EXPECT_EQ(-1, timer_create(CLOCK_MONOTONIC, &sev, &t));
	EXPECT_EQ(EINVAL, errno);
}

/* ---- load: 64 echo connections through one queue for 10 s ---- */

#define CONNS 64

/* The echo server: one queue, ACCEPT on the listener, RECV on every connection. */
static void echo_server(int l, int report)
{
	static char buf[65536];
	struct ukevent out[64];
	long long echoed = 0;
	int q = kevent_init(0, 0), closed = 0;

	/* Clients may connect first: ALWAYS_QUEUE keeps a listener that is ready at ADD. */
	if (add(q, KEVENT_SOCKET, l, ACCEPT, KEVENT_REQ_ALWAYS_QUEUE))
		_exit(3);
	while (closed < CONNS) {
		int n = harvest(q, 1, 64, out, 5000);

		if (n <= 0)
			_exit(4);
		for (int i = 0; i < n; i++) {
			int fd = out[i].id.raw[0], c;

			if (fd == l) {
				while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0)
					if (add(q, KEVENT_SOCKET, c, RECV,
						KEVENT_REQ_ALWAYS_QUEUE) < 0)
						_exit(5);
				continue;
			}
			for (;;) {
				ssize_t r = read(fd, buf, sizeof(buf)), w = 0;

				if (r == 0 || (r < 0 && errno != EAGAIN)) {
					close(fd);
					closed++;
					break;
				}
				if (r < 0)
					break;
				while (w < r) {
					ssize_t k = write(fd, buf + w, r - w);

					if (k < 0 && errno == EAGAIN) {
						struct pollfd pf = { .fd = fd, .events = POLLOUT };

						poll(&pf, 1, 1000);
						continue;
					}
					if (k < 0)
						_exit(6);
					w += k;
				}
				echoed += r;
			}
		}
	}
	if (write(report, &echoed, sizeof(echoed)) != sizeof(echoed))
		_exit(7);
	_exit(0);
}

TEST_F_TIMEOUT(src, echo_load_64_connections_10s, 120)
{
	static char sbuf[CONNS][8192], rbuf[8192];
	long long sent = 0, received = 0, echoed = -1;
	unsigned int seed = 42, rounds = 0, mismatches = 0;
	struct sockaddr_in sin;
	int l = listener(&sin), rep[2], c[CONNS], status;
	pid_t server;
	uint64_t end;

	ASSERT_LE(0, l);
	ASSERT_EQ(0, pipe(rep));
	server = fork();
	if (server == 0)
		echo_server(l, rep[1]);
	for (int i = 0; i < CONNS; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM, 0);
		ASSERT_EQ(0, connect(c[i], (void *)&sin, sizeof(sin)));
	}
	end = now_ns() + 10000000000ull;
	while (now_ns() < end) {
		/* Every connection sends a random-sized chunk, then all are read back. */
		size_t len[CONNS];

		for (int i = 0; i < CONNS; i++) {
			len[i] = 1 + rand_r(&seed) % sizeof(sbuf[i]);
			for (size_t k = 0; k < len[i]; k++)
				sbuf[i][k] = (char)(i * 31 + k + rounds);
			ASSERT_EQ((ssize_t)len[i], write(c[i], sbuf[i], len[i]));
			sent += len[i];
		}
		for (int i = 0; i < CONNS; i++) {
			size_t got = 0;

			while (got < len[i]) {
				struct pollfd pf = { .fd = c[i], .events = POLLIN };
				ssize_t r;

				if (poll(&pf, 1, 5000) != 1) {
					int st = -1;

					waitpid(server, &st, WNOHANG);
					ksft_print_msg("conn %d: no echo after 5 s (round %u, %zu/%zu bytes); server status %#x\n",
						       i, rounds, got, len[i], st);
					kill(server, SIGKILL);
					ASSERT_TRUE(0);
				}
				r = read(c[i], rbuf + got, len[i] - got);
				ASSERT_LT(0, r);
				got += r;
			}
			mismatches += memcmp(rbuf, sbuf[i], len[i]) != 0;
			received += got;
		}
		rounds++;
	}
	for (int i = 0; i < CONNS; i++)
		close(c[i]);
	ASSERT_EQ(sizeof(echoed), read(rep[0], &echoed, sizeof(echoed)));
	ASSERT_EQ(server, waitpid(server, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(sent, received);
	EXPECT_EQ(sent, echoed);
	EXPECT_EQ(0, mismatches);
	EXPECT_LT(0, rounds);
	ksft_print_msg("echo load: %d connections, %u rounds, %lld bytes each way in 10 s, %lld bytes echoed by the server\n",
		       CONNS, rounds, sent, echoed);
	close(l);
}

TEST_HARNESS_MAIN
