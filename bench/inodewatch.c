// SPDX-License-Identifier: GPL-2.0
/*
 * File-system events: a thread creates files in a watched directory while the
 * main thread harvests the notifications, until it has seen every create.
 *
 * Case: creates-tmpfs, the directory on tmpfs (on the guest's ext4 disk, a
 * directory of 100,000 entries costs the emulated file system milliseconds
 * per create, and both mechanisms measure only that).
 *
 * Mechanisms:
 *
 *   kevent-inode-ring   a KEVENT_INODE registration (KEVENT_INODE_CREATE) on
 *                       the directory; events read from the ring, each
 *                       counting ret_data[1] creates (notifications arriving
 *                       while an event waits are coalesced into it: a count,
 *                       not the names); kevent_queue_wait() when it is empty
 *   inotify             an inotify watch (IN_CREATE) on the directory,
 *                       blocking read()s of its events (one per create, with
 *                       the name; max_queued_events raised so that none is
 *                       lost)
 *
 * The timed part runs from the first create to the last notification
 * harvested; the files are removed afterwards, unwatched. Metrics:
 * creates_per_s, and cpu_ns_per_create (all CPUs, /proc/stat).
 *
 *	inodewatch [rounds] [creates]
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "bench.h"

struct producer {
	const char *dir;
	long n;
	pthread_t t;
};

static void *create_files(void *arg)
{
	struct producer *p = arg;
	char name[300];

	for (long i = 0; i < p->n; i++) {
		int fd;

		snprintf(name, sizeof(name), "%s/f%ld", p->dir, i);
		fd = open(name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		check(fd >= 0, "create a file");
		close(fd);
	}
	return NULL;
}

static void remove_files(const char *dir, long n)
{
	char name[300];

	for (long i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s/f%ld", dir, i);
		check(unlink(name) == 0, "unlink");
	}
}

static void run_kevent(const char *dir, long n)
{
	struct kevent_queue q;
	struct ukevent *ev[64], w;
	struct producer p = { .dir = dir, .n = n };
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long seen = 0;

	check(dfd >= 0, "open the directory");
	check_ret(kevent_queue_init(&q, 64, 0), "kevent ring");
	kevent_prep_inode(&w, dfd, KEVENT_INODE_CREATE, 0, 0);
	check_ret(kevent_queue_ctl(&q, KEVENT_CTL_ADD, &w), "watch the directory");
	check(pthread_create(&p.t, NULL, create_files, &p) == 0, "pthread_create");
	while (seen < n) {
		unsigned int k = ring_next_batch(&q, ev, 64);

		for (unsigned int i = 0; i < k; i++) {
			check(ev[i]->type == KEVENT_INODE &&
			      ev[i]->ret_data[0] == KEVENT_INODE_CREATE, "an inode event");
			seen += ev[i]->ret_data[1];
		}
		kevent_queue_advance(&q, k);
	}
	check(seen == n, "as many notifications as creates");
	pthread_join(p.t, NULL);
	kevent_queue_exit(&q);
	close(dfd);
}

static void run_inotify(const char *dir, long n)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct producer p = { .dir = dir, .n = n };
	int in = inotify_init1(IN_CLOEXEC);
	long seen = 0;

	check(in >= 0 && inotify_add_watch(in, dir, IN_CREATE) >= 0, "inotify watch");
	check(pthread_create(&p.t, NULL, create_files, &p) == 0, "pthread_create");
	while (seen < n) {
		ssize_t len = read(in, buf, sizeof(buf));

		check(len > 0, "read inotify events");
		for (char *at = buf; at < buf + len;) {
			struct inotify_event *e = (struct inotify_event *)at;

			check(e->mask == IN_CREATE, "an IN_CREATE event (not an overflow)");
			seen++;
			at += sizeof(*e) + e->len;
		}
	}
	pthread_join(p.t, NULL);
	close(in);
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "kevent-inode-ring", "inotify" };
	static void (*const run[])(const char *, long) = { run_kevent, run_inotify };
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	long n = argc > 2 ? atol(argv[2]) : 100000;
	FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "we");

	/* inotify drops what exceeds its queue: give it room for every create. */
	check(f && fprintf(f, "%ld\n", 2 * n) > 0 && fclose(f) == 0, "raise max_queued_events");
	for (int r = 0; r < rounds; r++) {
		for (int m0 = 0; m0 < 2; m0++) {
			const char *dir = "/tmp/inodewatch";
			int m = (m0 + r) % 2;
			uint64_t t0, c0, t, cpu;

			check(mkdir(dir, 0700) == 0, "mkdir");
			t0 = now_ns();
			c0 = cpu_busy_ns();
			run[m](dir, n);
			t = now_ns() - t0;
			cpu = cpu_busy_ns() - c0;
			remove_files(dir, n);
			check(rmdir(dir) == 0, "rmdir");
			emit("inodewatch", "creates-tmpfs", names[m], "creates_per_s",
			     n * 1e9 / (double)t);
			emit("inodewatch", "creates-tmpfs", names[m], "cpu_ns_per_create",
			     (double)cpu / (double)n);
		}
	}
	return 0;
}
