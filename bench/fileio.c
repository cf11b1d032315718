// SPDX-License-Identifier: GPL-2.0
/*
 * File reads: 4 KiB random reads at a fixed queue depth, from a 64 MiB file
 * on the guest's ext4 scratch disk (virtio-blk; KEVENT_DISK).
 *
 * Cases:
 *
 *   direct-qd1, direct-qd32, direct-qd128
 *                       O_DIRECT: every read goes to the device and
 *                       completes from its interrupt
 *   cached-qd1          buffered reads of a file in the page cache
 *
 * Mechanisms (each keeps the queue depth full: a new read is submitted for
 * every completion, at a random 4 KiB-aligned offset; buffers are not
 * registered anywhere, no mechanism has fixed buffers or files):
 *
 *   kevent-aio_read-ring  aio_read() per request (kevent_queue_aio_read()),
 *                         the replacements of a batch of two or more
 *                         completions submitted between kevent_queue_plug()
 *                         and kevent_queue_unplug(), so that the disk is
 *                         notified once per batch (as io_uring and libaio do);
 *                         completions read from the ring
 *                         (kevent_queue_peek_batch(), kevent_queue_advance()
 *                         per batch), kevent_queue_wait() only when it is
 *                         empty
 *   io_uring-read         IORING_OP_READ SQEs, one io_uring_submit_and_wait()
 *                         per batch of completions, which submits their
 *                         replacements and waits for the next completion
 *   libaio                io_submit() of the replacements of each batch,
 *                         io_getevents(min 1, max depth) (Debian libaio)
 *   pread-threads         as many threads as the depth, each doing pread()
 *
 * Every byte read is checked against the file's pattern. Metrics:
 * reads_per_s, and cpu_ns_per_read: CPU time busy on all CPUs (/proc/stat:
 * kernel workers and interrupts included) per read.
 *
 *	fileio [rounds] [reads per depth unit]
 *
 * FILEIO_ONLY=mechanism and FILEIO_CASE=case run one of each (for profiling).
 */
#include <fcntl.h>
#include <libaio.h>
#include <liburing.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "bench.h"

#define FILE_BYTES (64u << 20)
#define BLOCK 4096
#define MAXQD 128

/* Byte @i of the file. */
static inline unsigned char fpat(uint64_t i)
{
	return (unsigned char)(i * 151 + (i >> 12) + 3);
}

/* Reads left to submit and to check, shared by the mechanisms' loops. */
struct job {
	int fd;
	int qd;
	long reads;
	uint64_t seed;
	unsigned char *bufs;	/* qd blocks, aligned */
	uint64_t off[MAXQD];
};

static uint64_t next_off(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (*s % (FILE_BYTES / BLOCK)) * BLOCK;
}

static void verify(const struct job *j, int slot, long res)
{
	const unsigned char *b = j->bufs + (size_t)slot * BLOCK;

	check(res == BLOCK, "a read returned a short count or an error");
	/* Spot checks: the first, a middle and the last byte of the block. */
	check(b[0] == fpat(j->off[slot]) && b[BLOCK / 2] == fpat(j->off[slot] + BLOCK / 2) &&
	      b[BLOCK - 1] == fpat(j->off[slot] + BLOCK - 1), "read data");
}

/*
 * The AIO calls take no user cookie: the slot of a request is found by its id
 * in a table indexed by id modulo IDS (ids only grow and at most MAXQD are in
 * flight; a request outliving IDS newer ones would fail the check).
 */
#define IDS 65536

struct id_slots {
	int64_t id[IDS];
	int slot[IDS];
};

static void id_put(struct id_slots *t, int64_t id, int slot)
{
	check(t->id[id % IDS] == 0, "request id table: a collision");
	t->id[id % IDS] = id;
	t->slot[id % IDS] = slot;
}

static int id_take(struct id_slots *t, int64_t id)
{
	check(t->id[id % IDS] == id, "an event for an unknown request");
	t->id[id % IDS] = 0;
	return t->slot[id % IDS];
}

static void kevent_submit(struct kevent_queue *q, struct job *j, struct id_slots *t, int slot)
{
	int64_t id;

	j->off[slot] = next_off(&j->seed);
	id = kevent_queue_aio_read(q, j->fd, j->bufs + (size_t)slot * BLOCK, BLOCK, j->off[slot]);
	check_ret(id, "aio_read");
	id_put(t, id, slot);
}

