// SPDX-License-Identifier: GPL-2.0
/*
 * File AIO: aio_read() and aio_write() on regular files, each request
 * completed by one KEVENT_AIO event (ret_data[0] bytes, ret_data[1] 0 or
 * -errno).
 *
 * Every test runs on four variants: ext4 on the guest's virtio-blk disk
 * (KEVENT_DISK) and tmpfs, each with O_DIRECT and buffered I/O. ext4 O_DIRECT
 * completes from the device's interrupt; ext4 buffered I/O completes inline
 * on a page-cache hit; tmpfs (no FMODE_NOWAIT) always goes through a worker.
 *
 * Covers the event's fields and every byte read or written, at scattered
 * offsets with many requests in flight; 10,000 requests in flight at once;
 * write-then-read consistency; end of file and short files; a file
 * truncated under pending reads; every argument error (nothing registered,
 * no page left pinned); misaligned O_DIRECT; cancellation with
 * KEVENT_CTL_REMOVE; closing the queue and exiting with requests in flight
 * (pins balanced in /proc/vmstat); batches held by KEVENT_CTL_PLUG (nothing
 * runs before the unplug or a wait; cancelled and closed while held; one
 * unplug reaches the disk as one merged batch); finished requests kept for
 * reuse without their files, renewed for other files and the other direction.
 */
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kevent_test.h"
#include "naio_common.h"

#define FILE_SIZE	(4u << 20)
#define EVENT_MS	10000
#define ALIGN		4096

/* Byte @i of every test file. */
static inline unsigned char fpat(uint64_t i)
{
	return (unsigned char)(i * 151 + (i >> 12) + 3);
}

/* Index of the first byte of @buf that is not file byte @off + index, or @len. */
static size_t fpat_mismatch(const unsigned char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != fpat(off + i))
			return i;
	return len;
}

static long submit(int q, bool write, int fd, const void *buf, size_t len, uint64_t off)
{
	return write ? aio_write(q, fd, buf, len, &off) : aio_read(q, fd, (void *)buf, len, &off);
}

/* An aligned, zeroed buffer (mmap: page-aligned, released with munmap). */
static unsigned char *abuf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * Harvests until every one of the @n requests whose ids are in @ids has its
 * event; @res[i] gets request i's result (bytes, or -errno). Fails the test on
 * a second event for a request, an event of another type or an unknown id, or
 * a timeout.
 */
static void await_all(struct __test_metadata *_metadata, int q, const long *ids,
		      long *res, int n)
{
	static struct ukevent ev[256];
	bool *seen = calloc(n, sizeof(*seen));
	long first = ids[0];
	int left = n;

	ASSERT_NE(NULL, seen);
	/* Ids are handed out in increasing order; a batch's are consecutive. */
	for (int i = 1; i < n; i++)
		ASSERT_EQ(first + i, ids[i]);
	while (left > 0) {
		int got = collect(q, ev, left < 256 ? left : 256, EVENT_MS);

		ASSERT_LT(0, got) TH_LOG("%d of %d requests still without an event", left, n);
		for (int i = 0; i < got; i++) {
			long k = (long)ev[i].id.raw_u64 - first;

			ASSERT_EQ(KEVENT_AIO, ev[i].type);
			ASSERT_EQ(KEVENT_AIO_DONE, ev[i].event);
			ASSERT_TRUE(k >= 0 && k < n) TH_LOG("unknown id %llu",
							   (unsigned long long)ev[i].id.raw_u64);
			ASSERT_FALSE(seen[k]) TH_LOG("a second event for request %ld", k);
			seen[k] = true;
			res[k] = ev[i].ret_data[1] ? (long)(int)ev[i].ret_data[1]
						   : (long)ev[i].ret_data[0];
			left--;
		}
	}
	free(seen);
}

/* Submits n reads of @chunk bytes covering the file from offset 0; their ids in @ids. */
#define READ_COVERING(buf, chunk, n, ids) do {					\
	for (int i_ = 0; i_ < (n); i_++) {					\
		(ids)[i_] = submit(self->q, false, self->fd, (buf) + i_ * (chunk),	\
				   (chunk), i_ * (chunk));			\
		ASSERT_LE(1, (ids)[i_]) TH_LOG("aio_read: %s", strerror(errno));	\
	}									\
} while (0)

FIXTURE(f) {
	int q;
	int fd;
	char path[128];
	bool ext4;
};

FIXTURE_VARIANT(f) {
	bool ext4;
	bool direct;
};

