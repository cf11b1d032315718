// SPDX-License-Identifier: GPL-2.0
/*
 * Sending a file on a TCP connection without copying it in user space.
 *
 * One loopback TCP connection; a file of the round's size (in the guest's
 * RAM file system, so in the page cache) holds the stream's pattern; the
 * mechanism under test sends it in 64 KiB pieces, a receiver thread takes it
 * with blocking recv() and checks every byte. Mechanisms:
 *
 *   kevent-aio_sendfile-ring  4 aio_sendfile() of 64 KiB in flight,
 *                             completions read from the ring, the next piece
 *                             submitted per completion
 *   epoll-ET                  sendfile() of 64 KiB on a non-blocking socket
 *                             until EAGAIN, then epoll_wait() for EPOLLOUT
 *   io_uring-splice           chains of linked IORING_OP_SPLICE (file to a
 *                             pipe, the pipe to the socket) for 4 pieces per
 *                             submission, io_uring's documented way to send a
 *                             file without a copy
 *   sendfile                  blocking sendfile() of 64 KiB (the baseline)
 *
 * Metric: MB_per_s.
 *
 *	sendfile [repeats] [MiB per round]
 */
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/sendfile.h>

#include <kevent_syscalls.h>

#include "bench.h"
#include "stream.h"

#define INFLIGHT 4

/* The file: the stream's bytes, @total of them. */
static int make_file(uint64_t total)
{
	char name[] = "/tmp/sendfile-bench-XXXXXX";
	int fd = mkstemp(name);

	if (fd < 0)
		die("mkstemp");
	unlink(name);
	for (uint64_t off = 0; off < total; off += CHUNK) {
		size_t n = total - off < CHUNK ? total - off : CHUNK;

		check(pwrite(fd, pattern + off % PERIOD, n, off) == (ssize_t)n, "pwrite");
	}
	return fd;
}

static size_t piece_len(const struct stream *s, uint64_t k)
{
	uint64_t off = k * CHUNK;

	return s->total - off < CHUNK ? s->total - off : CHUNK;
}

static void run_sendfile(struct stream *s)
{
	off_t off = 0;

	while ((uint64_t)off < s->total) {
		size_t n = s->total - off < CHUNK ? s->total - off : CHUNK;

		check(sendfile(s->tx, s->file, &off, n) > 0, "sendfile");
	}
}

static void run_epoll(struct stream *s)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
	int ep = epoll_create1(0);
	off_t off = 0;

	if (fcntl(s->tx, F_SETFL, fcntl(s->tx, F_GETFL) | O_NONBLOCK))
		die("O_NONBLOCK");
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->tx, &ev))
		die("epoll");
	while ((uint64_t)off < s->total) {
		size_t n = s->total - off < CHUNK ? s->total - off : CHUNK;
		ssize_t w = sendfile(s->tx, s->file, &off, n);

		if (w > 0)
			continue;
		check(w < 0 && errno == EAGAIN, "sendfile");
		check(epoll_wait(ep, &ev, 1, -1) == 1, "epoll_wait");
	}
	close(ep);
}

