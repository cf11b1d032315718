// SPDX-License-Identifier: GPL-2.0
/*
 * KEVENT_INODE: file and directory events, watched by descriptor.
 *
 * Runs on tmpfs and on ext4 (the guest's scratch disk). Covers every event
 * bit on directories (entries created, removed, written, changed, renamed;
 * subdirectories with KEVENT_INODE_ISDIR) and on files (written, changed,
 * renamed, deleted), compared notification for notification with an
 * inotify watch on the same inode; the interest mask; coalescing with its
 * count; 100,000 creates and deletes with nothing lost (10,000 on ext4); ONESHOT and
 * DISPATCH; two queues watching one inode; and teardown when the watched
 * descriptor or the queue is closed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

#define EVENT_MS	3000

/* The inotify bits that correspond to each KEVENT_INODE bit. */
static const struct {
	uint32_t in, kev;
} in_map[] = {
	{ IN_CREATE, KEVENT_INODE_CREATE },
	{ IN_DELETE, KEVENT_INODE_REMOVE },
	{ IN_MODIFY, KEVENT_INODE_MODIFY },
	{ IN_ATTRIB, KEVENT_INODE_ATTRIB },
	{ IN_MOVED_FROM, KEVENT_INODE_MOVED_FROM },
	{ IN_MOVED_TO, KEVENT_INODE_MOVED_TO },
	{ IN_DELETE_SELF, KEVENT_INODE_DELETE_SELF },
	{ IN_MOVE_SELF, KEVENT_INODE_MOVE_SELF },
	{ IN_ISDIR, KEVENT_INODE_ISDIR },
};

#define IN_WATCHED (IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | \
		    IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

static uint32_t from_inotify(uint32_t mask)
{
	uint32_t bits = 0;

	for (size_t i = 0; i < sizeof(in_map) / sizeof(in_map[0]); i++)
		if (mask & in_map[i].in)
			bits |= in_map[i].kev;
	return bits;
}

/* Reads what inotify has queued: the union of the masks (translated) and the count. */
static void inotify_drain(int in, uint32_t *mask, uint32_t *count)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	*mask = 0;
	*count = 0;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;

			if (!(e->mask & IN_IGNORED)) {
				*mask |= from_inotify(e->mask);
				(*count)++;
			}
			p += sizeof(*e) + e->len;
		}
	}
}

/* Adds a KEVENT_INODE registration for @fd: 0, or -errno. */
static int watch(int q, int fd, uint32_t mask, uint32_t flags)
{
	struct ukevent e = uev(KEVENT_INODE, (uint64_t)fd, mask, flags);
	int ret = ctl1(q, KEVENT_CTL_ADD, &e);

	if (ret < 0)
		return -errno;
	return ret == 1 && (e.ret_flags & KEVENT_RET_BROKEN) ? (int)e.ret_data[1] : 0;
}

/* The pending event of @q (waiting up to @ms): its mask, with its count in *count; 0 if none. */
static uint32_t take(int q, int ms, uint32_t *count)
{
	struct ukevent ev;
	int n = harvest(q, 1, 1, &ev, ms);

	*count = 0;
	if (n != 1)
		return 0;
	*count = ev.ret_data[1];
	return ev.type == KEVENT_INODE ? ev.ret_data[0] : 0xdeadbeef;
}

FIXTURE(w) {
	int q;
	int dfd;
	char dir[128];
	char path[160];
};

FIXTURE_VARIANT(w) {
	bool ext4;
};

FIXTURE_VARIANT_ADD(w, tmpfs) { .ext4 = false };
FIXTURE_VARIANT_ADD(w, ext4) { .ext4 = true };

FIXTURE_SETUP(w)
{
	const char *base = variant->ext4 ? getenv("KEVENT_DISK") : "/tmp";

	self->q = -1;
	self->dfd = -1;
	if (!base)
		SKIP(return, "no scratch disk (KEVENT_DISK unset: the VM runner mounts one)");
	snprintf(self->dir, sizeof(self->dir), "%s/inode.%d", base, getpid());
	ASSERT_EQ(0, mkdir(self->dir, 0700));
	self->dfd = open(self->dir, O_RDONLY | O_DIRECTORY);
	ASSERT_LE(0, self->dfd);
	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
}

