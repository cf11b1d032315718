// SPDX-License-Identifier: GPL-2.0
/*
 * Sending a stream, with and without copying.
 *
 * tcp-64KiB: one loopback TCP connection; the sender under test sends a
 * known pattern in 64 KiB pieces, a receiver thread takes it with blocking
 * recv() and checks every byte. Mechanisms:
 *
 *   kevent-aio_send-ring   4 aio_send() of 64 KiB in flight (zero-copy from
 *                          pinned pages; kevent_queue_aio_send());
 *                          completions read from the 64-entry ring
 *                          (kevent_queue_peek_batch(), one
 *                          kevent_queue_advance() per batch after it is
 *                          handled; kevent_queue_wait() only when it is
 *                          empty), each completed piece resubmitted
 *   epoll-ET               send() of 64 KiB until EAGAIN, then epoll_wait()
 *                          for EPOLLOUT (edge triggered)
 *   io_uring-send          4 linked IORING_OP_SEND of 64 KiB per submission
 *                          (copying; linked, with MSG_WAITALL, because sends
 *                          in flight on one stream socket are not ordered)
 *   io_uring-send_zc       the same with IORING_OP_SEND_ZC; a submission is
 *                          done when its notification CQEs arrived
 *   send                   blocking send() of 64 KiB (the baseline)
 *   send-MSG_ZEROCOPY      blocking send(MSG_ZEROCOPY) on an SO_ZEROCOPY
 *                          socket, at most 4 send calls whose notification
 *                          (read from the error queue) has not arrived
 *
 * Over loopback every zero-copy send is copied anyway (local delivery copies
 * the pages) and completes only when the peer has acknowledged it, so this
 * case shows what zero-copy costs when it cannot pay.
 *
 * udp-dummy-64000B: UDP datagrams of 64,000 bytes to an address routed to
 * the dummy netdev dummy0 (MTU 65,535), which transmits by freeing the skb:
 * the pages are never copied, as in io_uring's published SEND_ZC setup.
 * Mechanisms: kevent-aio_send-ring (8 in flight), io_uring-send_zc and
 * io_uring-send (8 per submission, unlinked), send (blocking, copying),
 * send-MSG_ZEROCOPY (8 notifications outstanding). Nothing
 * receives; the metric counts datagrams the socket accepted. Skipped with a
 * message when dummy0 does not exist (kernel without CONFIG_DUMMY).
 *
 * SENDSTREAM_ONLY=NAME and SENDSTREAM_CASE=tcp|udp in the environment run
 * only the mechanism NAME, or only one case (for profiling).
 *
 * Every mechanism sends the same bytes from the same buffer; the timed part
 * is the whole transfer. Metrics: MB_per_s, and cpu_ms_per_GB: the CPU time
 * every CPU of the guest spent busy during the transfer (/proc/stat, so
 * softirqs and kernel workers count, whoever they run for), per 10^9 bytes.
 * make bench sends 1 GiB per mechanism and round.
 *
 *	sendstream [repeats] [MiB per round]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <poll.h>
#include <liburing.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "stream.h"

#define DGRAM 64000
#define TCP_INFLIGHT 4
#define UDP_INFLIGHT 8

static void open_tcp(struct stream *s, uint64_t total)
{
	loopback_tcp(&s->tx, &s->rx);
	s->total = total;
	s->got = 0;
}

/* The size of piece number @k of a stream of @total bytes cut into @piece-byte pieces. */
static size_t piece_len(uint64_t total, uint64_t k, size_t piece)
{
	uint64_t off = k * piece;

	return total - off < piece ? total - off : piece;
}

/* TCP pieces start at their stream offset in the pattern; datagrams all at 0. */
static const unsigned char *piece_data(uint64_t k, size_t piece, int tcp)
{
	return tcp ? pattern + (k * piece) % PERIOD : pattern;
}

