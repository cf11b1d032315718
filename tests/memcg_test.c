// SPDX-License-Identifier: GPL-2.0
/*
 * Memory accounting: queues, rings and registrations are charged to the
 * caller's memory cgroup. A process in a cgroup with a small memory.max gets
 * ENOMEM at that limit (not an OOM kill: kevent allocates with
 * __GFP_RETRY_MAYFAIL) while a process outside it is not affected.
 */
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

#define CG "/sys/fs/cgroup"
#define CHILD CG "/kevent-memcg-test"

static int write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	int ret;

	if (!f)
		return -1;
	ret = fputs(s, f) >= 0 ? 0 : -1;
	if (fclose(f))
		ret = -1;
	return ret;
}

static long read_key(const char *path, const char *key)
{
	char line[128];
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ' ')
			v = atol(line + strlen(key) + 1);
	fclose(f);
	return v;
}

/* In the child: allocate kevent memory until something says no. */
static int fill(void)
{
	struct ukevent b[256];
	unsigned long regs = 0, rings = 0;
	int fd = kevent_init(0, 0);

	if (fd < 0)
		return errno == ENOMEM ? 0 : 10;
	for (;;) {
		int ring = kevent_init(KEVENT_MAX_RING_SIZE, 0);

		if (ring < 0) {
			if (errno != ENOMEM)
				return 11;
			break;
		}
		rings++;
		/* Registrations in between the rings. */
		for (int i = 0; i < 256; i++)
			b[i] = uev(KEVENT_UNOTIFY, regs + i, 0, 0);
		int n = kevent_ctl(fd, KEVENT_CTL_ADD, 256, b);

		if (n < 0)
			return errno == ENOMEM ? 0 : 12;
		if (n > 0)
			return (int)b[0].ret_data[1] == -ENOMEM ? 0 : 13;
		regs += 256;
		if (rings > 100000)
			return 14;
	}
	printf("# child: stopped by ENOMEM after %lu rings and %lu registrations\n", rings, regs);
	return 0;
}

TEST(memory_cgroup_limit_stops_only_the_offender)
{
	int status, fd;
	pid_t pid;
	char pidbuf[32];

	if (access(CG "/cgroup.controllers", F_OK))
		mount("none", CG, "cgroup2", 0, NULL);
	if (access(CG "/cgroup.controllers", F_OK))
		SKIP(return, "no cgroup v2");
	ASSERT_EQ(0, write_file(CG "/cgroup.subtree_control", "+memory"));
	rmdir(CHILD);
	ASSERT_EQ(0, mkdir(CHILD, 0755));
	ASSERT_EQ(0, write_file(CHILD "/memory.max", "16M"));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		snprintf(pidbuf, sizeof(pidbuf), "%d", getpid());
		if (write_file(CHILD "/cgroup.procs", pidbuf))
			_exit(20);
		_exit(fill());
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("the offender was killed (signal %d)",
					       WTERMSIG(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_LT(0, read_key(CHILD "/memory.events", "max"));
	EXPECT_EQ(0, read_key(CHILD "/memory.events", "oom_kill"));
	TH_LOG("memory.events: max %ld, oom %ld", read_key(CHILD "/memory.events", "max"),
	       read_key(CHILD "/memory.events", "oom"));

	/* Outside the cgroup nothing changed. */
	fd = kevent_init(KEVENT_MAX_RING_SIZE, 0);
	ASSERT_LE(0, fd);
	for (int i = 0; i < 40; i++) {
		struct ukevent b[256];

		for (int j = 0; j < 256; j++)
			b[j] = uev(KEVENT_UNOTIFY, i * 256 + j, 0, 0);
		ASSERT_EQ(0, kevent_ctl(fd, KEVENT_CTL_ADD, 256, b));
	}
	close(fd);
	EXPECT_EQ(0, rmdir(CHILD));
}

TEST_HARNESS_MAIN
