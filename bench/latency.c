// SPDX-License-Identifier: GPL-2.0
/*
 * Timer and signal latency: from the moment an event happens to the moment
 * the waiting harvester has it.
 *
 *   timer    a 1 ms timer re-armed before each sample: kevent KEVENT_TIMER
 *            (DISPATCH, re-armed and re-enabled by KEVENT_CTL_MODIFY) vs
 *            timerfd_settime() + epoll_wait(); latency = harvest time -
 *            programmed expiry
 *   signal   another thread sends SIGUSR1 to the process: kevent
 *            KEVENT_SIGNAL (NOMASK) vs signalfd + epoll_wait(); latency =
 *            harvest time - time of kill()
 *
 *	latency [REPEATS] [SAMPLES]	defaults: 3, 300
 *
 * The kevent side registers with kevent_prep_timer()/kevent_prep_signal() +
 * kevent_queue_ctl() and waits with kevent_queue_harvest() on a queue without
 * a ring (one kevent_get_events() per sample).
 *
 * Each case first takes WARMUP samples that are not reported: the first
 * samples after a change of case are disturbed (in the emulated guest, the
 * first signal case after the timer cases had a burst of 3-5 ms samples,
 * whichever mechanism ran first). The two mechanisms of a case also swap
 * places every repeat, so neither always runs first.
 *
 * Reports p50 and p99 in microseconds; every sample checks that the event is
 * the expected one.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench.h"

#define PERIOD_NS 1000000ull
#define WARMUP 100

static void report(const char *c, const char *mech, uint64_t *lat, int n)
{
	emit("latency", c, mech, "p50_us", percentile(lat, n, 50) / 1e3);
	emit("latency", c, mech, "p99_us", percentile(lat, n, 99) / 1e3);
}

static void timer_kevent(uint64_t *lat, int n)
{
	struct kevent_queue q;
	struct ukevent e, out;

	check_ret(kevent_queue_init(&q, 0, 0), "kevent_queue_init");
	for (int i = 0; i < n; i++) {
		uint64_t due;

		/*
		 * Armed by the ADD the first time, then re-armed by MODIFY the
		 * way timerfd_settime() re-arms the timerfd: one period from
		 * now, and enabled again after its DISPATCH delivery.
		 */
		kevent_prep_timer(&e, PERIOD_NS, KEVENT_REQ_DISPATCH, 0);
		due = now_ns() + PERIOD_NS;
		check(kevent_queue_ctl(&q, i ? KEVENT_CTL_MODIFY : KEVENT_CTL_ADD, &e) == 0,
		      "timer add/modify");
		/* A harvester that wakes more than a period late sees 2 expirations. */
		check(kevent_queue_harvest(&q, &out, 1, 1, NULL) == 1 && out.type == KEVENT_TIMER &&
		      out.ret_data[0] >= 1, "timer event");
		lat[i] = now_ns() - due;
	}
	kevent_queue_exit(&q);
}

static void timer_timerfd(uint64_t *lat, int n)
{
	int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	struct epoll_event e = { .events = EPOLLIN };
	struct itimerspec its = { .it_value = { 0, PERIOD_NS } };
	uint64_t ticks;

	check(epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e) == 0, "epoll timerfd");
	for (int i = 0; i < n; i++) {
		uint64_t due = now_ns() + PERIOD_NS;

		check(timerfd_settime(tfd, 0, &its, NULL) == 0, "timerfd_settime");
		check(epoll_wait(ep, &e, 1, -1) == 1, "epoll_wait");
		lat[i] = now_ns() - due;
		check(read(tfd, &ticks, 8) == 8 && ticks == 1, "timerfd read");
	}
	close(tfd);
	close(ep);
}

static volatile uint64_t sent_at;
static volatile int armed, samples;

/* Sends SIGUSR1 to the process each time the harvester is ready for it. */
static void *sender(void *arg)
{
	for (int i = 0; i < samples; i++) {
		while (!__atomic_load_n(&armed, __ATOMIC_ACQUIRE))
			;
		__atomic_store_n(&armed, 0, __ATOMIC_RELAXED);
		usleep(200);
		__atomic_store_n(&sent_at, now_ns(), __ATOMIC_RELEASE);
		kill(getpid(), SIGUSR1);
	}
	return NULL;
}

static void signal_kevent(uint64_t *lat, int n)
{
	struct kevent_queue q;
	struct ukevent e, out;
	pthread_t t;

	check_ret(kevent_queue_init(&q, 0, 0), "kevent_queue_init");
	kevent_prep_signal(&e, SIGUSR1, true, 0, 0);
	check(kevent_queue_ctl(&q, KEVENT_CTL_ADD, &e) == 0, "signal add");
	samples = n;
	pthread_create(&t, NULL, sender, NULL);
	for (int i = 0; i < n; i++) {
		__atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
		check(kevent_queue_harvest(&q, &out, 1, 1, NULL) == 1 && out.type == KEVENT_SIGNAL,
		      "signal event");
		lat[i] = now_ns() - __atomic_load_n(&sent_at, __ATOMIC_ACQUIRE);
	}
	pthread_join(t, NULL);
	kevent_queue_exit(&q);
}

static void signal_signalfd(uint64_t *lat, int n)
{
	struct epoll_event e = { .events = EPOLLIN };
	struct signalfd_siginfo si;
	int ep = epoll_create1(0), sfd;
	sigset_t set;
	pthread_t t;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);	/* the sender thread inherits it */
	sfd = signalfd(-1, &set, 0);
	check(epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &e) == 0, "epoll signalfd");
	samples = n;
	pthread_create(&t, NULL, sender, NULL);
	for (int i = 0; i < n; i++) {
		__atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
		check(epoll_wait(ep, &e, 1, -1) == 1, "epoll_wait");
		lat[i] = now_ns() - __atomic_load_n(&sent_at, __ATOMIC_ACQUIRE);
		check(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1,
		      "signalfd read");
	}
	pthread_join(t, NULL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	close(sfd);
	close(ep);
}

/* The two mechanisms of each case. */
static const struct mechanism {
	const char *name;
	void (*run)(uint64_t *lat, int n);
} cases[2][2] = {
	{ { "kevent", timer_kevent }, { "timerfd+epoll", timer_timerfd } },
	{ { "kevent", signal_kevent }, { "signalfd+epoll", signal_signalfd } },
};
static const char *const case_names[2] = { "timer", "signal" };

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 3, n = argc > 2 ? atoi(argv[2]) : 300;
	uint64_t *lat = calloc(WARMUP + n, sizeof(*lat));

	check(lat != NULL, "calloc");
	printf("latency: %d repeats of %d samples (after %d not reported); 1 ms timers, signals from another thread\n",
	       repeats, n, WARMUP);
	for (int rep = 0; rep < repeats; rep++) {
		for (int c = 0; c < 2; c++) {
			for (int k = 0; k < 2; k++) {
				/* Odd repeats run the second mechanism first. */
				const struct mechanism *m = &cases[c][k ^ (rep & 1)];

				m->run(lat, WARMUP + n);
				report(case_names[c], m->name, lat + WARMUP, n);
			}
		}
	}
	free(lat);
	return 0;
}