static void run_send(struct stream *s, size_t piece, int tcp)
{
	uint64_t n = (s->total + piece - 1) / piece;

	for (uint64_t k = 0; k < n; k++) {
		size_t len = piece_len(s->total, k, piece), off = 0;

		while (off < len) {
			ssize_t w = send(s->tx, piece_data(k, piece, tcp) + off, len - off, 0);

			check(w > 0, "send");
			off += w;
		}
	}
}

static void run_epoll(struct stream *s)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
	int ep = epoll_create1(0);
	uint64_t off = 0;

	if (fcntl(s->tx, F_SETFL, fcntl(s->tx, F_GETFL) | O_NONBLOCK))
		die("O_NONBLOCK");
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->tx, &ev))
		die("epoll");
	while (off < s->total) {
		size_t n = s->total - off < CHUNK ? s->total - off : CHUNK;
		ssize_t w = send(s->tx, pattern + off % PERIOD, n, 0);

		if (w > 0) {
			off += w;
			continue;
		}
		check(w < 0 && errno == EAGAIN, "send");
		check(epoll_wait(ep, &ev, 1, -1) == 1, "epoll_wait");
	}
	close(ep);
}

/*
 * kevent: @inflight aio_send() requests; on each completion the next piece is
 * submitted. Completions of one socket arrive in submission order.
 */
#define RING 64

static void run_kevent(struct stream *s, size_t piece, int inflight, int tcp)
{
	struct kevent_queue q;
	struct ukevent *ev[RING];
	uint64_t n = (s->total + piece - 1) / piece, next = 0, done = 0;

	check_ret(kevent_queue_init(&q, RING, 0), "kevent ring");
	for (; next < n && next < (uint64_t)inflight; next++)
		check_ret(kevent_queue_aio_send(&q, s->tx, piece_data(next, piece, tcp),
						piece_len(s->total, next, piece), 0), "aio_send");
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
			      e->ret_data[0] == piece_len(s->total, done, piece), "aio_send result");
			done++;
			if (next < n) {
				check_ret(kevent_queue_aio_send(&q, s->tx, piece_data(next, piece, tcp),
								piece_len(s->total, next, piece), 0),
					  "aio_send");
				next++;
			}
		}
		kevent_queue_advance(&q, k);
	}
	kevent_queue_exit(&q);
}

/*
 * io_uring: @inflight sends per submission, waited for together (with SEND_ZC,
 * their notifications too: the buffer is free again then). On TCP they are
 * linked and use MSG_WAITALL, so that they leave in order and whole: sends in
 * flight on one stream socket are not ordered otherwise.
 */
