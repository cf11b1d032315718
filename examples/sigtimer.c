// SPDX-License-Identifier: GPL-2.0
/*
 * sigtimer: signals and timers in one queue, in the order they happened.
 * Watches SIGUSR1 (consumed: no handler runs), SIGCHLD, a POSIX timer
 * created with SIGEV_KEVENT (every 100 ms) and a kevent timer (every 250
 * ms); a child sends three SIGUSR1 and exits. Every event carries the
 * queue's sequence number.
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

#include <kevent_syscalls.h>

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

static void add(int q, uint32_t type, uint64_t id, uint32_t event)
{
	struct ukevent e;

	memset(&e, 0, sizeof(e));
	e.type = type;
	e.id.raw_u64 = id;
	e.event = event;
	if (kevent_ctl(q, KEVENT_CTL_ADD, 1, &e)) {
		fprintf(stderr, "sigtimer: ADD type %u failed: %d\n", type, (int)e.ret_data[1]);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	int ms = argc > 1 ? atoi(argv[1]) : 700, q = kevent_init(0, 0), usr1 = 0, ticks = 0;
	struct itimerspec its = { .it_value = { 0, 100000000 }, .it_interval = { 0, 100000000 } };
	struct kevent_wait_arg wa = kevent_timeout_ns(50000000);
	struct sigevent sev;
	struct ukevent ev[16];
	uint64_t last_seq = 0;
	timer_t t;
	pid_t child;

	if (q < 0) {
		perror("kevent_init");
		return 1;
	}
	add(q, KEVENT_SIGNAL, SIGUSR1 | KEVENT_SIGNAL_NOMASK, KEVENT_SIGNAL_DELIVERY);
	add(q, KEVENT_SIGNAL, SIGCHLD, KEVENT_SIGNAL_DELIVERY);
	add(q, KEVENT_TIMER, 250000000ull << 32, KEVENT_TIMER_FIRED);	/* 0 s + 250 ms */
	kevent_sigevent(&sev, q);
	sev.sigev_value.sival_ptr = (void *)0x7131;
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
		int n = kevent_get_events(q, 1, 16, ev, &wa);

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
	printf("sigtimer: %d SIGUSR1 consumed by the queue (sent 3), %d POSIX timer expirations\n",
	       usr1, ticks);
	return usr1 == 3 && ticks > 0 ? 0 : 1;
}