FIXTURE_TEARDOWN(w)
{
	char cmd[200];

	if (self->q >= 0)
		close(self->q);
	if (self->dfd >= 0) {
		close(self->dfd);
		snprintf(cmd, sizeof(cmd), "rm -rf %s", self->dir);
		if (system(cmd))
			TH_LOG("could not remove %s", self->dir);
	}
}

/* @buf = @dir/@name. */
#define AT(buf, name) snprintf(buf, sizeof(buf), "%s/%s", self->dir, name)

/*
 * Runs @op, then checks that the queue has one event with bits @want and that
 * inotify, watching the same inode, saw the same bits in as many
 * notifications as the event counts.
 */
#define STEP(in, what, op, want) do {						\
	uint32_t count_, in_mask_, in_count_, mask_;				\
										\
	ASSERT_EQ(0, (op)) TH_LOG("%s: %s", what, strerror(errno));		\
	mask_ = take(self->q, EVENT_MS, &count_);				\
	inotify_drain(in, &in_mask_, &in_count_);				\
	EXPECT_EQ((uint32_t)(want), mask_) TH_LOG("%s: %#x", what, mask_);	\
	EXPECT_EQ(in_mask_, mask_) TH_LOG("%s: inotify saw %#x", what, in_mask_); \
	EXPECT_EQ(in_count_, count_) TH_LOG("%s: %u vs inotify's %u", what,	\
					    count_, in_count_);			\
} while (0)

static int write1(int fd)
{
	return write(fd, "x", 1) == 1 ? 0 : -1;
}

static int creat_close(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	return fd < 0 ? -1 : close(fd);
}

/*
 * One operation at a time on the entries of a watched directory, compared
 * with inotify watching the same directory.
 */
TEST_F(w, directory_events_match_inotify)
{
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), fd = -1;
	char a[200], b[200], sub[200];

	ASSERT_LE(0, in);
	ASSERT_LE(0, inotify_add_watch(in, self->dir, IN_WATCHED));
	ASSERT_EQ(0, watch(self->q, self->dfd, KEVENT_INODE_ALL, 0));
	AT(a, "a");
	AT(b, "b");
	AT(sub, "sub");
	STEP(in, "create", (fd = open(a, O_CREAT | O_WRONLY, 0600)) < 0, KEVENT_INODE_CREATE);
	STEP(in, "write", write1(fd), KEVENT_INODE_MODIFY);
	STEP(in, "chmod", fchmod(fd, 0640), KEVENT_INODE_ATTRIB);
	STEP(in, "truncate", ftruncate(fd, 0), KEVENT_INODE_MODIFY);
	close(fd);
	STEP(in, "rename", rename(a, b), KEVENT_INODE_MOVED_FROM | KEVENT_INODE_MOVED_TO);
	STEP(in, "link", link(b, a), KEVENT_INODE_CREATE);
	STEP(in, "unlink", unlink(a), KEVENT_INODE_REMOVE);
	STEP(in, "mkdir", mkdir(sub, 0700), KEVENT_INODE_CREATE | KEVENT_INODE_ISDIR);
	STEP(in, "chmod dir", chmod(sub, 0750), KEVENT_INODE_ATTRIB | KEVENT_INODE_ISDIR);
	STEP(in, "rmdir", rmdir(sub), KEVENT_INODE_REMOVE | KEVENT_INODE_ISDIR);
	STEP(in, "unlink last", unlink(b), KEVENT_INODE_REMOVE);
	STEP(in, "chmod self", fchmod(self->dfd, 0711), KEVENT_INODE_ATTRIB | KEVENT_INODE_ISDIR);
	close(in);
}

