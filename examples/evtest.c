// SPDX-License-Identifier: GPL-2.0
/*
 * evtest: the 2006 kevent test program, redone. Registers two timers and a
 * user event, then harvests what arrives two ways: copied out with
 * kevent_get_events(), and read from the mmap'd ring with no system call.
 *
 *	evtest [SECONDS]	(default 1 second per mode)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <kevent_syscalls.h>

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

static int setup(int fd)
{
	struct ukevent ev[3];

	memset(ev, 0, sizeof(ev));
	/* A 100 ms periodic timer, a 250 ms one-shot timer, a user event. */
	ev[0].type = KEVENT_TIMER;
	ev[0].event = KEVENT_TIMER_FIRED;
	ev[0].id.raw[1] = 100000000;
	ev[0].user = 0x100;
	ev[1].type = KEVENT_TIMER;
	ev[1].event = KEVENT_TIMER_FIRED;
	ev[1].id.raw[1] = 250000000;
	ev[1].req_flags = KEVENT_REQ_ONESHOT;
	ev[1].user = 0x250;
	ev[2].type = KEVENT_UNOTIFY;
	ev[2].id.raw_u64 = 42;
	ev[2].user = 0x42;
	if (kevent_ctl(fd, KEVENT_CTL_ADD, 3, ev) != 0) {
		perror("kevent_ctl ADD");
		return -1;
	}
	return 0;
}

static void poke_user_event(int fd, unsigned int payload)
{
	struct ukevent e;

	memset(&e, 0, sizeof(e));
	e.type = KEVENT_UNOTIFY;
	e.id.raw_u64 = 42;
	e.ret_data[1] = payload;
	kevent_ctl(fd, KEVENT_CTL_READY, 1, &e);
}

static int copy_mode(unsigned int ms)
{
	int fd = kevent_init(0, O_CLOEXEC), n, total = 0;
	struct ukevent out[8];
	struct kevent_wait_arg wa = kevent_timeout_ns(50000000);

	if (fd < 0 || setup(fd))
		return -1;
	printf("copy mode: kevent_get_events(min 1, max 8, timeout 50 ms)\n");
	while (now_ms() < ms) {
		if (total % 3 == 2)
			poke_user_event(fd, total);
		n = kevent_get_events(fd, 1, 8, out, &wa);
		if (n < 0) {
			perror("kevent_get_events");
			return -1;
		}
		for (int i = 0; i < n; i++)
			print_event("copy", &out[i]);
		total += n;
	}
	close(fd);
	printf("copy mode: %d events\n", total);
	return total;
}

static int ring_mode(unsigned int ms)
{
	const unsigned int size = 16;
	int fd = kevent_init(size, O_CLOEXEC), total = 0;
	size_t len = (KEVENT_RING_BYTES(size) + 4095) & ~4095ul;
	struct kevent_ring *ring;
	struct kevent_wait_arg wa = kevent_timeout_ns(50000000);
	unsigned int uidx = 0, syscalls = 0;

	if (fd < 0 || setup(fd))
		return -1;
	ring = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED) {
		perror("mmap");
		return -1;
	}
	printf("ring mode: %u-entry ring, kevent_wait only when it is empty\n", size);
	while (now_ms() < 2 * ms) {
		unsigned int kidx = __atomic_load_n(&ring->ring_kidx, __ATOMIC_ACQUIRE);

		if (kidx == uidx) {
			if (total % 3 == 2)
				poke_user_event(fd, total);
			kevent_wait(fd, 0, uidx, &wa);
			syscalls++;
			continue;
		}
		while (uidx != kidx) {
			print_event("ring", &ring->event[uidx % size]);
			uidx++;
			total++;
		}
		__atomic_store_n(&ring->ring_uidx, uidx, __ATOMIC_RELEASE);
	}
	printf("ring mode: %d events, %u kevent_wait calls (ring wrapped %u times)\n", total,
	       syscalls, ring->ring_over);
	munmap(ring, len);
	close(fd);
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
