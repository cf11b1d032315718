// SPDX-License-Identifier: GPL-2.0
/*
 * TCP ping-pong through asynchronous calls: N loopback TCP connections, one
 * message (64 bytes or 4 KiB) in flight on each. The loop receives the message on one
 * end of a connection and sends it back into the other end, which makes the
 * first end readable again. Measures messages handled per second:
 *
 *   kevent-aio               one aio_recv() pending per connection; on its
 *                            completion (read from the 4096-entry ring:
 *                            kevent_queue_peek_batch(), one
 *                            kevent_queue_advance() per batch after it is
 *                            handled, kevent_queue_wait() with a 100 ms
 *                            timeout only when it is empty) the message is
 *                            sent with aio_send() and a new aio_recv() is
 *                            submitted; the send's completion is harvested
 *                            too
 *   kevent-aio_recv+send     the same, sending with send()
 *   epoll-ET                 recv() on each readable end (one message in
 *                            flight: it empties the socket), send()
 *   io_uring                 one IORING_OP_RECV pending per connection; on
 *                            its CQE an IORING_OP_SEND and a new RECV are
 *                            queued, submitted in one io_uring_submit_and_wait()
 *
 *	aiopingpong [REPEATS] [MILLISECONDS] [N...]	defaults: 3, 500, N = 1 64
 *
 * AIOPINGPONG_ONLY=NAME in the environment runs only the mechanism NAME (for
 * profiling one of them).
 *
 * Every message is checked (it names its connection), and each connection
 * carries exactly one message throughout. Besides messages/s it reports the
 * system calls the loop made per message (counted at each call site) and
 * the context switches per message (getrusage, voluntary and involuntary).
 */
#include <fcntl.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include "bench.h"

#define MSG_MAX 4096
#define RING 4096

struct conns {
	int n;
	int *rd, *wr;
	size_t msg;		/* message size */
	long syscalls;		/* system calls in the timed loop */
	unsigned char (*buf)[MSG_MAX];
	long handled;
};