/* A watched file: written, changed, renamed, deleted (its last link removed). */
TEST_F(w, file_events)
{
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), fd;
	char a[200], b[200];
	uint32_t count;

	ASSERT_LE(0, in);
	AT(a, "a");
	AT(b, "b");
	fd = open(a, O_CREAT | O_RDWR, 0600);
	ASSERT_LE(0, fd);
	ASSERT_LE(0, inotify_add_watch(in, a, IN_WATCHED));
	ASSERT_EQ(0, watch(self->q, fd, KEVENT_INODE_ALL, 0));
	STEP(in, "write", write1(fd), KEVENT_INODE_MODIFY);
	STEP(in, "chmod", fchmod(fd, 0600), KEVENT_INODE_ATTRIB);
	STEP(in, "rename", rename(a, b), KEVENT_INODE_MOVE_SELF);
	STEP(in, "link", link(b, a), KEVENT_INODE_ATTRIB);
	STEP(in, "unlink one link", unlink(a), KEVENT_INODE_ATTRIB);
	/*
	 * The last link: inotify reports IN_DELETE_SELF only once the last
	 * reference goes (our descriptor keeps it); kevent reports the deletion
	 * with the unlink's link-count change.
	 */
	ASSERT_EQ(0, unlink(b));
	EXPECT_EQ(KEVENT_INODE_ATTRIB | KEVENT_INODE_DELETE_SELF, take(self->q, EVENT_MS, &count));
	EXPECT_EQ(1, count);
	close(fd);
	close(in);
}

/* Only the events asked for make the registration ready; the others are not counted. */
TEST_F(w, interest_mask)
{
	char a[200];
	uint32_t count;
	int fd;

	AT(a, "a");
	ASSERT_EQ(0, watch(self->q, self->dfd, KEVENT_INODE_REMOVE, 0));
	fd = open(a, O_CREAT | O_WRONLY, 0600);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, write1(fd));
	close(fd);
	EXPECT_EQ(0, take(self->q, 100, &count));
	ASSERT_EQ(0, unlink(a));
	EXPECT_EQ(KEVENT_INODE_REMOVE, take(self->q, EVENT_MS, &count));
	EXPECT_EQ(1, count);
	/* Bad masks and descriptors. */
	EXPECT_EQ(-EINVAL, watch(self->q, self->dfd, 0, 0));
	EXPECT_EQ(-EINVAL, watch(self->q, self->dfd, KEVENT_INODE_ALL + 1, 0));
	EXPECT_EQ(-EBADF, watch(self->q, 1000, KEVENT_INODE_CREATE, 0));
	EXPECT_EQ(-EEXIST, watch(self->q, self->dfd, KEVENT_INODE_CREATE, 0));
}

/*
 * 100,000 creates and deletes (10,000 on ext4, whose emulated disk is slow
 * on the debug kernel), harvested now and then: the events coalesce, and
 * their counts add up to every notification (nothing is lost).
 */
TEST_F_TIMEOUT(w, hundred_thousand_creates_and_deletes, 900)
{
	const int n = variant->ext4 ? 10000 : 100000;
	uint64_t creates = 0, removes = 0, notes = 0, events = 0;
	struct ukevent ev[8];
	char name[200];

	ASSERT_EQ(0, watch(self->q, self->dfd, KEVENT_INODE_CREATE | KEVENT_INODE_REMOVE, 0));
	for (int i = 0; i <= n; i++) {
		int got;

		if (i < n) {
			snprintf(name, sizeof(name), "%s/f%d", self->dir, i % 64);
			ASSERT_EQ(0, creat_close(name));
			ASSERT_EQ(0, unlink(name));
			creates++;
			removes++;
		}
		/* Harvest after a varying number of operations (and at the end). */
		if (i % 7 && i % 1000 && i < n)
			continue;
		got = harvest(self->q, 0, 8, ev, 0);
		ASSERT_LE(0, got);
		ASSERT_GE(1, got);
		for (int k = 0; k < got; k++) {
			EXPECT_EQ(KEVENT_INODE_CREATE | KEVENT_INODE_REMOVE, ev[k].ret_data[0]);
			notes += ev[k].ret_data[1];
			events++;
		}
	}
	EXPECT_EQ(creates + removes, notes);
	TH_LOG("%llu notifications in %llu events", (unsigned long long)notes,
	       (unsigned long long)events);
}

