// SPDX-License-Identifier: GPL-2.0
/*
 * evserver: the 2006 kevent web server, redone on libkevent. A tiny
 * HTTP/1.1 server driven by one kevent queue (ACCEPT on the listener, RECV
 * on every connection, registered with kevent_prep_socket() in batches:
 * the connections accepted together go in one kevent_queue_submit();
 * BROKEN for hang-ups; events copied out with kevent_queue_harvest()), and
 * a load generator in the same
 * program: CONNS keep-alive connections issue GET requests for SECONDS, and
 * every response is checked.
 *
 *	evserver [SECONDS] [CONNS]	(default 3 s, 32 connections)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libkevent.h>

static const char body[] = "<html><body>Hello from kevent</body></html>\n";

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/*
 * Prepares the registration of @fd for @event in @q's batch; the caller
 * submits it (a full batch is submitted here first).
 */
static void watch(struct kevent_queue *q, int fd, unsigned int event)
{
	struct ukevent *e = kevent_queue_get_entry(q);

	if (!e) {
		kevent_queue_submit(q, KEVENT_CTL_ADD, NULL);
		e = kevent_queue_get_entry(q);
		if (!e)
			_exit(1);	/* cannot happen: the batch is empty now */
	}
	/* Data may already be waiting: keep the registration and report it. */
	kevent_prep_socket(e, fd, event, KEVENT_REQ_ALWAYS_QUEUE, 0);
}

/* Answers every complete request in the connection's input. */
static int serve(int fd)
{
	char in[4096], out[256];
	int len = snprintf(out, sizeof(out),
			   "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
			   sizeof(body) - 1, body);
	ssize_t n = read(fd, in, sizeof(in) - 1);

	if (n <= 0)
		return n == 0 || errno != EAGAIN ? -1 : 0;
	in[n] = 0;
	for (char *p = in; (p = strstr(p, "\r\n\r\n")); p += 4)
		if (write(fd, out, len) != len)
			return -1;
	return 0;
}

static void server(int l, int expected)
{
	struct ukevent ev[64];
	struct kevent_queue q;
	int closed = 0, ret;

	/* No ring: events are copied out, 64 at most per kevent_get_events(). */
	ret = kevent_queue_init(&q, 0, 0);
	if (ret == 0) {
		watch(&q, l, KEVENT_SOCKET_ACCEPT);
		ret = kevent_queue_submit(&q, KEVENT_CTL_ADD, NULL);
	}
	if (ret < 0) {
		fprintf(stderr, "kevent: %s\n", strerror(-ret));
		_exit(1);
	}
	while (closed < expected) {
		int n = kevent_queue_harvest(&q, ev, 1, 64, NULL);

		for (int i = 0; i < n; i++) {
			int fd = ev[i].id.raw[0], c;

			if (fd == l) {
				/* Every connection accepted now, registered in one kevent_ctl(). */
				while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0)
					watch(&q, c, KEVENT_SOCKET_RECV);
				kevent_queue_submit(&q, KEVENT_CTL_ADD, NULL);
			} else if (serve(fd) < 0 ||
				   (ev[i].ret_flags & KEVENT_RET_BROKEN && ev[i].ret_data[0] == 0)) {
				close(fd);	/* close removes the registration */
				closed++;
			}
		}
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 3, conns = argc > 2 ? atoi(argv[2]) : 32;
	static const char req[] = "GET / HTTP/1.1\r\nHost: vm\r\n\r\n";
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	long long requests = 0, bad = 0;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), *c, status;
	uint64_t start, end;
	pid_t pid;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (void *)&sin, sl) || listen(l, 1024) || getsockname(l, (void *)&sin, &sl)) {
		perror("listen");
		return 1;
	}
	pid = fork();
	if (pid == 0)
		server(l, conns);
	c = calloc(conns, sizeof(*c));
	for (int i = 0; i < conns; i++) {
		int one = 1;

		c[i] = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(c[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(c[i], (void *)&sin, sl)) {
			perror("connect");
			return 1;
		}
	}
	printf("evserver: %d keep-alive connections to 127.0.0.1:%d for %d s\n",
	       conns, ntohs(sin.sin_port), seconds);
	start = now_ns();
	end = start + seconds * 1000000000ull;
	while (now_ns() < end) {
		for (int i = 0; i < conns; i++)
			if (write(c[i], req, sizeof(req) - 1) != sizeof(req) - 1)
				bad++;
		for (int i = 0; i < conns; i++) {
			char buf[512];
			ssize_t n = 0, r;

			/* Header + body arrive together on loopback; wait for the whole response. */
			while (n < 4 || !strstr(buf, "</html>\n")) {
				struct pollfd pf = { .fd = c[i], .events = POLLIN };

				if (poll(&pf, 1, 5000) != 1 ||
				    (r = read(c[i], buf + n, sizeof(buf) - 1 - n)) <= 0) {
					fprintf(stderr, "evserver: no response on connection %d\n", i);
					kill(pid, SIGKILL);
					return 1;
				}
				n += r;
				buf[n] = 0;
			}
			if (strncmp(buf, "HTTP/1.1 200 OK", 15))
				bad++;
			requests++;
		}
	}
	for (int i = 0; i < conns; i++)
		close(c[i]);
	waitpid(pid, &status, 0);
	printf("evserver: %lld requests in %.2f s = %.0f requests/s, %lld bad, server exit %d\n",
	       requests, (now_ns() - start) / 1e9, requests / ((now_ns() - start) / 1e9), bad,
	       WEXITSTATUS(status));
	return bad || WEXITSTATUS(status) ? 1 : 0;
}
