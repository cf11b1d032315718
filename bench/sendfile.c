// SPDX-License-Identifier: GPL-2.0
/*
 * Sending files on a TCP connection without copying them in user space.
 *
 * One loopback TCP connection; files in the guest's RAM file system (so in
 * the page cache) hold the stream's pattern; the mechanism under test sends
 * them piece by piece and a receiver thread takes the stream with blocking
 * recv() and checks every byte. Cases:
 *
 *   tcp-64KiB                 one file of the round's size, in 64 KiB pieces
 *   tcp-100x1MiB              100 files of 1 MiB, each sent whole (the 2006
 *                             kevent's aio_sendfile figure: 78 MB/s against
 *                             66-72 for sendfile)
 *
 * Mechanisms:
 *
 *   kevent-aio_sendfile-ring  4 aio_sendfile() in flight (one per piece,
 *                             kevent_queue_aio_sendfile()), completions read
 *                             from the 64-entry ring (kevent_queue_peek_batch(),
 *                             one kevent_queue_advance() per batch after it
 *                             is handled; kevent_queue_wait() only when it is
 *                             empty), the next piece submitted per completion
 *   epoll-ET                  sendfile() on a non-blocking socket until
 *                             EAGAIN, then epoll_wait() for EPOLLOUT
 *   io_uring-splice           chains of linked IORING_OP_SPLICE (file to a
 *                             pipe, the pipe to the socket, 64 KiB at a time)
 *                             for up to 4 pieces per submission, io_uring's
 *                             documented way to send a file without a copy
 *   sendfile                  blocking sendfile() (the baseline)
 *
 * Metric: MB_per_s.
 *
 *	sendfile [repeats] [MiB per round]
 */
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>

#include "bench.h"
#include "stream.h"

#define INFLIGHT 4
#define FILES 100
#define FILE_BYTES (1u << 20)

/* A part of the stream: @len bytes of file @fd from @off. */
struct piece {
	int fd;
	uint64_t off;
	size_t len;
};

/* A file holding stream bytes [@at, @at + @len). */
static int make_file(uint64_t at, uint64_t len)
{
	char name[] = "/tmp/sendfile-bench-XXXXXX";
	int fd = mkstemp(name);

	if (fd < 0)
		die("mkstemp");
	unlink(name);
	for (uint64_t off = 0; off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;

		check(pwrite(fd, pattern + (at + off) % PERIOD, n, off) == (ssize_t)n, "pwrite");
	}
	return fd;
}

static void run_sendfile(struct stream *s, const struct piece *p, int n)
{
	for (int k = 0; k < n; k++) {
		off_t off = p[k].off, end = p[k].off + p[k].len;

		while (off < end)
			check(sendfile(s->tx, p[k].fd, &off, end - off) > 0, "sendfile");
	}
}

static void run_epoll(struct stream *s, const struct piece *p, int n)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
	int ep = epoll_create1(0);

	if (fcntl(s->tx, F_SETFL, fcntl(s->tx, F_GETFL) | O_NONBLOCK))
		die("O_NONBLOCK");
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->tx, &ev))
		die("epoll");
	for (int k = 0; k < n; k++) {
		off_t off = p[k].off, end = p[k].off + p[k].len;

		while (off < end) {
			ssize_t w = sendfile(s->tx, p[k].fd, &off, end - off);

			if (w > 0)
				continue;
			check(w < 0 && errno == EAGAIN, "sendfile");
			check(epoll_wait(ep, &ev, 1, -1) == 1, "epoll_wait");
		}
	}
	close(ep);
}

#define RING 64

static void run_kevent(struct stream *s, const struct piece *p, int n)
{
	struct kevent_queue q;
	struct ukevent *ev[RING];
	int next = 0, done = 0;

	check_ret(kevent_queue_init(&q, RING, 0), "kevent ring");
	for (; next < n && next < INFLIGHT; next++)
		check_ret(kevent_queue_aio_sendfile(&q, s->tx, p[next].fd, p[next].off, p[next].len),
			  "aio_sendfile");
	while (done < n) {
		/* Everything published now; the slots go back after it is handled. */
		unsigned int k = kevent_queue_peek_batch(&q, ev, RING);

		if (!k) {
			/* The ring is empty: sleep (EINTR is retried). */
			struct ukevent *e;
			int ret = kevent_queue_wait(&q, &e, NULL);

			check(ret == 0 || ret == -EINTR, "kevent_queue_wait");
			continue;
		}
		for (unsigned int j = 0; j < k; j++) {
			const struct ukevent *e = ev[j];

			check(e->type == KEVENT_NAIO && e->ret_data[1] == 0 &&
			      e->ret_data[0] == p[done].len, "aio_sendfile result");
			done++;
			if (next < n) {
				check_ret(kevent_queue_aio_sendfile(&q, s->tx, p[next].fd,
								    p[next].off, p[next].len),
					  "aio_sendfile");
				next++;
			}
		}
		kevent_queue_advance(&q, k);
	}
	kevent_queue_exit(&q);
}

