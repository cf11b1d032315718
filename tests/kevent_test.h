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