static void run_kevent(struct stream *s)
{
	unsigned int size = 64, uidx = 0;
	int q = kevent_init(size, 0);
	size_t rlen = (KEVENT_RING_BYTES(size) + 4095) & ~4095ul;
	struct kevent_ring *ring = mmap(NULL, rlen, PROT_READ | PROT_WRITE, MAP_SHARED, q, 0);
	uint64_t n = (s->total + CHUNK - 1) / CHUNK, next = 0, done = 0;
	uint64_t off[INFLIGHT];

	if (q < 0 || ring == MAP_FAILED)
		die("kevent ring");
	for (; next < n && next < INFLIGHT; next++) {
		off[next % INFLIGHT] = next * CHUNK;
		check(aio_sendfile(q, s->tx, s->file, &off[next % INFLIGHT],
				   piece_len(s, next)) > 0, "aio_sendfile");
	}
	while (done < n) {
		unsigned int kidx = __atomic_load_n(&ring->ring_kidx, __ATOMIC_ACQUIRE);

		if (kidx == uidx) {
			ring_wait(q, uidx);
			continue;
		}
		for (; uidx != kidx; uidx++) {
			const struct ukevent *e = &ring->event[uidx & (size - 1)];

			check(e->type == KEVENT_NAIO && e->ret_data[1] == 0 &&
			      e->ret_data[0] == piece_len(s, done), "aio_sendfile result");
			done++;
			if (next < n) {
				off[next % INFLIGHT] = next * CHUNK;
				check(aio_sendfile(q, s->tx, s->file, &off[next % INFLIGHT],
						   piece_len(s, next)) > 0, "aio_sendfile");
				next++;
			}
		}
		__atomic_store_n(&ring->ring_uidx, uidx, __ATOMIC_RELEASE);
	}
	munmap(ring, rlen);
	close(q);
}

/*
 * io_uring: pieces go through one pipe as a chain of linked splices (file to
 * pipe, pipe to socket, next piece, ...), INFLIGHT pieces per submission;
 * links keep them in order (unlinked splices on one socket may interleave).
 */
static void run_uring(struct stream *s)
{
	struct io_uring ring;
	uint64_t n = (s->total + CHUNK - 1) / CHUNK, next = 0;
	int p[2];

	if (io_uring_queue_init(64, &ring, 0) < 0 || pipe(p))
		die("io_uring_queue_init");
	while (next < n) {
		struct io_uring_cqe *cqe;
		int sqes = 0;

		for (int i = 0; i < INFLIGHT && next < n; i++, next++) {
			size_t len = piece_len(s, next);
			struct io_uring_sqe *in = io_uring_get_sqe(&ring);
			struct io_uring_sqe *out;

			io_uring_prep_splice(in, s->file, next * CHUNK, p[1], -1, len, 0);
			in->flags |= IOSQE_IO_LINK;
			out = io_uring_get_sqe(&ring);
			io_uring_prep_splice(out, p[0], -1, s->tx, -1, len, 0);
			out->flags |= IOSQE_IO_LINK;
			sqes += 2;
		}
		check(io_uring_submit(&ring) == sqes, "io_uring_submit");
		for (int i = 0; i < sqes; i++) {
			check(io_uring_wait_cqe(&ring, &cqe) == 0, "io_uring_wait_cqe");
			check(cqe->res > 0, "splice");
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	io_uring_queue_exit(&ring);
	close(p[0]);
	close(p[1]);
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 5;
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 64;
	static const char *const names[] = { "kevent-aio_sendfile-ring", "epoll-ET",
					     "io_uring-splice", "sendfile" };
	int file;

	make_pattern();
	file = make_file(mib << 20);
	printf("sendfile: %d repeats of %llu MiB per mechanism over TCP loopback\n", repeats,
	       (unsigned long long)mib);
	for (int rep = 0; rep < repeats; rep++) {
		for (int m = 0; m < 4; m++) {
			struct stream s = { .file = file, .total = mib << 20 };
			pthread_t t;
			uint64_t t0;

			loopback_tcp(&s.tx, &s.rx);
			t0 = now_ns();
			check(pthread_create(&t, NULL, checking_receiver, &s) == 0, "receiver thread");
			switch (m) {
			case 0: run_kevent(&s); break;
			case 1: run_epoll(&s); break;
			case 2: run_uring(&s); break;
			default: run_sendfile(&s); break;
			}
			pthread_join(t, NULL);
			double secs = (now_ns() - t0) / 1e9;

			check(s.got == s.total, "every byte received");
			close(s.rx);
			close(s.tx);
			emit("sendfile", "tcp-64KiB", names[m], "MB_per_s", s.total / 1e6 / secs);
		}
	}
	close(file);
	return 0;
}
