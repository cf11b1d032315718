/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the kevent tests. */
#ifndef KEVENT_TEST_H
#define KEVENT_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kevent_syscalls.h>

#define KEVENT_MODULE_PATH "/lib/modules/kevent.ko"

/* The module is loaded iff /sys/module/kevent exists. */
static inline int kevent_module_loaded(void)
{
	return access("/sys/module/kevent", F_OK) == 0;
}

static inline int kevent_module_load(void)
{
	int fd = open(KEVENT_MODULE_PATH, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

static inline int kevent_module_unload(void)
{
	return syscall(SYS_delete_module, "kevent", O_NONBLOCK);
}

/* A field of /proc/meminfo, in kB, or -1. */
static inline long meminfo_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long val = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			val = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return val;
}

#endif /* KEVENT_TEST_H */

/* --- helpers for the queue tests --- */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline struct ukevent uev(uint32_t type, uint64_t id, uint32_t event,
				 uint32_t req_flags)
{
	struct ukevent e;

	memset(&e, 0, sizeof(e));
	e.type = type;
	e.id.raw_u64 = id;
	e.event = event;
	e.req_flags = req_flags;
	e.user = id ^ 0xabcdef00ull;
	return e;
}

static inline struct ukevent timer_uev(uint32_t sec, uint32_t nsec, uint32_t req_flags)
{
	struct ukevent e = uev(KEVENT_TIMER, 0, KEVENT_TIMER_FIRED, req_flags);

	e.id.raw[0] = sec;
	e.id.raw[1] = nsec;
	return e;
}

/* Adds one registration; returns kevent_ctl's result (0: added quietly). */
static inline int ctl1(int fd, unsigned int cmd, struct ukevent *e)
{
	return kevent_ctl(fd, cmd, 1, e);
}

/* Fires user event @id once. */
static inline int fire(int fd, uint64_t id)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, id, 0, 0);

	return ctl1(fd, KEVENT_CTL_READY, &e);
}

/* Harvests with a relative timeout in ms (-1: forever). */
static inline int harvest(int fd, unsigned int min, unsigned int max,
			  struct ukevent *buf, int timeout_ms)
{
	struct kevent_wait_arg wa = kevent_timeout_ns((uint64_t)timeout_ms * 1000000ull);

	return kevent_get_events(fd, min, max, buf, timeout_ms < 0 ? NULL : &wa);
}

static inline int write_param(const char *name, long value)
{
	char path[128];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "/sys/module/kevent/parameters/%s", name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ret = fprintf(f, "%ld\n", value) > 0 ? 0 : -1;
	if (fclose(f))
		ret = -1;
	return ret;
}

#include <limits.h>

/*
 * Pages pinned system-wide (FOLL_PIN acquired - released). The per-CPU parts
 * of the counters are folded in first through stat_refresh (root only;
 * otherwise the counters may lag by a second or two, which the waits below
 * absorb). LONG_MIN if the counters cannot be read.
 */
static inline long pins_held(void)
{
	long acquired = -1, released = -1, v;
	char name[64];
	FILE *f;
	int fd;

	fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = write(fd, "1\n", 2);

		(void)n;
		close(fd);
	}
	f = fopen("/proc/vmstat", "re");
	if (!f)
		return LONG_MIN;
	while (fscanf(f, "%63s %ld", name, &v) == 2) {
		if (!strcmp(name, "nr_foll_pin_acquired"))
			acquired = v;
		else if (!strcmp(name, "nr_foll_pin_released"))
			released = v;
	}
	fclose(f);
	return acquired < 0 || released < 0 ? LONG_MIN : acquired - released;
}

/* Waits up to 3 s for the pinned count to come back to @want; returns the last count. */
static inline long pins_back_to(long want)
{
	long cur = pins_held();

	for (int i = 0; i < 150 && cur != want; i++) {
		usleep(20000);
		cur = pins_held();
	}
	return cur;
}
