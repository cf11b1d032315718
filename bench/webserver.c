// SPDX-License-Identifier: GPL-2.0
/*
 * Web server (the 2006 evserver benchmark): the same tiny HTTP/1.1 server
 * written three ways, each single-threaded, driven by a load generator in
 * the same VM over loopback:
 *
 *   kevent     ACCEPT on the listener, RECV on each connection (one
 *              kevent_queue_ctl() per accepted connection), 64 events per
 *              kevent_queue_harvest() on a queue without a ring (one
 *              kevent_get_events()), read()/write()
 *   epoll      the same with epoll_wait() (level triggered)
 *   io_uring   multishot accept, one recv per request (re-armed), write()
 *
 * Modes: keep-alive (CONNS connections, one request in flight on each) and
 * connection-per-request (connect, request, response, close with RST so
 * that no TIME_WAIT piles up). Reports requests/s and the p50/p99/p99.9
 * latency seen by the client. Every response is compared byte for byte.
 *
 *	webserver [REPEATS] [MILLISECONDS] [CONNS]	defaults: 3, 1000, 32
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static const char request[] = "GET /index.html HTTP/1.1\r\nHost: bench\r\n\r\n";
static const char response[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world\n";
#define REQ_LEN (sizeof(request) - 1)
#define RESP_LEN (sizeof(response) - 1)

/* Answers the complete requests in @buf[0..n); false when the connection should close. */
static int answer(int fd, const char *buf, ssize_t n)
{
	for (const char *p = buf; (p = memmem(p, buf + n - p, "\r\n\r\n", 4)); p += 4)
		if (write(fd, response, RESP_LEN) != (ssize_t)RESP_LEN)
			return 0;
	return 1;
}

/* Reads what a connection sent and answers it; false when it should close. */
static int serve(int fd)
{
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0 && errno == EAGAIN)
		return 1;
	return n > 0 && answer(fd, buf, n);
}

static void server_kevent(int l)
{
	struct ukevent ev[64], e;
	struct kevent_queue q;

	check_ret(kevent_queue_init(&q, 0, 0), "kevent_queue_init");
	kevent_prep_socket(&e, l, KEVENT_SOCKET_ACCEPT, KEVENT_REQ_ALWAYS_QUEUE, 0);
	check(kevent_queue_ctl(&q, KEVENT_CTL_ADD, &e) == 0, "kevent listener");
	for (;;) {
		/* No ring: one kevent_get_events(). */
		int n = kevent_queue_harvest(&q, ev, 1, 64, NULL);

		for (int i = 0; i < n; i++) {
			int fd = ev[i].id.raw[0], c;

			if (fd == l) {
				/* One kevent_ctl() per connection, as it is accepted. */
				while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					kevent_prep_socket(&e, c, KEVENT_SOCKET_RECV,
							   KEVENT_REQ_ALWAYS_QUEUE, 0);
					check(kevent_queue_ctl(&q, KEVENT_CTL_ADD, &e) == 0,
					      "kevent add");
				}
			} else if (!serve(fd)) {
				close(fd);
			}
		}
	}
}

static void server_epoll(int l)
{
	struct epoll_event ev[64], e = { .events = EPOLLIN, .data.fd = l };
	int ep = epoll_create1(0);

	check(epoll_ctl(ep, EPOLL_CTL_ADD, l, &e) == 0, "epoll listener");
	for (;;) {
		int n = epoll_wait(ep, ev, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd, c;

			if (fd == l) {
				while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					e.data.fd = c;
					check(epoll_ctl(ep, EPOLL_CTL_ADD, c, &e) == 0, "epoll add");
				}
			} else if (!serve(fd)) {
				close(fd);
			}
		}
	}
}

#define URING_ACCEPT (1ull << 40)

static void uring_recv(struct io_uring *ring, int fd, char **bufs)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	io_uring_prep_recv(sqe, fd, bufs[fd], 4096, 0);
	io_uring_sqe_set_data64(sqe, fd);
}