static void run_uring(struct stream *s, size_t piece, int inflight, int tcp, int zc)
{
	struct io_uring ring;
	uint64_t n = (s->total + piece - 1) / piece, next = 0;

	if (io_uring_queue_init(64, &ring, 0) < 0)
		die("io_uring_queue_init");
	while (next < n) {
		int results = 0, notifs = 0;

		for (int i = 0; i < inflight && next < n; i++, next++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			const unsigned char *p = piece_data(next, piece, tcp);
			size_t len = piece_len(s->total, next, piece);
			int flags = tcp ? MSG_WAITALL : 0;

			if (zc)
				io_uring_prep_send_zc(sqe, s->tx, p, len, flags, 0);
			else
				io_uring_prep_send(sqe, s->tx, p, len, flags);
			if (tcp)
				sqe->flags |= IOSQE_IO_LINK;
			sqe->user_data = len;
			results++;
		}
		check(io_uring_submit(&ring) == results, "io_uring_submit");
		while (results > 0 || notifs > 0) {
			struct io_uring_cqe *cqe;

			check(io_uring_wait_cqe(&ring, &cqe) == 0, "io_uring_wait_cqe");
			if (cqe->flags & IORING_CQE_F_NOTIF) {
				notifs--;
			} else {
				check(cqe->res == (int)cqe->user_data, "io_uring send result");
				results--;
				if (cqe->flags & IORING_CQE_F_MORE)
					notifs++;
			}
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	io_uring_queue_exit(&ring);
}

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

/*
 * Reads MSG_ZEROCOPY notifications from the error queue of @fd; returns how
 * many send calls they cover (a notification is a range of them). With
 * @block, waits until there is at least one.
 */
static uint64_t zc_reap(int fd, int block)
{
	uint64_t done = 0;

	for (;;) {
		char control[128];
		struct msghdr msg = { .msg_control = control, .msg_controllen = sizeof(control) };
		struct sock_extended_err *serr;
		struct cmsghdr *cm;

		if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			struct pollfd p = { .fd = fd };

			check(errno == EAGAIN, "recvmsg MSG_ERRQUEUE");
			if (!block || done)
				return done;
			poll(&p, 1, -1);	/* POLLERR: a notification is queued */
			continue;
		}
		cm = CMSG_FIRSTHDR(&msg);
		check(cm != NULL, "notification");
		serr = (void *)CMSG_DATA(cm);
		check(serr->ee_origin == SO_EE_ORIGIN_ZEROCOPY && serr->ee_errno == 0,
		      "zero-copy notification");
		done += serr->ee_data - serr->ee_info + 1;
	}
}

/*
 * MSG_ZEROCOPY (Documentation/networking/msg_zerocopy.rst): send() with the
 * flag on an SO_ZEROCOPY socket; at most @inflight send calls whose
 * notification has not arrived (as a buffer is free again only then).
 */
static void run_msg_zerocopy(struct stream *s, size_t piece, int inflight, int tcp)
{
	uint64_t n = (s->total + piece - 1) / piece, calls = 0, notified = 0;
	int one = 1;

	check(setsockopt(s->tx, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) == 0, "SO_ZEROCOPY");
	for (uint64_t k = 0; k < n; k++) {
		size_t len = piece_len(s->total, k, piece), off = 0;

		while (off < len) {
			ssize_t w;

			while (calls - notified >= (uint64_t)inflight)
				notified += zc_reap(s->tx, 1);
			w = send(s->tx, piece_data(k, piece, tcp) + off, len - off, MSG_ZEROCOPY);
			if (w < 0 && errno == ENOBUFS) {
				/* Out of option memory for notifications: reap, retry. */
				notified += zc_reap(s->tx, 1);
				continue;
			}
			check(w > 0, "send MSG_ZEROCOPY");
			calls++;
			off += w;
		}
		notified += zc_reap(s->tx, 0);
	}
	while (notified < calls)
		notified += zc_reap(s->tx, 1);
}

/* Brings dummy0 up as 10.77.0.1/24 with MTU 65,535; false if there is no dummy0. */
static int setup_dummy(void)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (void *)&ifr.ifr_addr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), ok = 0;

	strcpy(ifr.ifr_name, "dummy0");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
		goto out;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = inet_addr("10.77.0.1");
	if (ioctl(fd, SIOCSIFADDR, &ifr))
		die("SIOCSIFADDR dummy0");
	sin->sin_addr.s_addr = inet_addr("255.255.255.0");
	if (ioctl(fd, SIOCSIFNETMASK, &ifr))
		die("SIOCSIFNETMASK dummy0");
	ifr.ifr_mtu = 65535;
	if (ioctl(fd, SIOCSIFMTU, &ifr))
		die("SIOCSIFMTU dummy0");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr))
		die("SIOCGIFFLAGS dummy0");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr))
		die("SIOCSIFFLAGS dummy0");
	ok = 1;
out:
	if (fd >= 0)
		close(fd);
	return ok;
}