static void run_kevent(struct job *j)
{
	static struct id_slots t;
	struct kevent_queue q;
	struct ukevent *ev[MAXQD];
	long submitted = 0, done = 0;

	memset(&t, 0, sizeof(t));
	check_ret(kevent_queue_init(&q, 2 * MAXQD, 0), "kevent ring");
	if (j->qd > 1)
		check_ret(kevent_queue_plug(&q), "kevent_queue_plug");
	for (int s = 0; s < j->qd; s++, submitted++)
		kevent_submit(&q, j, &t, s);
	if (j->qd > 1)
		check_ret(kevent_queue_unplug(&q), "kevent_queue_unplug");
	while (done < j->reads) {
		unsigned int k = ring_next_batch(&q, ev, MAXQD);
		bool plug = k > 1 && submitted < j->reads;

		if (plug)
			check_ret(kevent_queue_plug(&q), "kevent_queue_plug");
		for (unsigned int i = 0; i < k; i++) {
			int slot = id_take(&t, (int64_t)ev[i]->id.raw_u64);
			long res = ev[i]->ret_data[1] ? (long)(int)ev[i]->ret_data[1]
						      : (long)ev[i]->ret_data[0];

			verify(j, slot, res);
			done++;
			if (submitted < j->reads) {
				kevent_submit(&q, j, &t, slot);
				submitted++;
			}
		}
		if (plug)
			check_ret(kevent_queue_unplug(&q), "kevent_queue_unplug");
		kevent_queue_advance(&q, k);
	}
	kevent_queue_exit(&q);
}

static void run_uring(struct job *j)
{
	struct io_uring ring;
	long submitted = 0, done = 0;

	check(io_uring_queue_init(2 * MAXQD, &ring, 0) == 0, "io_uring_queue_init");
	for (int s = 0; s < j->qd; s++, submitted++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		j->off[s] = next_off(&j->seed);
		io_uring_prep_read(sqe, j->fd, j->bufs + (size_t)s * BLOCK, BLOCK, j->off[s]);
		io_uring_sqe_set_data64(sqe, s);
	}
	while (done < j->reads) {
		struct io_uring_cqe *cqe;
		unsigned int head, k = 0;

		check(io_uring_submit_and_wait(&ring, 1) >= 0, "io_uring_submit_and_wait");
		io_uring_for_each_cqe(&ring, head, cqe) {
			int slot = (int)io_uring_cqe_get_data64(cqe);

			verify(j, slot, cqe->res);
			done++;
			k++;
			if (submitted < j->reads) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

				j->off[slot] = next_off(&j->seed);
				io_uring_prep_read(sqe, j->fd, j->bufs + (size_t)slot * BLOCK, BLOCK,
						   j->off[slot]);
				io_uring_sqe_set_data64(sqe, slot);
				submitted++;
			}
		}
		io_uring_cq_advance(&ring, k);
	}
	io_uring_queue_exit(&ring);
}

static void run_libaio(struct job *j)
{
	io_context_t ctx = 0;
	struct iocb cbs[MAXQD], *ptrs[MAXQD];
	struct io_event evs[MAXQD];
	long submitted = 0, done = 0;

	check(io_setup(MAXQD, &ctx) == 0, "io_setup");
	for (int s = 0; s < j->qd; s++, submitted++) {
		j->off[s] = next_off(&j->seed);
		io_prep_pread(&cbs[s], j->fd, j->bufs + (size_t)s * BLOCK, BLOCK, j->off[s]);
		cbs[s].data = (void *)(long)s;
		ptrs[s] = &cbs[s];
	}
	check(io_submit(ctx, j->qd, ptrs) == j->qd, "io_submit");
	while (done < j->reads) {
		int n = io_getevents(ctx, 1, j->qd, evs, NULL), again = 0;

		/* Interrupted (io_uring's teardown task work may do that): wait again. */
		if (n == -EINTR)
			continue;
		check_ret(n, "io_getevents");
		check(n > 0, "io_getevents returned no event");
		for (int i = 0; i < n; i++) {
			int slot = (int)(long)evs[i].data;

			verify(j, slot, (long)evs[i].res);
			done++;
			if (submitted < j->reads) {
				j->off[slot] = next_off(&j->seed);
				io_prep_pread(&cbs[slot], j->fd, j->bufs + (size_t)slot * BLOCK, BLOCK,
					      j->off[slot]);
				cbs[slot].data = (void *)(long)slot;
				ptrs[again++] = &cbs[slot];
				submitted++;
			}
		}
		if (again)
			check(io_submit(ctx, again, ptrs) == again, "io_submit");
	}
	io_destroy(ctx);
}

