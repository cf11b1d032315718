// SPDX-License-Identifier: GPL-2.0
/*
 * Receiving a TCP stream: one loopback connection, a sender thread writing a
 * known pattern in 64 KiB writes as fast as it can, and a receiver that takes
 * it with
 *
 *   kevent-aio_recv-ring     4 aio_recv() requests of 64 KiB in flight
 *                            (kevent_queue_aio_recv()), the data copied by
 *                            the receive path straight into them;
 *                            completions read from the 16-entry ring
 *                            (kevent_queue_peek_batch(), one
 *                            kevent_queue_advance() per batch after it is
 *                            handled; kevent_queue_wait() only when it is
 *                            empty), each buffer resubmitted after it is
 *                            checked
 *   epoll-ET                 epoll_wait(), then recv() of 64 KiB until EAGAIN
 *   io_uring-recv-multishot  one multishot recv with a provided-buffer ring of
 *                            8 buffers of 64 KiB; each buffer is given back
 *                            to the ring after it is checked
 *   recv                     blocking recv() of 64 KiB (the baseline)
 *
 * Every mechanism receives the same bytes and checks every one of them
 * against the pattern, so the timed part is the same work for all: producing
 * the data (the sender), receiving and checking it. Metric: MB_per_s.
 *
 *	recvstream [repeats] [MiB per round]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "stream.h"

#define INFLIGHT 4

static void *sender(void *arg)
{
	struct stream *s = arg;
	uint64_t off = 0;

	while (off < s->total) {
		size_t n = s->total - off < CHUNK ? s->total - off : CHUNK;
		ssize_t w = send(s->tx, pattern + off % PERIOD, n, 0);

		if (w < 0)
			die("send");
		off += w;
	}
	return NULL;
}

/* Checks @n received bytes (at most a chunk) against the pattern and counts them. */
static void take(struct stream *s, const unsigned char *buf, size_t n)
{
	check(n <= CHUNK && !memcmp(buf, pattern + s->got % PERIOD, n), "received bytes");
	s->got += n;
}

static void open_stream(struct stream *s, uint64_t total)
{
	loopback_tcp(&s->tx, &s->rx);
	s->total = total;
	s->got = 0;
}

static void run_recv(struct stream *s)
{
	unsigned char *buf = malloc(CHUNK);

	while (s->got < s->total) {
		ssize_t n = recv(s->rx, buf, CHUNK, 0);

		check(n > 0, "recv");
		take(s, buf, n);
	}
	free(buf);
}

static void run_epoll(struct stream *s)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	unsigned char *buf = malloc(CHUNK);
	int ep = epoll_create1(0);

	if (fcntl(s->rx, F_SETFL, fcntl(s->rx, F_GETFL) | O_NONBLOCK))
		die("O_NONBLOCK");
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->rx, &ev))
		die("epoll");
	while (s->got < s->total) {
		ssize_t n = recv(s->rx, buf, CHUNK, 0);

		if (n > 0) {
			take(s, buf, n);
			continue;
		}
		check(n < 0 && errno == EAGAIN, "recv");
		check(epoll_wait(ep, &ev, 1, -1) == 1, "epoll_wait");
	}
	close(ep);
	free(buf);
}

#define RING 16

