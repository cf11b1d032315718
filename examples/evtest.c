// SPDX-License-Identifier: GPL-2.0
/*
 * evtest: the 2006 kevent test program, redone, on libkevent. Registers two
 * timers and a user event (kevent_prep_*() into one batch, one
 * kevent_queue_submit()), then harvests what arrives two ways: copied out
 * with kevent_queue_harvest() from a queue without a ring (one
 * kevent_get_events()), and read from the ring kevent_queue_init() mapped,
 * with no system call (kevent_queue_for_each() + kevent_queue_advance();
 * kevent_queue_wait() sleeps only when the ring is empty).
 *
 *	evtest [SECONDS]	(default 1 second per mode)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libkevent.h>

static uint64_t start;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000 - start;
}

static void print_event(const char *how, const struct ukevent *e)
{
	const char *type = e->type == KEVENT_TIMER ? "timer" :
			   e->type == KEVENT_UNOTIFY ? "user" : "?";

	printf("  %5llu ms  %-5s %-5s id=%#llx count=%u payload=%u seq=%llu cookie=%#llx\n",
	       (unsigned long long)now_ms(), how, type, (unsigned long long)e->id.raw_u64,
	       e->ret_data[0], e->ret_data[1], (unsigned long long)e->seq,
	       (unsigned long long)e->user);
}

/* A 100 ms periodic timer, a 250 ms one-shot timer, a user event: one kevent_ctl(). */
static int setup(struct kevent_queue *q)
{
	struct ukevent *back;
	int ret;

	kevent_prep_timer(kevent_queue_get_entry(q), 100000000, 0, 0x100);
	kevent_prep_timer(kevent_queue_get_entry(q), 250000000, KEVENT_REQ_ONESHOT, 0x250);
	kevent_prep_user(kevent_queue_get_entry(q), 42, 0, 0x42);
	ret = kevent_queue_submit(q, KEVENT_CTL_ADD, &back);
	if (ret < 0) {
		fprintf(stderr, "kevent_ctl ADD: %s\n", strerror(-ret));
		return -1;
	}
	for (int i = 0; i < ret; i++)
		if (back[i].ret_flags & KEVENT_RET_BROKEN) {
			fprintf(stderr, "kevent_ctl ADD type %u: %s\n", back[i].type,
				strerror(-(int)back[i].ret_data[1]));
			return -1;
		}
	return 0;
}

/* Fires user event 42 with @payload (KEVENT_CTL_READY). */
static void poke_user_event(struct kevent_queue *q, unsigned int payload)
{
	struct ukevent e;

	kevent_prep_fire(&e, 42);
	e.ret_data[1] = payload;
	kevent_queue_ctl(q, KEVENT_CTL_READY, &e);
}

static int copy_mode(unsigned int ms)
{
	struct kevent_queue q;
	struct ukevent out[8];
	struct kevent_wait_arg wa;
	int n, total = 0;

	n = kevent_queue_init(&q, 0, O_CLOEXEC);	/* no ring: events are copied out */
	if (n < 0) {
		fprintf(stderr, "kevent_queue_init: %s\n", strerror(-n));
		return -1;
	}
	if (setup(&q))
		return -1;
	kevent_wait_arg_init(&wa, 50000000, NULL);
	printf("copy mode: kevent_queue_harvest(min 1, max 8, timeout 50 ms) = kevent_get_events()\n");
	while (now_ms() < ms) {
		if (total % 3 == 2)
			poke_user_event(&q, total);
		n = kevent_queue_harvest(&q, out, 1, 8, &wa);
		if (n == -ETIME)
			continue;
		if (n < 0) {
			fprintf(stderr, "kevent_queue_harvest: %s\n", strerror(-n));
			return -1;
		}
		for (int i = 0; i < n; i++)
			print_event("copy", &out[i]);
		total += n;
	}
	kevent_queue_exit(&q);
	printf("copy mode: %d events\n", total);
	return total;
}

static int ring_mode(unsigned int ms)
{
	const unsigned int size = 16;
	struct kevent_queue q;
	struct kevent_wait_arg wa;
	int total = 0, ret;
	unsigned int waits = 0;

	ret = kevent_queue_init(&q, size, O_CLOEXEC);	/* creates the queue, maps its ring */
	if (ret < 0) {
		fprintf(stderr, "kevent_queue_init: %s\n", strerror(-ret));
		return -1;
	}
	if (setup(&q))
		return -1;
	kevent_wait_arg_init(&wa, 50000000, NULL);
	printf("ring mode: %u-entry ring, kevent_wait only when it is empty\n", size);
	while (now_ms() < 2 * ms) {
		struct ukevent *e;
		unsigned int i, n = 0;

		if (!kevent_queue_ready(&q)) {
			if (total % 3 == 2)
				poke_user_event(&q, total);
			/* Sleeps in kevent_wait() until an event is published or 50 ms pass. */
			ret = kevent_queue_wait(&q, &e, &wa);
			waits++;
			if (ret && ret != -ETIME && ret != -EINTR) {
				fprintf(stderr, "kevent_queue_wait: %s\n", strerror(-ret));
				return -1;
			}
			continue;
		}
		/* No system call: what the kernel published, then the slots go back. */
		kevent_queue_for_each(&q, i, e) {
			print_event("ring", e);
			n++;
		}
		kevent_queue_advance(&q, n);
		total += n;
	}
	printf("ring mode: %d events, %u kevent_queue_wait calls (ring wrapped %u times)\n",
	       total, waits, q.ring->ring_over);
	kevent_queue_exit(&q);
	return total;
}

int main(int argc, char **argv)
{
	unsigned int ms = (argc > 1 ? atoi(argv[1]) : 1) * 1000;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	start = ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
	printf("evtest: a 100 ms periodic timer (cookie 0x100), a 250 ms one-shot timer (0x250)\n"
	       "        and user event 42 (0x42), poked now and then with a payload\n");
	if (copy_mode(ms) <= 0 || ring_mode(ms) <= 0) {
		printf("evtest: FAILED\n");
		return 1;
	}
	printf("evtest: OK\n");
	return 0;
}