/*
 * io_uring: the pieces go through one pipe as a chain of linked splices (file
 * to pipe, pipe to socket, 64 KiB at a time), up to INFLIGHT pieces per
 * submission; links keep them in order (unlinked splices on one socket may
 * interleave).
 */
static void run_uring(struct stream *s, const struct piece *p, int n)
{
	struct io_uring ring;
	int fds[2];

	if (io_uring_queue_init(256, &ring, 0) < 0 || pipe(fds))
		die("io_uring_queue_init");
	for (int k = 0; k < n;) {
		struct io_uring_cqe *cqe;
		int sqes = 0;

		for (int i = 0; i < INFLIGHT && k < n; i++, k++) {
			for (size_t at = 0; at < p[k].len; at += CHUNK) {
				size_t len = p[k].len - at < CHUNK ? p[k].len - at : CHUNK;
				struct io_uring_sqe *in = io_uring_get_sqe(&ring);
				struct io_uring_sqe *out;

				io_uring_prep_splice(in, p[k].fd, p[k].off + at, fds[1], -1, len, 0);
				in->flags |= IOSQE_IO_LINK;
				out = io_uring_get_sqe(&ring);
				io_uring_prep_splice(out, fds[0], -1, s->tx, -1, len, 0);
				out->flags |= IOSQE_IO_LINK;
				sqes += 2;
			}
		}
		check(io_uring_submit(&ring) == sqes, "io_uring_submit");
		for (int i = 0; i < sqes; i++) {
			check(io_uring_wait_cqe(&ring, &cqe) == 0, "io_uring_wait_cqe");
			check(cqe->res > 0, "splice");
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	io_uring_queue_exit(&ring);
	close(fds[0]);
	close(fds[1]);
}

/* Runs every mechanism once on @n pieces making a stream of @total bytes. */
static void round_of(const char *cs, const struct piece *p, int n, uint64_t total)
{
	static const char *const names[] = { "kevent-aio_sendfile-ring", "epoll-ET",
					     "io_uring-splice", "sendfile" };

	for (int m = 0; m < 4; m++) {
		struct stream s = { .total = total };
		pthread_t t;
		uint64_t t0;

		loopback_tcp(&s.tx, &s.rx);
		t0 = now_ns();
		check(pthread_create(&t, NULL, checking_receiver, &s) == 0, "receiver thread");
		switch (m) {
		case 0: run_kevent(&s, p, n); break;
		case 1: run_epoll(&s, p, n); break;
		case 2: run_uring(&s, p, n); break;
		default: run_sendfile(&s, p, n); break;
		}
		pthread_join(t, NULL);
		double secs = (now_ns() - t0) / 1e9;

		check(s.got == s.total, "every byte received");
		close(s.rx);
		close(s.tx);
		emit("sendfile", cs, names[m], "MB_per_s", total / 1e6 / secs);
	}
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 5;
	uint64_t total = (argc > 2 ? strtoull(argv[2], NULL, 0) : 64) << 20;
	int n = (int)((total + CHUNK - 1) / CHUNK);
	struct piece *big = calloc(n, sizeof(*big)), files[FILES];
	int fd;

	make_pattern();
	fd = make_file(0, total);
	for (int k = 0; k < n; k++) {
		uint64_t off = (uint64_t)k * CHUNK;

		big[k] = (struct piece){ fd, off, total - off < CHUNK ? total - off : CHUNK };
	}
	for (int j = 0; j < FILES; j++)
		files[j] = (struct piece){ make_file((uint64_t)j * FILE_BYTES, FILE_BYTES), 0,
					   FILE_BYTES };
	printf("sendfile: %d repeats of %llu MiB in 64 KiB pieces and of %d files of 1 MiB, "
	       "over TCP loopback\n", repeats, (unsigned long long)(total >> 20), FILES);
	for (int rep = 0; rep < repeats; rep++) {
		round_of("tcp-64KiB", big, n, total);
		round_of("tcp-100x1MiB", files, FILES, (uint64_t)FILES * FILE_BYTES);
	}
	close(fd);
	for (int j = 0; j < FILES; j++)
		close(files[j].fd);
	free(big);
	return 0;
}