FIXTURE_VARIANT_ADD(f, ext4_direct) { .ext4 = true, .direct = true };
FIXTURE_VARIANT_ADD(f, ext4_buffered) { .ext4 = true, .direct = false };
FIXTURE_VARIANT_ADD(f, tmpfs_direct) { .ext4 = false, .direct = true };
FIXTURE_VARIANT_ADD(f, tmpfs_buffered) { .ext4 = false, .direct = false };

FIXTURE_SETUP(f)
{
	const char *dir = variant->ext4 ? getenv("KEVENT_DISK") : "/tmp";
	unsigned char *buf;

	self->q = -1;
	self->fd = -1;
	if (!dir)
		SKIP(return, "no scratch disk (KEVENT_DISK unset: the VM runner mounts one)");
	snprintf(self->path, sizeof(self->path), "%s/faio.%d", dir, getpid());
	self->fd = open(self->path, O_RDWR | O_CREAT | O_TRUNC | (variant->direct ? O_DIRECT : 0),
			0600);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", self->path, strerror(errno));
	buf = abuf(FILE_SIZE);
	ASSERT_NE(NULL, buf);
	for (size_t i = 0; i < FILE_SIZE; i++)
		buf[i] = fpat(i);
	ASSERT_EQ(FILE_SIZE, pwrite(self->fd, buf, FILE_SIZE, 0));
	munmap(buf, FILE_SIZE);
	self->q = kevent_init(0, 0);
	ASSERT_LE(0, self->q);
}

FIXTURE_TEARDOWN(f)
{
	if (self->q >= 0)
		close(self->q);
	if (self->fd >= 0) {
		close(self->fd);
		unlink(self->path);
	}
}

/* 64 reads of 64 KiB covering the file, all in flight: the event and every byte. */
TEST_F(f, read_covers_the_file)
{
	const size_t chunk = 64 << 10;
	const int n = FILE_SIZE / chunk;
	unsigned char *buf = abuf(FILE_SIZE);
	long ids[64], res[64];

	ASSERT_NE(NULL, buf);
	READ_COVERING(buf, chunk, n, ids);
	await_all(_metadata, self->q, ids, res, n);
	for (int i = 0; i < n; i++)
		EXPECT_EQ((long)chunk, res[i]);
	EXPECT_EQ(FILE_SIZE, fpat_mismatch(buf, 0, FILE_SIZE));
	munmap(buf, FILE_SIZE);
}

/*
 * 600 reads at random offsets and lengths (multiples of 4 KiB for O_DIRECT,
 * any byte for buffered I/O), up to 32 in flight, each checked byte for byte.
 */
TEST_F_TIMEOUT(f, scattered_reads, 300)
{
	const int rounds = 20, per = 30;
	const size_t max = 64 << 10;
	unsigned char *buf = abuf(per * max);
	uint64_t seed = 0x5eed, off[30];
	size_t len[30];
	long ids[30], res[30];

	ASSERT_NE(NULL, buf);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < per; i++) {
			len[i] = 1 + rnd(&seed) % max;
			off[i] = rnd(&seed) % (FILE_SIZE - len[i]);
			if (variant->direct) {
				len[i] = (len[i] + ALIGN - 1) & ~(size_t)(ALIGN - 1);
				off[i] = rnd(&seed) % ((FILE_SIZE - len[i]) / ALIGN + 1) * ALIGN;
			}
			memset(buf + i * max, 0, max);
			ids[i] = submit(self->q, false, self->fd, buf + i * max, len[i], off[i]);
			ASSERT_LE(1, ids[i]);
		}
		await_all(_metadata, self->q, ids, res, per);
		for (int i = 0; i < per; i++) {
			ASSERT_EQ((long)len[i], res[i]);
			ASSERT_EQ(len[i], fpat_mismatch(buf + i * max, off[i], len[i]))
				TH_LOG("round %d request %d: %zu bytes at %llu", r, i, len[i],
				       (unsigned long long)off[i]);
		}
	}
	munmap(buf, per * max);
}