/* ONESHOT: one event, then the registration is gone. DISPATCH: silent until MODIFY. */
TEST_F(w, oneshot_and_dispatch)
{
	char a[200], b[200];
	struct ukevent e;
	uint32_t count;

	AT(a, "a");
	AT(b, "b");
	ASSERT_EQ(0, watch(self->q, self->dfd, KEVENT_INODE_CREATE, KEVENT_REQ_ONESHOT));
	ASSERT_EQ(0, creat_close(a));
	EXPECT_EQ(KEVENT_INODE_CREATE, take(self->q, EVENT_MS, &count));
	ASSERT_EQ(0, creat_close(b));
	EXPECT_EQ(0, take(self->q, 100, &count));
	e = uev(KEVENT_INODE, (uint64_t)self->dfd, 0, 0);
	ASSERT_EQ(1, ctl1(self->q, KEVENT_CTL_REMOVE, &e));
	EXPECT_EQ(-ENOENT, (int)e.ret_data[1]);

	ASSERT_EQ(0, watch(self->q, self->dfd, KEVENT_INODE_REMOVE, KEVENT_REQ_DISPATCH));
	ASSERT_EQ(0, unlink(a));
	EXPECT_EQ(KEVENT_INODE_REMOVE, take(self->q, EVENT_MS, &count));
	ASSERT_EQ(0, unlink(b));
	EXPECT_EQ(0, take(self->q, 100, &count));
	e = uev(KEVENT_INODE, (uint64_t)self->dfd, KEVENT_INODE_CREATE, KEVENT_REQ_DISPATCH);
	ASSERT_EQ(0, ctl1(self->q, KEVENT_CTL_MODIFY, &e));
	ASSERT_EQ(0, creat_close(a));
	EXPECT_EQ(KEVENT_INODE_CREATE, take(self->q, EVENT_MS, &count));
}

/* Two queues watching one directory both see each event. */
TEST_F(w, two_queues_one_inode)
{
	int q2 = kevent_init(0, 0), dfd2 = dup(self->dfd);
	char a[200];
	uint32_t count;

	ASSERT_LE(0, q2);
	ASSERT_LE(0, dfd2);
	AT(a, "a");
	ASSERT_EQ(0, watch(self->q, self->dfd, KEVENT_INODE_CREATE, 0));
	ASSERT_EQ(0, watch(q2, self->dfd, KEVENT_INODE_CREATE, 0));
	ASSERT_EQ(0, watch(self->q, dfd2, KEVENT_INODE_CREATE, 0));
	ASSERT_EQ(0, creat_close(a));
	EXPECT_EQ(KEVENT_INODE_CREATE, take(self->q, EVENT_MS, &count));
	EXPECT_EQ(KEVENT_INODE_CREATE, take(self->q, EVENT_MS, &count));
	EXPECT_EQ(KEVENT_INODE_CREATE, take(q2, EVENT_MS, &count));
	close(q2);
	close(dfd2);
}

/*
 * Closing the watched descriptor removes the registration (like every file
 * source); closing the queue with 1,000 watches leaves nothing behind.
 */
TEST_F(w, closing_the_descriptor_or_the_queue)
{
	int fd = open(self->dir, O_RDONLY | O_DIRECTORY), q2 = kevent_init(0, 0);
	char a[200], name[200];
	struct ukevent e;
	uint32_t count;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, q2);
	AT(a, "a");
	ASSERT_EQ(0, watch(self->q, fd, KEVENT_INODE_CREATE, 0));
	close(fd);
	ASSERT_EQ(0, creat_close(a));
	EXPECT_EQ(0, take(self->q, 100, &count));
	e = uev(KEVENT_INODE, (uint64_t)fd, 0, 0);
	ASSERT_EQ(1, ctl1(self->q, KEVENT_CTL_REMOVE, &e));
	EXPECT_EQ(-ENOENT, (int)e.ret_data[1]);

	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "%s/w%d", self->dir, i);
		fd = open(name, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, watch(q2, fd, KEVENT_INODE_ALL, 0));
		ASSERT_EQ(0, write1(fd));
		close(fd);
	}
	close(q2);
}

TEST_HARNESS_MAIN