static void server_uring(int l)
{
	static char *bufs[65536];
	struct io_uring ring;
	struct io_uring_sqe *sqe;

	check(io_uring_queue_init(4096, &ring, 0) == 0, "io_uring_queue_init");
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_multishot_accept(sqe, l, NULL, NULL, 0);
	io_uring_sqe_set_data64(sqe, URING_ACCEPT);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		check(io_uring_submit_and_wait(&ring, 1) >= 0, "io_uring_submit_and_wait");
		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t data = io_uring_cqe_get_data64(cqe);
			int fd = (int)data;

			seen++;
			if (data == URING_ACCEPT) {
				if (cqe->res >= 0 && cqe->res < 65536) {
					if (!bufs[cqe->res])
						bufs[cqe->res] = malloc(4096);
					uring_recv(&ring, cqe->res, bufs);
				}
				if (!(cqe->flags & IORING_CQE_F_MORE)) {
					sqe = io_uring_get_sqe(&ring);
					io_uring_prep_multishot_accept(sqe, l, NULL, NULL, 0);
					io_uring_sqe_set_data64(sqe, URING_ACCEPT);
				}
			} else if (cqe->res > 0 && answer(fd, bufs[fd], cqe->res)) {
				uring_recv(&ring, fd, bufs);
			} else {
				close(fd);
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
}

/* ---- the load generator ---- */

struct conn {
	int fd;
	size_t got;
	uint64_t sent_at;
	char buf[RESP_LEN];
};

struct load {
	struct sockaddr_in sin;
	int ep, keepalive;
	uint64_t *lat;
	size_t nlat, cap;
	long bad;
};

static void conn_start(struct load *ld, struct conn *c)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
	int one = 1;

	if (c->fd < 0) {
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->sent_at = now_ns();
		if (connect(c->fd, (void *)&ld->sin, sizeof(ld->sin)))
			die("connect");
		check(epoll_ctl(ld->ep, EPOLL_CTL_ADD, c->fd, &e) == 0, "client epoll");
	} else {
		c->sent_at = now_ns();
	}
	c->got = 0;
	if (write(c->fd, request, REQ_LEN) != (ssize_t)REQ_LEN)
		die("client write");
}

static void conn_done(struct load *ld, struct conn *c)
{
	if (ld->nlat < ld->cap)
		ld->lat[ld->nlat++] = now_ns() - c->sent_at;
	if (memcmp(c->buf, response, RESP_LEN))
		ld->bad++;
	if (!ld->keepalive) {
		struct linger lg = { 1, 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c->fd);
		c->fd = -1;
	}
}

static void run_load(const char *backend, const char *mode, int port, int conns, uint64_t ms)
{
	struct load ld = { .keepalive = !strcmp(mode, "keepalive"), .cap = 4000000 };
	struct conn *c = calloc(conns, sizeof(*c));
	struct epoll_event ev[64];
	uint64_t start, end;
	long done = 0;

	ld.sin.sin_family = AF_INET;
	ld.sin.sin_port = htons(port);
	ld.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ld.ep = epoll_create1(0);
	ld.lat = malloc(ld.cap * sizeof(uint64_t));
	for (int i = 0; i < conns; i++) {
		c[i].fd = -1;
		conn_start(&ld, &c[i]);
	}
	start = now_ns();
	end = start + ms * 1000000;
	while (now_ns() < end) {
		int n = epoll_wait(ld.ep, ev, 64, 5000);

		check(n > 0, "no response from the server within 5 s");
		for (int i = 0; i < n; i++) {
			struct conn *cn = ev[i].data.ptr;
			ssize_t r = read(cn->fd, cn->buf + cn->got, RESP_LEN - cn->got);

			check(r > 0, "server closed a connection");
			cn->got += r;
			if (cn->got < RESP_LEN)
				continue;
			conn_done(&ld, cn);
			done++;
			conn_start(&ld, cn);
		}
	}
	double secs = (now_ns() - start) / 1e9;

	for (int i = 0; i < conns; i++)
		close(c[i].fd);
	close(ld.ep);
	check(ld.bad == 0, "every response is the expected one");
	check(done > 0, "requests completed");
	emit("webserver", mode, backend, "req_per_s", done / secs);
	emit("webserver", mode, backend, "p50_us", percentile(ld.lat, ld.nlat, 50) / 1e3);
	emit("webserver", mode, backend, "p99_us", percentile(ld.lat, ld.nlat, 99) / 1e3);
	emit("webserver", mode, backend, "p99.9_us", percentile(ld.lat, ld.nlat, 99.9) / 1e3);
	free(ld.lat);
	free(c);
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 3, conns = argc > 3 ? atoi(argv[3]) : 32;
	uint64_t ms = argc > 2 ? atoi(argv[2]) : 1000;
	static const char *backends[] = { "kevent", "epoll", "io_uring" };
	static const char *modes[] = { "keepalive", "close" };
	void (*servers[])(int) = { server_kevent, server_epoll, server_uring };
	raise_nofile();
	printf("webserver: %d repeats of %llu ms, %d client connections, loopback\n", repeats,
	       (unsigned long long)ms, conns);
	for (int rep = 0; rep < repeats; rep++) {
		for (int m = 0; m < 2; m++) {
			for (int b = 0; b < 3; b++) {
				struct sockaddr_in sin = { .sin_family = AF_INET };
				socklen_t len = sizeof(sin);
				int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
				pid_t pid;

				sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
				setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
				if (bind(l, (void *)&sin, len) || listen(l, 4096) ||
				    getsockname(l, (void *)&sin, &len))
					die("listen");
				pid = fork();
				if (pid == 0) {
					servers[b](l);
					_exit(1);
				}
				close(l);
				run_load(backends[b], modes[m], ntohs(sin.sin_port), conns, ms);
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
			}
		}
	}
	return 0;
}