struct reader {
	struct job *j;
	int slot;
	long reads;
	pthread_t t;
};

static void *pread_loop(void *arg)
{
	struct reader *r = arg;
	uint64_t seed = r->j->seed + r->slot * 7919;

	for (long i = 0; i < r->reads; i++) {
		unsigned char *b = r->j->bufs + (size_t)r->slot * BLOCK;
		uint64_t off = next_off(&seed);
		ssize_t n = pread(r->j->fd, b, BLOCK, off);

		check(n == BLOCK && b[0] == fpat(off) && b[BLOCK - 1] == fpat(off + BLOCK - 1),
		      "pread");
	}
	return NULL;
}

static void run_pread(struct job *j)
{
	struct reader r[MAXQD];

	for (int s = 0; s < j->qd; s++) {
		r[s] = (struct reader){ .j = j, .slot = s, .reads = j->reads / j->qd };
		check(pthread_create(&r[s].t, NULL, pread_loop, &r[s]) == 0, "pthread_create");
	}
	for (int s = 0; s < j->qd; s++)
		pthread_join(r[s].t, NULL);
	j->reads = j->reads / j->qd * j->qd;
}

/* Reads the whole file once, so that a buffered case finds it in the page cache. */
static void warm(int fd, unsigned char *chunk)
{
	for (uint64_t at = 0; at < FILE_BYTES; at += 1 << 20)
		check(pread(fd, chunk, 1 << 20, at) == 1 << 20, "read the data file");
}

static int open_file(const char *path, bool direct)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));

	if (fd < 0)
		die("open the data file");
	return fd;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "kevent-aio_read-ring", "io_uring-read", "libaio",
					     "pread-threads" };
	static void (*const run[])(struct job *) = { run_kevent, run_uring, run_libaio, run_pread };
	static const struct {
		const char *name;
		int qd;
		bool direct;
	} cases[] = {
		{ "direct-qd1", 1, true },
		{ "direct-qd32", 32, true },
		{ "direct-qd128", 128, true },
		{ "cached-qd1", 1, false },
	};
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	long unit = argc > 2 ? atol(argv[2]) : 2000;
	const char *dir = getenv("KEVENT_DISK");
	const char *only = getenv("FILEIO_ONLY"), *only_case = getenv("FILEIO_CASE");
	char path[256];
	unsigned char *chunk, *bufs;
	int fd;

	if (!dir) {
		fprintf(stderr, "fileio: no scratch disk (KEVENT_DISK unset): nothing measured\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/fileio.dat", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	chunk = malloc(1 << 20);
	bufs = mmap(NULL, MAXQD * BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(fd >= 0 && chunk && bufs != MAP_FAILED, "set-up");
	for (uint64_t at = 0; at < FILE_BYTES; at += 1 << 20) {
		for (size_t i = 0; i < 1 << 20; i++)
			chunk[i] = fpat(at + i);
		check(pwrite(fd, chunk, 1 << 20, at) == 1 << 20, "write the data file");
	}
	check(fsync(fd) == 0, "fsync");
	close(fd);
	for (int r = 0; r < rounds; r++) {
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
			if (only_case && strcmp(only_case, cases[c].name))
				continue;
			/* Alternate the order of the mechanisms from round to round. */
			for (int m0 = 0; m0 < 4; m0++) {
				int m = (m0 + r) % 4;

				if (only && strcmp(only, names[m]))
					continue;
				struct job j = {
					.fd = open_file(path, cases[c].direct),
					.qd = cases[c].qd,
					.reads = unit * (cases[c].qd > 8 ? 8 : cases[c].qd),
					.seed = 0x9e3779b97f4a7c15ull + r,
					.bufs = bufs,
				};
				uint64_t t0, c0, t, cpu;

				if (!cases[c].direct)
					warm(j.fd, chunk);
				t0 = now_ns();
				c0 = cpu_busy_ns();
				run[m](&j);
				t = now_ns() - t0;
				cpu = cpu_busy_ns() - c0;
				close(j.fd);
				emit("fileio", cases[c].name, names[m], "reads_per_s",
				     j.reads * 1e9 / (double)t);
				emit("fileio", cases[c].name, names[m], "cpu_ns_per_read",
				     (double)cpu / (double)j.reads);
			}
		}
	}
	unlink(path);
	return 0;
}
