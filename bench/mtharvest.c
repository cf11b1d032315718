// SPDX-License-Identifier: GPL-2.0
/*
 * One queue, one or two harvesting threads: does throughput hold when
 * threads share a queue? A producer thread writes to 64 eventfds round robin
 * as fast as it can; T harvester threads (T = 1, 2) wait on one kevent queue
 * (KEVENT_POLL, edge-triggered, kevent_get_events() of up to 64 events, each
 * thread its own struct kevent_queue on the shared descriptor) or on one
 * epoll instance (EPOLLET, epoll_wait() of up to 64) and count what they get.
 * Writes to an eventfd whose event is not harvested yet coalesce into one
 * event on both sides.
 *
 *	mtharvest [REPEATS] [MILLISECONDS]	defaults: 3, 1000
 *
 * Prints BENCH lines: events_per_s (harvested, all threads) and
 * writes_per_s (the producer's rate under that harvesting).
 */
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"

enum { NFDS = 64, MAX_THREADS = 2 };

struct run {
	int kevent, fd, efd[NFDS];
	volatile int stop;
	long harvested[MAX_THREADS];
	long writes;
};

struct harvester {
	struct run *run;
	int id;
};

static void *harvest_main(void *arg)
{
	struct harvester *h = arg;
	struct run *r = h->run;
	struct epoll_event ev[64];
	struct ukevent out[64];
	struct kevent_wait_arg wait;
	struct kevent_queue q;
	long n = 0;

	if (r->kevent)
		check_ret(kevent_queue_init_fd(&q, r->fd, 0), "kevent_queue_init_fd");
	kevent_wait_arg_init(&wait, 10000000, NULL);
	while (!r->stop) {
		int got;

		if (r->kevent) {
			got = kevent_queue_harvest(&q, out, 1, 64, &wait);
			check(got >= 0 || got == -EINTR || got == -ETIME, "kevent_queue_harvest");
		} else {
			got = epoll_wait(r->fd, ev, 64, 10);
			check(got >= 0 || errno == EINTR, "epoll_wait");
		}
		if (got > 0)
			n += got;
	}
	r->harvested[h->id] = n;
	if (r->kevent)
		kevent_queue_exit(&q);
	return NULL;
}

static void *produce_main(void *arg)
{
	struct run *r = arg;
	uint64_t one = 1;
	long w = 0;

	while (!r->stop) {
		check(write(r->efd[w % NFDS], &one, 8) == 8, "eventfd write");
		w++;
	}
	r->writes = w;
	return NULL;
}

static void run_one(int kevent, int threads, uint64_t ms)
{
	struct harvester h[MAX_THREADS];
	pthread_t t[MAX_THREADS], p;
	struct kevent_queue q;
	struct run r = { .kevent = kevent };
	long total = 0;
	char c[16], *mech = kevent ? "kevent-poll-ET" : "epoll-ET";
	uint64_t t0;

	if (kevent) {
		check_ret(kevent_queue_init_batch(&q, 0, 0, NFDS), "kevent_queue_init");
		r.fd = q.fd;
	} else {
		r.fd = epoll_create1(0);
		check(r.fd >= 0, "epoll_create1");
	}
	for (int i = 0; i < NFDS; i++) {
		r.efd[i] = eventfd(0, EFD_NONBLOCK);
		check(r.efd[i] >= 0, "eventfd");
		if (kevent) {
			struct ukevent *e = kevent_queue_get_entry(&q);

			check(e != NULL, "kevent_queue_get_entry");
			kevent_prep_poll(e, r.efd[i], POLLIN, KEVENT_REQ_ET, i);
		} else {
			struct epoll_event e = { .events = EPOLLIN | EPOLLET, .data.u32 = i };

			check(epoll_ctl(r.fd, EPOLL_CTL_ADD, r.efd[i], &e) == 0, "epoll_ctl");
		}
	}
	if (kevent)
		check(kevent_queue_submit(&q, KEVENT_CTL_ADD, NULL) == 0, "kevent_ctl(ADD)");
	for (int i = 0; i < threads; i++) {
		h[i] = (struct harvester){ .run = &r, .id = i };
		check(pthread_create(&t[i], NULL, harvest_main, &h[i]) == 0, "pthread_create");
	}
	t0 = now_ns();
	check(pthread_create(&p, NULL, produce_main, &r) == 0, "pthread_create");
	usleep(ms * 1000);
	r.stop = 1;
	pthread_join(p, NULL);
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += r.harvested[i];
	}
	t0 = now_ns() - t0;
	snprintf(c, sizeof(c), "threads=%d", threads);
	emit("mtharvest", c, mech, "events_per_s", total / (t0 / 1e9));
	emit("mtharvest", c, mech, "writes_per_s", r.writes / (t0 / 1e9));
	for (int i = 0; i < NFDS; i++)
		close(r.efd[i]);
	if (kevent)
		kevent_queue_exit(&q);
	else
		close(r.fd);
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 3;
	uint64_t ms = argc > 2 ? atoi(argv[2]) : 1000;

	printf("mtharvest: %d repeats of %llu ms; 64 eventfds, one producer thread\n", repeats,
	       (unsigned long long)ms);
	for (int rep = 0; rep < repeats; rep++) {
		for (int threads = 1; threads <= MAX_THREADS; threads++) {
			run_one(1, threads, ms);
			run_one(0, threads, ms);
		}
		fflush(stdout);
	}
	return 0;
}