/* 256 writes of fresh data at scattered offsets in flight, then read back by pread and aio_read. */
TEST_F_TIMEOUT(f, writes_then_reads, 300)
{
	const int n = 256;
	const size_t len = 8192;
	unsigned char *src = abuf(n * len), *back = abuf(n * len);
	long ids[256], res[256];
	uint64_t seed = 42;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, back);
	for (size_t i = 0; i < n * len; i++)
		src[i] = (unsigned char)rnd(&seed);
	/* Chunk i goes to slot (i * 97) % 512 of the file: out of order, no overlap. */
	for (int i = 0; i < n; i++) {
		ids[i] = submit(self->q, true, self->fd, src + i * len, len,
				(uint64_t)((i * 97) % 512) * len);
		ASSERT_LE(1, ids[i]) TH_LOG("aio_write: %s", strerror(errno));
	}
	await_all(_metadata, self->q, ids, res, n);
	for (int i = 0; i < n; i++)
		ASSERT_EQ((long)len, res[i]);
	for (int i = 0; i < n; i++) {
		ASSERT_EQ((ssize_t)len, pread(self->fd, back + i * len, len,
					      (off_t)((i * 97) % 512) * len));
	}
	EXPECT_EQ(0, memcmp(src, back, n * len));
	memset(back, 0, n * len);
	for (int i = 0; i < n; i++) {
		ids[i] = submit(self->q, false, self->fd, back + i * len, len,
				(uint64_t)((i * 97) % 512) * len);
		ASSERT_LE(1, ids[i]);
	}
	await_all(_metadata, self->q, ids, res, n);
	for (int i = 0; i < n; i++)
		ASSERT_EQ((long)len, res[i]);
	EXPECT_EQ(0, memcmp(src, back, n * len));
	/* Slot 1 was not written (97 * i % 512 == 1 needs i == 285): it kept the pattern. */
	for (int i = 0; i < n; i++)
		ASSERT_NE(1, (i * 97) % 512);
	ASSERT_EQ((ssize_t)len, pread(self->fd, back, len, len));
	EXPECT_EQ(len, fpat_mismatch(back, len, len));
	munmap(src, n * len);
	munmap(back, n * len);
}

/*
 * A queue keeps its finished requests for reuse, but not their files: once a
 * request's event is harvested, closing the descriptor is the file's last
 * close (inotify reports IN_CLOSE_NOWRITE at once), and the next requests,
 * renewed from finished ones, read their own file and do their own kind of
 * I/O (a write renewed from a read writes).
 */
TEST_F(f, finished_requests_keep_no_file)
{
	char other[160];
	unsigned char *buf = abuf(2 * ALIGN);
	char evbuf[sizeof(struct inotify_event) + NAME_MAX + 1];
	struct inotify_event *ev = (struct inotify_event *)evbuf;
	struct pollfd pfd;
	long ids[2], res[2];
	int fd, in;

	ASSERT_NE(NULL, buf);
	snprintf(other, sizeof(other), "%s.other", self->path);
	fd = open(other, O_RDWR | O_CREAT | O_TRUNC | (variant->direct ? O_DIRECT : 0), 0600);
	ASSERT_LE(0, fd);
	memset(buf, 0xa5, ALIGN);
	ASSERT_EQ(ALIGN, pwrite(fd, buf, ALIGN, 0));
	ASSERT_EQ(0, close(fd));
	in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ASSERT_LE(0, in);
	ASSERT_LE(0, inotify_add_watch(in, other, IN_CLOSE_NOWRITE));
	fd = open(other, O_RDONLY | (variant->direct ? O_DIRECT : 0));
	ASSERT_LE(0, fd);
	memset(buf, 0, ALIGN);
	ids[0] = submit(self->q, false, fd, buf, ALIGN, 0);
	ASSERT_LE(1, ids[0]);
	await_all(_metadata, self->q, ids, res, 1);
	ASSERT_EQ(ALIGN, res[0]);
	for (int i = 0; i < ALIGN; i++)
		ASSERT_EQ(0xa5, buf[i]);
	EXPECT_EQ(-1, read(in, evbuf, sizeof(evbuf)));
	ASSERT_EQ(0, close(fd));
	pfd = (struct pollfd){ .fd = in, .events = POLLIN };
	ASSERT_EQ(1, poll(&pfd, 1, 2000)) TH_LOG("the file stayed open after its request ended");
	ASSERT_LT(0, read(in, evbuf, sizeof(evbuf)));
	EXPECT_TRUE(ev->mask & IN_CLOSE_NOWRITE);
	/* Renewed requests: a write where a read was, then a read of the fixture's file. */
	memset(buf + ALIGN, 0x3c, ALIGN);
	ids[0] = submit(self->q, true, self->fd, buf + ALIGN, ALIGN, 2 * ALIGN);
	ASSERT_LE(1, ids[0]);
	await_all(_metadata, self->q, ids, res, 1);
	ASSERT_EQ(ALIGN, res[0]);
	memset(buf, 0, 2 * ALIGN);
	ids[0] = submit(self->q, false, self->fd, buf, ALIGN, ALIGN);
	ids[1] = submit(self->q, false, self->fd, buf + ALIGN, ALIGN, 2 * ALIGN);
	ASSERT_LE(1, ids[0]);
	ASSERT_EQ(ids[0] + 1, ids[1]);
	await_all(_metadata, self->q, ids, res, 2);
	EXPECT_EQ(ALIGN, res[0]);
	EXPECT_EQ(ALIGN, res[1]);
	EXPECT_EQ(ALIGN, fpat_mismatch(buf, ALIGN, ALIGN));
	for (int i = 0; i < ALIGN; i++)
		ASSERT_EQ(0x3c, buf[ALIGN + i]);
	close(in);
	unlink(other);
	munmap(buf, 2 * ALIGN);
}