static void conns_open(struct conns *c, int n, size_t msg)
{
	int one = 1;

	c->n = n;
	c->rd = calloc(n, sizeof(int));
	c->wr = calloc(n, sizeof(int));
	c->msg = msg;
	c->syscalls = 0;
	c->buf = calloc(n, MSG_MAX);
	c->handled = 0;
	for (int i = 0; i < n; i++) {
		loopback_tcp(&c->wr[i], &c->rd[i]);
		setsockopt(c->wr[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(c->rd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		memset(c->buf[i], 0, msg);
		memcpy(c->buf[i], &i, sizeof(i));
		check(send(c->wr[i], c->buf[i], msg, 0) == (ssize_t)msg, "first message");
	}
}

static void conns_close(struct conns *c)
{
	for (int i = 0; i < c->n; i++) {
		close(c->rd[i]);
		close(c->wr[i]);
	}
	free(c->rd);
	free(c->wr);
	free(c->buf);
}

/* The message received on connection @i must name it. */
static void check_msg(const struct conns *c, int i, long len)
{
	int who;

	check(len == (long)c->msg, "a whole message");
	memcpy(&who, c->buf[i], sizeof(who));
	check(who == i, "message names its connection");
}

static void run_epoll(struct conns *c, uint64_t end)
{
	struct epoll_event ev[64];
	int ep = epoll_create1(0);

	for (int i = 0; i < c->n; i++) {
		struct epoll_event e = { .events = EPOLLIN | EPOLLET, .data.u32 = i };

		fcntl(c->rd[i], F_SETFL, O_NONBLOCK);
		check(epoll_ctl(ep, EPOLL_CTL_ADD, c->rd[i], &e) == 0, "epoll_ctl");
	}
	while (now_ns() < end) {
		int n = epoll_wait(ep, ev, 64, 100);

		c->syscalls++;

		for (int k = 0; k < n; k++) {
			int i = ev[k].data.u32;
			long r;

			/*
			 * One message in flight per connection: after it is taken the
			 * socket is empty, and sending it back makes the next edge.
			 */
			r = recv(c->rd[i], c->buf[i], c->msg, MSG_WAITALL);
			c->syscalls++;
			if (r < 0 && errno == EAGAIN)
				continue;
			check_msg(c, i, r);
			check(send(c->wr[i], c->buf[i], c->msg, 0) == (ssize_t)c->msg, "send");
			c->syscalls++;
			c->handled++;
		}
	}
	close(ep);
}

/* Request id to connection: open addressing, ids are unique and never 0. */
struct idmap {
	unsigned int mask;
	long *id;
	int *conn;
};

static void idmap_init(struct idmap *m, int n)
{
	unsigned int size = 16;

	while (size < 4u * n)
		size <<= 1;
	m->mask = size - 1;
	m->id = calloc(size, sizeof(long));
	m->conn = calloc(size, sizeof(int));
}

static void idmap_put(struct idmap *m, long id, int conn)
{
	unsigned int h = (unsigned int)id * 2654435761u & m->mask;

	while (m->id[h])
		h = (h + 1) & m->mask;
	m->id[h] = id;
	m->conn[h] = conn;
}

/* Removes @id and returns its connection, -1 if absent (backward-shift delete). */
static int idmap_take(struct idmap *m, long id)
{
	unsigned int h = (unsigned int)id * 2654435761u & m->mask, j;
	int conn;

	while (m->id[h] != id) {
		if (!m->id[h])
			return -1;
		h = (h + 1) & m->mask;
	}
	conn = m->conn[h];
	m->id[h] = 0;
	for (j = (h + 1) & m->mask; m->id[j]; j = (j + 1) & m->mask) {
		unsigned int home = (unsigned int)m->id[j] * 2654435761u & m->mask;

		/* Move back entries whose probe path crosses the hole. */
		if (((j - home) & m->mask) >= ((j - h) & m->mask)) {
			m->id[h] = m->id[j];
			m->conn[h] = m->conn[j];
			m->id[j] = 0;
			h = j;
		}
	}
	return conn;
}

/* The next receive on connection @i, remembered in @map. */
static void kevent_recv(struct kevent_queue *q, struct idmap *map, struct conns *c, int i)
{
	int64_t id = kevent_queue_aio_recv(q, c->rd[i], c->buf[i], c->msg, MSG_WAITALL);

	check_ret(id, "aio_recv");
	check(id != 0, "aio_recv: request ids are never 0");
	idmap_put(map, id, i);
}

/* kevent: completions from the ring; @aio_send sends with aio_send(), else send(). */
static void run_kevent(struct conns *c, uint64_t end, int aio_send_too)
{
	struct kevent_queue q;
	struct kevent_wait_arg wa;
	struct ukevent **ev = calloc(RING, sizeof(*ev));
	struct idmap map;

	check_ret(kevent_queue_init(&q, RING, 0), "kevent ring");
	kevent_wait_arg_init(&wa, 100000000, NULL);	/* 100 ms */
	idmap_init(&map, c->n);
	for (int i = 0; i < c->n; i++)
		kevent_recv(&q, &map, c, i);
	while (now_ns() < end) {
		/* Everything published now; the slots go back after it is handled. */
		unsigned int n = kevent_queue_peek_batch(&q, ev, RING);

		if (!n) {
			/* The ring is empty: sleep in kevent_wait(). */
			struct ukevent *e;
			int ret = kevent_queue_wait(&q, &e, &wa);

			c->syscalls++;
			check(ret == 0 || ret == -ETIME || ret == -EINTR || ret == -ETIMEDOUT,
			      "kevent_queue_wait");
			continue;
		}
		for (unsigned int j = 0; j < n; j++) {
			const struct ukevent *e = ev[j];
			int i;

			check(e->ret_data[1] == 0, "aio result");
			if (e->event == KEVENT_SOCKET_SEND)
				continue;	/* an aio_send() completed */
			i = idmap_take(&map, (long)e->id.raw_u64);
			check(i >= 0, "completion of a pending receive");
			check_msg(c, i, e->ret_data[0]);
			if (aio_send_too)
				check_ret(kevent_queue_aio_send(&q, c->wr[i], c->buf[i], c->msg, 0),
					  "aio_send");
			else
				check(send(c->wr[i], c->buf[i], c->msg, 0) == (ssize_t)c->msg, "send");
			kevent_recv(&q, &map, c, i);
			c->syscalls += 2;	/* the reply and the next receive */
			c->handled++;
		}
		kevent_queue_advance(&q, n);
	}
	kevent_queue_exit(&q);
	free(ev);
	free(map.id);
	free(map.conn);
}

static void uring_recv(struct io_uring *ring, struct conns *c, int i)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	io_uring_prep_recv(sqe, c->rd[i], c->buf[i], c->msg, MSG_WAITALL);
	sqe->user_data = (uint64_t)i << 1;
}

static void run_uring(struct conns *c, uint64_t end)
{
	struct io_uring ring;

	check(io_uring_queue_init(2 * c->n + 8 < 64 ? 64 : 2 * c->n + 8, &ring, 0) == 0,
	      "io_uring_queue_init");
	for (int i = 0; i < c->n; i++)
		uring_recv(&ring, c, i);
	while (now_ns() < end) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		check(io_uring_submit_and_wait(&ring, 1) >= 0, "io_uring_submit_and_wait");
		c->syscalls++;
		io_uring_for_each_cqe(&ring, head, cqe) {
			int i = cqe->user_data >> 1;

			seen++;
			check(cqe->res == (int)c->msg, "io_uring result");
			if (cqe->user_data & 1)
				continue;	/* a send completed */
			check_msg(c, i, cqe->res);
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_send(sqe, c->wr[i], c->buf[i], c->msg, 0);
			sqe->user_data = (uint64_t)i << 1 | 1;
			uring_recv(&ring, c, i);
			c->handled++;
		}
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring);
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 3, ms = argc > 2 ? atoi(argv[2]) : 500;
	static const size_t sizes[] = { 64, 4096 };
	int def[] = { 1, 64 }, nn;
	int *ns = int_args(argc, argv, 3, def, 2, &nn);
	static const char *const names[] = { "kevent-aio", "kevent-aio_recv+send", "epoll-ET",
					     "io_uring" };

	raise_nofile();
	printf("aiopingpong: %d repeats of %d ms per mechanism, 64-byte and 4 KiB messages over TCP\n",
	       repeats, ms);
	for (int rep = 0; rep < repeats; rep++) {
		for (int zk = 0; zk < 2 * nn; zk++) {
			int z = zk / nn, k = zk % nn;

			for (int m = 0; m < 4; m++) {
				const char *only = getenv("AIOPINGPONG_ONLY");
				struct conns c;
				char cs[32];
				uint64_t t0, end;

				struct rusage ru0, ru1;

				if (only && strcmp(only, names[m]))
					continue;
				conns_open(&c, ns[k], sizes[z]);
				getrusage(RUSAGE_SELF, &ru0);
				t0 = now_ns();
				end = t0 + (uint64_t)ms * 1000000;
				switch (m) {
				case 0: run_kevent(&c, end, 1); break;
				case 1: run_kevent(&c, end, 0); break;
				case 2: run_epoll(&c, end); break;
				default: run_uring(&c, end); break;
				}
				double secs = (now_ns() - t0) / 1e9;
				long csw;

				getrusage(RUSAGE_SELF, &ru1);
				csw = ru1.ru_nvcsw - ru0.ru_nvcsw + ru1.ru_nivcsw - ru0.ru_nivcsw;

				snprintf(cs, sizeof(cs), "tcp-%s-N=%d", sizes[z] == 64 ? "64B" : "4KiB",
					 ns[k]);
				emit("aiopingpong", cs, names[m], "msgs_per_s", c.handled / secs);
				emit("aiopingpong", cs, names[m], "syscalls_per_msg",
				     (double)c.syscalls / (c.handled ? c.handled : 1));
				emit("aiopingpong", cs, names[m], "ctxsw_per_msg",
				     (double)csw / (c.handled ? c.handled : 1));
				conns_close(&c);
			}
		}
	}
	return 0;
}
