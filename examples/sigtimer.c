// SPDX-License-Identifier: GPL-2.0
/*
 * sigtimer: signals and timers in one queue, in the order they happened.
 * Watches SIGUSR1 (consumed: no handler runs), SIGCHLD, a POSIX timer
 * created with SIGEV_KEVENT (every 100 ms) and a kevent timer (every 250
 * ms); a child sends three SIGUSR1 and exits. Every event carries the
 * queue's sequence number. Written with libkevent: kevent_prep_signal() and
 * kevent_prep_timer() in one batch (one kevent_ctl()), kevent_prep_sigevent()
 * for the POSIX timer, kevent_queue_harvest() to copy events out.
 *
 *	sigtimer [MILLISECONDS]	(default 700)
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libkevent.h>

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/* Submits the registrations prepared in @q's batch; every one must be taken. */
static void add_all(struct kevent_queue *q)
{
	struct ukevent *back;
	int n = kevent_queue_submit(q, KEVENT_CTL_ADD, &back);

	if (n < 0) {
		fprintf(stderr, "sigtimer: kevent_ctl ADD: %s\n", strerror(-n));
		exit(1);
	}
	for (int i = 0; i < n; i++)
		fprintf(stderr, "sigtimer: ADD type %u failed: %d\n", back[i].type,
			(int)back[i].ret_data[1]);
	if (n)
		exit(1);
}

int main(int argc, char **argv)
{
	int ms = argc > 1 ? atoi(argv[1]) : 700, usr1 = 0, ticks = 0, ret;
	struct itimerspec its = { .it_value = { 0, 100000000 }, .it_interval = { 0, 100000000 } };
	struct kevent_wait_arg wa;
	struct kevent_queue q;
	struct sigevent sev;
	struct ukevent ev[16];
	uint64_t last_seq = 0;
	timer_t t;
	pid_t child;

	ret = kevent_queue_init(&q, 0, 0);	/* no ring: events are copied out */
	if (ret < 0) {
		fprintf(stderr, "kevent_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	kevent_prep_signal(kevent_queue_get_entry(&q), SIGUSR1, true, 0, 0);
	kevent_prep_signal(kevent_queue_get_entry(&q), SIGCHLD, false, 0, 0);
	kevent_prep_timer(kevent_queue_get_entry(&q), 250000000, 0, 0);	/* 250 ms */
	add_all(&q);	/* one kevent_ctl() */
	kevent_wait_arg_init(&wa, 50000000, NULL);
	kevent_prep_sigevent(&sev, &q, 0x7131);
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) || timer_settime(t, 0, &its, NULL)) {
		perror("timer_create(SIGEV_KEVENT)");
		return 1;
	}
	child = fork();
	if (child == 0) {
		for (int i = 0; i < 3; i++) {
			usleep(120000);
			kill(getppid(), SIGUSR1);
		}
		_exit(0);
	}
	for (uint64_t end = now_ms() + ms; now_ms() < end;) {
		int n = kevent_queue_harvest(&q, ev, 1, 16, &wa);	/* < 0: -ETIME */

		for (int i = 0; i < n; i++) {
			static const char *names[] = { [KEVENT_SIGNAL] = "signal",
				[KEVENT_TIMER] = "timer", [KEVENT_POSIX_TIMER] = "posix timer" };

			printf("  seq %3llu  %-11s id %-#6llx ret_data [%u, %u]\n",
			       (unsigned long long)ev[i].seq, names[ev[i].type],
			       (unsigned long long)ev[i].id.raw_u64, ev[i].ret_data[0],
			       ev[i].ret_data[1]);
			if (ev[i].seq <= last_seq)
				return 1;
			last_seq = ev[i].seq;
			if (ev[i].type == KEVENT_SIGNAL && ev[i].id.raw_u64 & 0xff) {
				if ((ev[i].id.raw_u64 & 0xff) == SIGUSR1)
					usr1 += ev[i].ret_data[0];
			}
			if (ev[i].type == KEVENT_POSIX_TIMER)
				ticks += ev[i].ret_data[0];
		}
	}
	waitpid(child, NULL, 0);
	timer_delete(t);
	kevent_queue_exit(&q);
	printf("sigtimer: %d SIGUSR1 consumed by the queue (sent 3), %d POSIX timer expirations\n",
	       usr1, ticks);
	return usr1 == 3 && ticks > 0 ? 0 : 1;
}