/* Past the end: 0 bytes; across the end: the bytes up to it; the file position is untouched. */
TEST_F(f, end_of_file)
{
	unsigned char *buf = abuf(3 * ALIGN);
	long ids[3], res[3];

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, ftruncate(self->fd, FILE_SIZE - ALIGN / 2));
	ids[0] = submit(self->q, false, self->fd, buf, ALIGN, FILE_SIZE + 10 * ALIGN);
	ids[1] = submit(self->q, false, self->fd, buf + ALIGN, 2 * ALIGN, FILE_SIZE - 2 * ALIGN);
	ASSERT_LE(1, ids[0]);
	ASSERT_EQ(ids[0] + 1, ids[1]);
	await_all(_metadata, self->q, ids, res, 2);
	EXPECT_EQ(0, res[0]);
	EXPECT_EQ(ALIGN + ALIGN / 2, res[1]);
	EXPECT_EQ((size_t)res[1], fpat_mismatch(buf + ALIGN, FILE_SIZE - 2 * ALIGN, res[1]));
	EXPECT_EQ(0, lseek(self->fd, 0, SEEK_CUR));
	munmap(buf, 3 * ALIGN);
}

/* Every argument error: the call fails, nothing is registered or pinned. */
TEST_F(f, argument_errors)
{
	unsigned char *buf = abuf(2 * ALIGN);
	uint64_t off = 0, neg = 1ull << 63, big = LLONG_MAX - 10;
	int rd, wr, p[2], dir;
	long before = pins_settled();
	struct ukevent ev;

	ASSERT_NE(NULL, buf);
	rd = open(self->path, O_RDONLY);
	wr = open(self->path, O_WRONLY);
	dir = open("/tmp", O_RDONLY | O_DIRECTORY);
	ASSERT_LE(0, rd);
	ASSERT_LE(0, wr);
	ASSERT_LE(0, dir);
	ASSERT_EQ(0, pipe(p));
#define FAILS(err, call) do { errno = 0; EXPECT_EQ(-1, (call)); EXPECT_EQ(err, errno); } while (0)
	FAILS(EINVAL, aio_read(self->q, self->fd, buf, 0, &off));
	FAILS(EINVAL, aio_read(self->q, self->fd, buf, ALIGN, NULL));
	FAILS(EINVAL, aio_read(self->q, self->fd, buf, ALIGN, &neg));
	FAILS(EINVAL, aio_write(self->q, self->fd, buf, ALIGN, &big));
	FAILS(EINVAL, aio_read(self->q, self->fd, buf, (size_t)INT_MAX + 1, &off));
	FAILS(EFAULT, aio_read(self->q, self->fd, buf, ALIGN, (uint64_t *)8));
	FAILS(EBADF, aio_read(self->q, 1000, buf, ALIGN, &off));
	FAILS(EBADF, aio_read(1000, self->fd, buf, ALIGN, &off));
	FAILS(EINVAL, aio_read(p[0], self->fd, buf, ALIGN, &off));
	FAILS(EBADF, aio_write(self->q, rd, buf, ALIGN, &off));
	FAILS(EBADF, aio_read(self->q, wr, buf, ALIGN, &off));
	FAILS(ESPIPE, aio_read(self->q, p[0], buf, ALIGN, &off));
	FAILS(ESPIPE, aio_write(self->q, p[1], buf, ALIGN, &off));
	FAILS(EINVAL, aio_read(self->q, dir, buf, ALIGN, &off));
	FAILS(EFAULT, aio_read(self->q, self->fd, (void *)8, ALIGN, &off));
	/* A read needs a writable buffer; a write only a readable one. */
	ASSERT_EQ(0, mprotect(buf + ALIGN, ALIGN, PROT_READ));
	FAILS(EFAULT, aio_read(self->q, self->fd, buf, 2 * ALIGN, &off));
	ASSERT_EQ(0, mprotect(buf, ALIGN, PROT_NONE));
	FAILS(EFAULT, aio_write(self->q, self->fd, buf, 2 * ALIGN, &off));
#undef FAILS
	EXPECT_EQ(0, harvest(self->q, 0, 1, &ev, 100));
	EXPECT_EQ(before, pins_back_to(before));
	close(rd);
	close(wr);
	close(dir);
	close(p[0]);
	close(p[1]);
	munmap(buf, 2 * ALIGN);
}