static void open_udp(struct stream *s, uint64_t total)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(9) };
	int sndbuf = 4 << 20;

	sa.sin_addr.s_addr = inet_addr("10.77.0.2");
	s->tx = socket(AF_INET, SOCK_DGRAM, 0);
	if (s->tx < 0 || connect(s->tx, (void *)&sa, sizeof(sa)))
		die("udp connect");
	setsockopt(s->tx, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	s->rx = -1;
	s->total = total;
	s->got = 0;
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 5;
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 64;
	static const char *const tcp_names[] = { "kevent-aio_send-ring", "epoll-ET", "io_uring-send",
						 "io_uring-send_zc", "send", "send-MSG_ZEROCOPY" };
	static const char *const udp_names[] = { "kevent-aio_send-ring", "io_uring-send",
						 "io_uring-send_zc", "send", "send-MSG_ZEROCOPY" };
	const char *only = getenv("SENDSTREAM_ONLY"), *only_case = getenv("SENDSTREAM_CASE");
	int dummy = setup_dummy();

	make_pattern();
	printf("sendstream: %d repeats of %llu MiB per mechanism (TCP loopback; UDP to dummy0)\n",
	       repeats, (unsigned long long)mib);
	if (!dummy)
		printf("sendstream: no dummy0 (kernel without CONFIG_DUMMY): UDP case skipped\n");
	for (int rep = 0; rep < repeats; rep++) {
		for (int m = 0; m < 6; m++) {
			struct stream s;
			pthread_t t;
			uint64_t t0, c0;

			if ((only && strcmp(only, tcp_names[m])) || (only_case && strcmp(only_case, "tcp")))
				continue;
			open_tcp(&s, mib << 20);
			c0 = cpu_busy_ns();
			t0 = now_ns();
			check(pthread_create(&t, NULL, checking_receiver, &s) == 0, "receiver thread");
			switch (m) {
			case 0: run_kevent(&s, CHUNK, TCP_INFLIGHT, 1); break;
			case 1: run_epoll(&s); break;
			case 2: run_uring(&s, CHUNK, TCP_INFLIGHT, 1, 0); break;
			case 3: run_uring(&s, CHUNK, TCP_INFLIGHT, 1, 1); break;
			case 4: run_send(&s, CHUNK, 1); break;
			default: run_msg_zerocopy(&s, CHUNK, TCP_INFLIGHT, 1); break;
			}
			pthread_join(t, NULL);
			double secs = (now_ns() - t0) / 1e9;
			double cpu_ms = (cpu_busy_ns() - c0) / 1e6;

			check(s.got == s.total, "every byte received");
			close(s.rx);
			close(s.tx);
			emit("sendstream", "tcp-64KiB", tcp_names[m], "MB_per_s", s.total / 1e6 / secs);
			emit("sendstream", "tcp-64KiB", tcp_names[m], "cpu_ms_per_GB",
			     cpu_ms / (s.total / 1e9));
		}
		for (int m = 0; dummy && m < 5; m++) {
			struct stream s;
			uint64_t t0, c0;

			if ((only && strcmp(only, udp_names[m])) || (only_case && strcmp(only_case, "udp")))
				continue;
			open_udp(&s, (mib << 20) / DGRAM * DGRAM);
			c0 = cpu_busy_ns();
			t0 = now_ns();
			switch (m) {
			case 0: run_kevent(&s, DGRAM, UDP_INFLIGHT, 0); break;
			case 1: run_uring(&s, DGRAM, UDP_INFLIGHT, 0, 0); break;
			case 2: run_uring(&s, DGRAM, UDP_INFLIGHT, 0, 1); break;
			case 3: run_send(&s, DGRAM, 0); break;
			default: run_msg_zerocopy(&s, DGRAM, UDP_INFLIGHT, 0); break;
			}
			double secs = (now_ns() - t0) / 1e9;
			double cpu_ms = (cpu_busy_ns() - c0) / 1e6;

			close(s.tx);
			emit("sendstream", "udp-dummy-64000B", udp_names[m], "MB_per_s",
			     s.total / 1e6 / secs);
			emit("sendstream", "udp-dummy-64000B", udp_names[m], "cpu_ms_per_GB",
			     cpu_ms / (s.total / 1e9));
		}
	}
	return 0;
}