static void run_kevent_ring(struct stream *s)
{
	struct kevent_queue q;
	struct ukevent *ev[RING];
	unsigned char *buf[INFLIGHT];
	int64_t id[INFLIGHT];
	unsigned int head = 0;	/* the oldest request: completions come in submission order */

	check_ret(kevent_queue_init(&q, RING, 0), "kevent ring");
	for (int i = 0; i < INFLIGHT; i++) {
		buf[i] = malloc(CHUNK);
		id[i] = kevent_queue_aio_recv(&q, s->rx, buf[i], CHUNK, 0);
		check_ret(id[i], "aio_recv");
	}
	while (s->got < s->total) {
		/* Everything published now; the slots go back after it is handled. */
		unsigned int n = kevent_queue_peek_batch(&q, ev, RING);

		if (!n) {
			/* The ring is empty: sleep (EINTR is retried). */
			struct ukevent *e;
			int ret = kevent_queue_wait(&q, &e, NULL);

			check(ret == 0 || ret == -EINTR, "kevent_queue_wait");
			continue;
		}
		for (unsigned int j = 0; j < n; j++) {
			const struct ukevent *e = ev[j];
			unsigned int i = head++ % INFLIGHT;

			check(e->type == KEVENT_NAIO && e->id.raw_u64 == (uint64_t)id[i],
			      "completion order");
			check(e->ret_data[1] == 0 && e->ret_data[0] > 0, "aio_recv result");
			take(s, buf[i], e->ret_data[0]);
			/* Requests left when the stream is complete are cancelled by close(). */
			id[i] = kevent_queue_aio_recv(&q, s->rx, buf[i], CHUNK, 0);
			check_ret(id[i], "aio_recv");
		}
		kevent_queue_advance(&q, n);
	}
	kevent_queue_exit(&q);	/* close() cancels what is still pending */
	for (int i = 0; i < INFLIGHT; i++)
		free(buf[i]);
}

#define NBUF 8

/* io_uring's best form for a stream: one multishot recv into provided buffers. */
static void run_uring(struct stream *s)
{
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	struct io_uring_buf_reg reg = { .ring_entries = NBUF, .bgid = 1 };
	unsigned char *bufs = malloc(NBUF * CHUNK);
	int mask = io_uring_buf_ring_mask(NBUF), arm = 1;

	if (!bufs || io_uring_queue_init(64, &ring, 0) < 0)
		die("io_uring_queue_init");
	br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
		  MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (br == MAP_FAILED)
		die("buffer ring");
	reg.ring_addr = (unsigned long)br;
	if (io_uring_register_buf_ring(&ring, &reg, 0))
		die("io_uring_register_buf_ring");
	io_uring_buf_ring_init(br);
	for (int i = 0; i < NBUF; i++)
		io_uring_buf_ring_add(br, bufs + i * CHUNK, CHUNK, i, mask, i);
	io_uring_buf_ring_advance(br, NBUF);
	while (s->got < s->total) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		if (arm) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_recv_multishot(sqe, s->rx, NULL, 0, 0);
			sqe->flags |= IOSQE_BUFFER_SELECT;
			sqe->buf_group = 1;
			arm = 0;
		}
		check(io_uring_submit_and_wait(&ring, 1) >= 0, "io_uring_submit_and_wait");
		io_uring_for_each_cqe(&ring, head, cqe) {
			seen++;
			if (!(cqe->flags & IORING_CQE_F_MORE))
				arm = 1;	/* ended (out of buffers): arm it again */
			if (cqe->res == -ENOBUFS)
				continue;
			check(cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER), "multishot recv");
			int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

			take(s, bufs + bid * CHUNK, cqe->res);
			io_uring_buf_ring_add(br, bufs + bid * CHUNK, CHUNK, bid, mask, 0);
			io_uring_buf_ring_advance(br, 1);
		}
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring);
	munmap(br, NBUF * sizeof(struct io_uring_buf));
	free(bufs);
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 5;
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 64;
	static const char *const names[] = { "kevent-aio_recv-ring", "epoll-ET",
					     "io_uring-recv-multishot", "recv" };

	make_pattern();
	printf("recvstream: %d repeats of %llu MiB per mechanism over TCP loopback\n", repeats,
	       (unsigned long long)mib);
	for (int rep = 0; rep < repeats; rep++) {
		for (int m = 0; m < 4; m++) {
			struct stream s;
			pthread_t t;
			uint64_t t0;

			open_stream(&s, mib << 20);
			t0 = now_ns();
			check(pthread_create(&t, NULL, sender, &s) == 0, "sender thread");
			if (m == 0)
				run_kevent_ring(&s);
			else if (m == 1)
				run_epoll(&s);
			else if (m == 2)
				run_uring(&s);
			else
				run_recv(&s);
			pthread_join(t, NULL);
			double secs = (now_ns() - t0) / 1e9;

			check(s.got == s.total, "every byte received");
			close(s.rx);
			close(s.tx);
			emit("recvstream", "tcp-64KiB", names[m], "MB_per_s", s.total / 1e6 / secs);
		}
	}
	return 0;
}