/* O_DIRECT on ext4 wants aligned buffers: the request fails in its event, like pread. */
TEST_F(f, misaligned_direct_fails_like_pread)
{
	unsigned char *buf = abuf(2 * ALIGN);
	long ids[1], res[1];
	long before = pins_settled();

	ASSERT_NE(NULL, buf);
	if (!variant->ext4 || !variant->direct)
		SKIP(goto out, "only ext4 checks O_DIRECT alignment (tmpfs reads through its cache)");
	errno = 0;
	EXPECT_EQ(-1, pread(self->fd, buf + 1, ALIGN, 0));
	EXPECT_EQ(EINVAL, errno);
	ids[0] = submit(self->q, false, self->fd, buf + 1, ALIGN, 0);
	ASSERT_LE(1, ids[0]);
	await_all(_metadata, self->q, ids, res, 1);
	EXPECT_EQ(-EINVAL, res[0]);
	EXPECT_EQ(before, pins_back_to(before));
out:
	munmap(buf, 2 * ALIGN);
}

/* ext4 buffered reads of cached data complete inline: the event is there when the call returns. */
TEST_F(f, cached_reads_complete_inline)
{
	unsigned char buf[512];
	struct ukevent ev;

	if (!variant->ext4 || variant->direct)
		SKIP(return, "inline completion needs a page cache and FMODE_NOWAIT (ext4, buffered)");
	ASSERT_EQ(sizeof(buf), pread(self->fd, buf, sizeof(buf), 8192));
	for (int i = 0; i < 50; i++) {
		long id = submit(self->q, false, self->fd, buf, sizeof(buf), 8192 + i);

		ASSERT_LE(1, id);
		ASSERT_EQ(1, harvest(self->q, 0, 1, &ev, 0)) TH_LOG("round %d: no event yet", i);
		EXPECT_EQ(id, (long)ev.id.raw_u64);
		EXPECT_EQ(sizeof(buf), ev.ret_data[0]);
		EXPECT_EQ(sizeof(buf), fpat_mismatch(buf, 8192 + i, sizeof(buf)));
	}
}

/* 10,000 requests of 4 KiB in flight at once, completing in any order, each exactly once. */
TEST_F_TIMEOUT(f, ten_thousand_in_flight, 600)
{
	const int n = 10000;
	unsigned char *buf = abuf((size_t)n * ALIGN);
	long *ids = calloc(n, sizeof(*ids)), *res = calloc(n, sizeof(*res));
	uint64_t seed = 7, *off = calloc(n, sizeof(*off));

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, ids);
	for (int i = 0; i < n; i++) {
		off[i] = (rnd(&seed) % (FILE_SIZE / ALIGN)) * ALIGN;
		ids[i] = submit(self->q, false, self->fd, buf + (size_t)i * ALIGN, ALIGN, off[i]);
		ASSERT_LE(1, ids[i]) TH_LOG("request %d: %s", i, strerror(errno));
	}
	await_all(_metadata, self->q, ids, res, n);
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(ALIGN, res[i]);
		ASSERT_EQ(ALIGN, fpat_mismatch(buf + (size_t)i * ALIGN, off[i], ALIGN))
			TH_LOG("request %d", i);
	}
	free(ids);
	free(res);
	free(off);
	munmap(buf, (size_t)n * ALIGN);
}

/* A file truncated under pending reads: each ends with the bytes that existed, no error. */
TEST_F(f, truncated_under_pending_reads)
{
	const size_t chunk = 64 << 10;
	const int n = FILE_SIZE / chunk;
	unsigned char *buf = abuf(FILE_SIZE);
	long ids[64], res[64];

	ASSERT_NE(NULL, buf);
	READ_COVERING(buf, chunk, n, ids);
	ASSERT_EQ(0, ftruncate(self->fd, 0));
	await_all(_metadata, self->q, ids, res, n);
	for (int i = 0; i < n; i++) {
		ASSERT_LE(0, res[i]);
		ASSERT_GE((long)chunk, res[i]);
		/* What was read is the file's content (a truncation zeroes nothing in flight). */
		ASSERT_EQ((size_t)res[i], fpat_mismatch(buf + i * chunk, i * chunk, res[i]));
	}
	munmap(buf, FILE_SIZE);
}

/*
 * KEVENT_CTL_REMOVE of each request right after submitting it: every request
 * still ends with exactly one event, either its data or -ECANCELED (when no
 * worker had started it), and no page stays pinned.
 */
TEST_F_TIMEOUT(f, cancel_races, 300)
{
	const int rounds = 2000;
	unsigned char *buf = abuf(ALIGN);
	long before = pins_settled(), cancelled = 0, done = 0;

	ASSERT_NE(NULL, buf);
	for (int r = 0; r < rounds; r++) {
		long id = submit(self->q, false, self->fd, buf, ALIGN, (r % 512) * ALIGN);
		struct ukevent e = uev(KEVENT_AIO, (uint64_t)id, 0, 0), ev[2];
		int ret;

		ASSERT_LE(1, id);
		/* Cancelled (its event says so) or left to finish (its event has the data). */
		ret = ctl1(self->q, KEVENT_CTL_REMOVE, &e);
		ASSERT_EQ(0, ret);
		ASSERT_EQ(1, collect(self->q, ev, 1, EVENT_MS)) TH_LOG("round %d: no event", r);
		ASSERT_EQ(id, (long)ev[0].id.raw_u64);
		if (ev[0].ret_data[1]) {
			ASSERT_EQ(-ECANCELED, (int)ev[0].ret_data[1]);
			cancelled++;
		} else {
			ASSERT_EQ(ALIGN, ev[0].ret_data[0]);
			ASSERT_EQ(ALIGN, fpat_mismatch(buf, (r % 512) * ALIGN, ALIGN));
			done++;
		}
		ASSERT_EQ(0, harvest(self->q, 0, 2, ev, 0)) TH_LOG("round %d: a second event", r);
	}
	TH_LOG("%ld cancelled, %ld completed", cancelled, done);
	EXPECT_EQ(before, pins_back_to(before));
	munmap(buf, ALIGN);
}

/* kevent_ctl() of KEVENT_CTL_PLUG or KEVENT_CTL_UNPLUG (they take no entries). */
static int plug_ctl(int q, unsigned int cmd)
{
	return kevent_ctl(q, cmd, 0, NULL);
}

/*
 * A plugged queue holds file AIO: the requests get ids but neither touch the
 * buffer nor post an event until UNPLUG, which starts all of them (and says
 * so) at once.
 */
TEST_F(f, plugged_requests_start_at_unplug)
{
	const int n = 32;
	unsigned char *buf = abuf((size_t)n * ALIGN);
	struct pollfd pfd = { .fd = self->q, .events = POLLIN };
	long ids[32], res[32];
	uint64_t seed = 11, off[32];
	size_t untouched = 0;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, plug_ctl(self->q, KEVENT_CTL_PLUG));
	ASSERT_EQ(0, plug_ctl(self->q, KEVENT_CTL_PLUG)) TH_LOG("plugging twice");
	for (int i = 0; i < n; i++) {
		off[i] = (rnd(&seed) % (FILE_SIZE / ALIGN)) * ALIGN;
		ids[i] = submit(self->q, false, self->fd, buf + (size_t)i * ALIGN, ALIGN, off[i]);
		ASSERT_LE(1, ids[i]) TH_LOG("request %d: %s", i, strerror(errno));
	}
	usleep(200 * 1000);
	/* poll() is not a wait call: it leaves the plug in place. */
	EXPECT_EQ(0, poll(&pfd, 1, 0)) TH_LOG("an event came out of a plugged queue");
	while (untouched < (size_t)n * ALIGN && !buf[untouched])
		untouched++;
	EXPECT_EQ((size_t)n * ALIGN, untouched) TH_LOG("read before the unplug");
	EXPECT_EQ(n, plug_ctl(self->q, KEVENT_CTL_UNPLUG));
	EXPECT_EQ(0, plug_ctl(self->q, KEVENT_CTL_UNPLUG)) TH_LOG("nothing is held any more");
	await_all(_metadata, self->q, ids, res, n);
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(ALIGN, res[i]);
		ASSERT_EQ(ALIGN, fpat_mismatch(buf + (size_t)i * ALIGN, off[i], ALIGN))
			TH_LOG("request %d", i);
	}
	munmap(buf, (size_t)n * ALIGN);
}

/* A wait call unplugs the queue first: a plugged thread never waits for itself. */
TEST_F(f, waiting_unplugs)
{
	unsigned char *buf = abuf(8 * ALIGN);
	long ids[8], res[8];

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, plug_ctl(self->q, KEVENT_CTL_PLUG));
	READ_COVERING(buf, ALIGN, 8, ids);
	/* kevent_get_events() waiting for the first event. */
	await_all(_metadata, self->q, ids, res, 8);
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(ALIGN, res[i]);
	EXPECT_EQ(8 * ALIGN, fpat_mismatch(buf, 0, 8 * ALIGN));
	EXPECT_EQ(0, plug_ctl(self->q, KEVENT_CTL_UNPLUG)) TH_LOG("the wait left requests held");
	/* Unplugged now: a new request starts at once. */
	ids[0] = submit(self->q, false, self->fd, buf, ALIGN, ALIGN);
	ASSERT_LE(1, ids[0]);
	await_all(_metadata, self->q, ids, res, 1);
	EXPECT_EQ(ALIGN, res[0]);
	munmap(buf, 8 * ALIGN);
}

/* Held writes reach the file only at the unplug; a cancelled held request never runs. */
TEST_F(f, held_writes_and_cancelled_held_request)
{
	unsigned char *buf = abuf(4 * ALIGN), *check = abuf(ALIGN);
	struct ukevent e, ev;
	long before = pins_settled(), ids[4], res[4];

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, check);
	memset(buf, 0x5a, 4 * ALIGN);
	ASSERT_EQ(0, plug_ctl(self->q, KEVENT_CTL_PLUG));
	for (int i = 0; i < 4; i++) {
		ids[i] = submit(self->q, true, self->fd, buf + i * ALIGN, ALIGN, i * ALIGN);
		ASSERT_LE(1, ids[i]);
	}
	ASSERT_EQ(ALIGN, pread(self->fd, check, ALIGN, 0));
	EXPECT_EQ(ALIGN, fpat_mismatch(check, 0, ALIGN)) TH_LOG("written before the unplug");
	/* Request 2 is cancelled while held: its event comes at once, with -ECANCELED. */
	e = uev(KEVENT_AIO, (uint64_t)ids[2], 0, 0);
	ASSERT_EQ(0, ctl1(self->q, KEVENT_CTL_REMOVE, &e));
	EXPECT_EQ(1, poll(&(struct pollfd){ .fd = self->q, .events = POLLIN }, 1, 0))
		TH_LOG("no event for the cancelled request");
	EXPECT_EQ(3, plug_ctl(self->q, KEVENT_CTL_UNPLUG));
	await_all(_metadata, self->q, ids, res, 4);
	for (int i = 0; i < 4; i++) {
		EXPECT_EQ(i == 2 ? -ECANCELED : ALIGN, res[i]) TH_LOG("request %d", i);
		ASSERT_EQ(ALIGN, pread(self->fd, check, ALIGN, i * ALIGN));
		if (i == 2) {
			EXPECT_EQ(ALIGN, fpat_mismatch(check, i * ALIGN, ALIGN))
				TH_LOG("the cancelled write ran");
		} else {
			EXPECT_EQ(0, memcmp(check, buf, ALIGN)) TH_LOG("write %d missing", i);
		}
	}
	EXPECT_EQ(0, harvest(self->q, 0, 1, &ev, 0));
	EXPECT_EQ(before, pins_back_to(before));
	munmap(buf, 4 * ALIGN);
	munmap(check, ALIGN);
}

/* Closing a plugged queue drops its held requests: no pin stays, no write happens. */
TEST_F(f, queue_closed_while_plugged)
{
	unsigned char *buf = abuf(64 * ALIGN), *check = abuf(ALIGN);
	long before = pins_settled();

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, check);
	memset(buf, 0x5a, 64 * ALIGN);
	ASSERT_EQ(0, plug_ctl(self->q, KEVENT_CTL_PLUG));
	for (int i = 0; i < 64; i++)
		ASSERT_LE(1, submit(self->q, i % 2, self->fd, buf + i * ALIGN, ALIGN, i * ALIGN));
	close(self->q);
	self->q = -1;
	EXPECT_EQ(before, pins_back_to(before));
	for (int i = 1; i < 64; i += 2) {
		ASSERT_EQ(ALIGN, pread(self->fd, check, ALIGN, i * ALIGN));
		ASSERT_EQ(ALIGN, fpat_mismatch(check, i * ALIGN, ALIGN)) TH_LOG("write %d ran", i);
	}
	munmap(buf, 64 * ALIGN);
	munmap(check, ALIGN);
}

/* Reads completed and read merges of the scratch disk (/sys/block/vda/stat); false if absent. */
static bool disk_reads(long *ios, long *merges)
{
	FILE *f = fopen("/sys/block/vda/stat", "r");
	bool ok = f && fscanf(f, "%ld %ld", ios, merges) == 2;

	if (f)
		fclose(f);
	return ok;
}

/*
 * What the plug is for: the held requests reach the device as one batch. 32
 * adjacent O_DIRECT reads started by one UNPLUG are merged by the block
 * layer's plug into a few device requests (started one by one, each would
 * be its own request).
 */
TEST_F(f, unplug_reaches_the_disk_as_one_batch)
{
	const int n = 32;
	unsigned char *buf = abuf((size_t)n * ALIGN);
	long ids[32], res[32], ios0, merges0, ios1, merges1;

	if (!variant->ext4 || !variant->direct)
		SKIP(return, "only O_DIRECT on the virtio disk reaches a device queue");
	if (!disk_reads(&ios0, &merges0))
		SKIP(return, "no /sys/block/vda/stat");
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, plug_ctl(self->q, KEVENT_CTL_PLUG));
	READ_COVERING(buf, ALIGN, n, ids);
	ASSERT_TRUE(disk_reads(&ios0, &merges0));
	ASSERT_EQ(n, plug_ctl(self->q, KEVENT_CTL_UNPLUG));
	await_all(_metadata, self->q, ids, res, n);
	ASSERT_TRUE(disk_reads(&ios1, &merges1));
	for (int i = 0; i < n; i++)
		ASSERT_EQ(ALIGN, res[i]);
	EXPECT_EQ((size_t)n * ALIGN, fpat_mismatch(buf, 0, (size_t)n * ALIGN));
	TH_LOG("%ld device reads, %ld merges for %d requests", ios1 - ios0, merges1 - merges0, n);
	EXPECT_GE(8, ios1 - ios0) TH_LOG("the batch reached the disk request by request");
	EXPECT_LE(n - 8, merges1 - merges0);
	munmap(buf, (size_t)n * ALIGN);
}

/* PLUG and UNPLUG take no entries. */
TEST_F(f, plug_arguments)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 1, 0, 0);

	errno = 0;
	EXPECT_EQ(-1, kevent_ctl(self->q, KEVENT_CTL_PLUG, 1, &e));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, kevent_ctl(self->q, KEVENT_CTL_UNPLUG, 1, &e));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, kevent_ctl(self->q, KEVENT_CTL_UNPLUG + 1, 0, NULL));
	EXPECT_EQ(EINVAL, errno);
	/* Unplugging a queue that is not plugged starts nothing. */
	EXPECT_EQ(0, plug_ctl(self->q, KEVENT_CTL_UNPLUG));
}

/* Closing the queue with 256 requests in flight: they finish or stop, and every pin goes. */
TEST_F(f, queue_closed_with_requests_in_flight)
{
	const size_t chunk = 16 << 10;
	unsigned char *buf = abuf(256 * chunk);
	long before = pins_settled();

	ASSERT_NE(NULL, buf);
	for (int i = 0; i < 256; i++)
		ASSERT_LE(1, submit(self->q, i % 2, self->fd, buf + i * chunk, chunk, i * chunk));
	close(self->q);
	self->q = -1;
	EXPECT_EQ(before, pins_back_to(before));
	munmap(buf, 256 * chunk);
}

/* A process exiting with requests in flight: its pins go, the file stays intact. */
TEST_F(f, exit_with_requests_in_flight)
{
	long before = pins_settled();
	unsigned char *check = abuf(ALIGN);
	int status;
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		unsigned char *buf = abuf(FILE_SIZE);

		if (!buf)
			_exit(2);
		for (int i = 0; i < 256; i++)
			if (submit(self->q, false, self->fd, buf + i * 16384, 16384, i * 16384) < 1)
				_exit(3);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* The parent's queue still holds the child's requests: close it too. */
	close(self->q);
	self->q = -1;
	EXPECT_EQ(before, pins_back_to(before));
	ASSERT_EQ(ALIGN, pread(self->fd, check, ALIGN, 0));
	EXPECT_EQ(ALIGN, fpat_mismatch(check, 0, ALIGN));
	munmap(check, ALIGN);
}

TEST_HARNESS_MAIN
