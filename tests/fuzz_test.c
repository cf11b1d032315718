// SPDX-License-Identifier: GPL-2.0
/*
 * A seeded random-argument driver for every kevent system call: valid, edge
 * and invalid values (bad and reused descriptors, huge counts, unaligned,
 * unmapped, read-only and PROT_NONE pointers, kernel addresses, reserved
 * bits, odd ring sizes, garbage in the ring's consumer index, commits from
 * anywhere, munmap of a ring while another thread uses it).
 *
 * Every call is judged: a failing call must fail with an errno that the call
 * can return (allowed[] below, derived from the module and the hook layer;
 * spec section 5), and every entry that kevent_ctl() reports in its array
 * must carry such an errno. Anything else is printed with the seed, the call,
 * its arguments and the errno, and fails the test. At the end an errno table
 * (call x errno -> count) is printed. The VM runner also checks that the
 * kernel log stays clean.
 *
 *	KEVENT_FUZZ_CALLS=N	calls per thread (default 100000; 3 threads)
 *	KEVENT_FUZZ_SEED=S	seed (default: time); printed either way
 *
 * To narrow a failure down: KEVENT_FUZZ_OPS=MASK (bit i enables call i of
 * names[]), KEVENT_FUZZ_THREADS=N, KEVENT_FUZZ_NOTIMERS=1 (no timer
 * registrations), KEVENT_FUZZ_NOALARM=1 (no SIGALRM every 20 ms, and no
 * blocking waits). With one thread a seed replays the same sequence of calls.
 *
 * aio_recv also gets connected TCP sockets (a feeder thread keeps sending random
 * bytes to them), and buffers in a region of its own (the kernel writes into
 * them later, from the receive path); at the end every page pinned by a
 * request must have been unpinned (/proc/vmstat nr_foll_pin_*).
 *
 * aio_send gets both ends of those TCP connections and connected UDP sockets
 * (the feeder drains whatever reaches the other end, so sends make progress),
 * plausible lengths (mostly 1 to 8192, copied or pinned; sometimes up to
 * 256 KiB, pinned) and buffers that are valid, offset, read-only, PROT_NONE,
 * NULL or unmapped. The send completions that kevent_get_events() hands out
 * are judged too (ret_data[1]: 0 or an errno a send can end with; no
 * KEVENT_RET_COPIED without bytes).
 *
 * All shared queues are non-blocking, so the SIGALRM itimer cannot interrupt
 * their waits. To reach the EINTR paths, each thread also owns two blocking
 * queues (one with a ring) that nothing ever makes ready, and now and then
 * waits 25 ms on one of them: the itimer's signal, which the main thread
 * blocks so that it lands on a worker, interrupts the wait (EINTR) or the wait
 * times out (0).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/time.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

#define NQUEUES 6
#define NSOCKS 4		/* connected TCP sockets for aio_recv and aio_send */
#define NUDP 2			/* connected UDP sockets for aio_send */
#define SEND_MAX (256 << 10)	/* the longest plausible aio_send */
#define NTHREADS 3
#define NOPS 10
#define MAX_ERRNO 134		/* larger errnos are counted here */
#define MAX_REPORTS 20		/* violations printed in full */

/* Rows of the errno table: the ten operations, then what they contain. */
enum {
	R_INIT, R_CTL, R_GET, R_WAIT, R_COMMIT, R_SEND, R_RECV, R_SENDFILE, R_READ, R_POKE,
	R_POKE_WAIT, R_ENT_ADD, R_ENT_REMOVE, R_ENT_MODIFY, R_ENT_READY, R_SEND_DONE, NROWS
};

static const char *const names[NROWS] = {
	"kevent_init", "kevent_ctl", "kevent_get_events", "kevent_wait", "kevent_commit",
	"aio_send", "aio_recv", "aio_sendfile", "aio_read/write", "ring poke (mmap)",
	"ring poke wait", "ctl entry ADD", "ctl entry REMOVE", "ctl entry MODIFY",
	"ctl entry READY", "aio_send event",
};

/*
 * What each call may fail with. Derived from the module (rust/) and the hook
 * layer (kernel/kevent.c of the patched tree); ENOSYS never, the module is
 * loaded.
 */
static const int init_errs[] = {
	EINVAL,		/* syscalls.rs init(): flags beyond O_CLOEXEC|O_NONBLOCK, bad ring size */
	ENOMEM,		/* queue.rs Queue::new(), shared_pages.rs SharedPages::new(),
			 * anon_inode_getfile() (dentry, file) */
	EMFILE,		/* compat/file.rs install_queue(): get_unused_fd_flags() */
	ENFILE,		/* alloc_empty_file() at fs.file-max, for non-root only */
	0
};
static const int ctl_errs[] = {
	EBADF,		/* compat/file.rs queue_from_fd(): fd not open; ctl.rs: queue dead */
	EINVAL,		/* queue_from_fd(): not a queue; ctl.rs: cmd > READY, num > MAX_CTL_BATCH */
	EFAULT,		/* ctl.rs: arg NULL, reading the entries, writing reported ones back */
	ENOMEM,		/* ctl.rs: KVec::with_capacity(num) */
	0
};
static const int get_errs[] = {
	EBADF,		/* syscalls.rs get_events(): queue_from_fd() */
	EINVAL,		/* not a queue, max_nr 0 or > INT_MAX, min_nr > max_nr; harvest.rs
			 * Wait::from_arg(): flags, timespec; hook: sigsetsize != 8 */
	EFAULT,		/* hook: copying the wait argument or the sigmask in; buf NULL;
			 * harvest.rs: copy-out failed before anything was copied */
	EINTR,		/* harvest.rs get_events(): a blocking wait interrupted */
	0
};
static const int wait_errs[] = {
	EBADF,		/* syscalls.rs wait(): queue_from_fd() */
	EINVAL,		/* not a queue, no ring, Wait::from_arg(); hook: sigsetsize */
	EFAULT,		/* hook: copying the wait argument or the sigmask in */
	EINTR,		/* harvest.rs wait(): interrupted with nothing in the ring */
	0
};
static const int commit_errs[] = {
	EBADF,		/* syscalls.rs commit(): queue_from_fd() */
	EINVAL,		/* not a queue, no ring; ready.rs commit(): new_uidx >= size,
			 * beyond what the kernel produced */
	EOVERFLOW,	/* ready.rs commit(): behind the consumer index (stale) */
	0
};
static const int aio_errs[] = {
	EBADF,		/* syscalls.rs: kfd not open; faio.rs submit(): fd not open, or not
			 * open for reading (writing) */
	EINVAL,		/* kfd not a queue; faio.rs submit(): length 0 or too long, offset
			 * NULL, negative or overflowing, not a regular file */
	ESPIPE,		/* faio.rs submit(): a stream (tty, pipe, socket, queue) */
	EFAULT,		/* faio.rs submit(): reading *offset; pinned.rs: a page not mapped
			 * or not writable */
	ENOBUFS,	/* pinned.rs: RLIMIT_MEMLOCK (mm_account_pinned_pages) */
	ENOMEM,		/* pinned.rs, registration */
	ENOSPC,		/* limits.rs: max_user_kevents */
	0
};
static const int aio_recv_errs[] = {
	EBADF,		/* syscalls.rs: kfd not open; naio.rs recv(): sock not open */
	EINVAL,		/* kfd not a queue; naio.rs recv(): flags, length */
	ENOTSOCK,	/* naio.rs recv(): not a socket */
	EOPNOTSUPP,	/* naio.rs recv(): not a TCP socket */
	ENOTCONN,	/* naio.rs recv(): listening or never connected */
	EFAULT,		/* pinned.rs: buffer not mapped or not writable */
	ENOBUFS,	/* pinned.rs: RLIMIT_MEMLOCK (mm_account_pinned_pages) */
	ENOMEM,		/* pinned.rs, registration, storage */
	ENOSPC,		/* limits.rs: max_user_kevents */
	0
};
static const int aio_send_errs[] = {
	EBADF,		/* syscalls.rs: kfd not open; send.rs send(): sock not open, queue dead */
	EINVAL,		/* kfd not a queue; send.rs send(): flags, length 0 or > INT_MAX */
	ENOTSOCK,	/* send.rs send(): not a socket */
	EOPNOTSUPP,	/* send.rs send(): neither TCP nor UDP */
	ENOTCONN,	/* sock.rs check_can_send(): TCP listening or never connected */
	EDESTADDRREQ,	/* sock.rs check_can_send(): UDP without a default destination */
	EFAULT,		/* send.rs: copying a small buffer; pinned.rs: a page not mapped */
	ENOBUFS,	/* pinned.rs: RLIMIT_MEMLOCK (mm_account_pinned_pages) */
	ENOMEM,		/* the copy, pinned.rs, registration, storage */
	ENOSPC,		/* limits.rs: max_user_kevents */
	0
};
static const int aio_sendfile_errs[] = {
	EBADF,		/* syscalls.rs: kfd not open; send.rs sendfile(): sock or in_fd not open;
			 * splice.rs check_can_splice_read(): in_fd not open for reading */
	EINVAL,		/* kfd not a queue; send.rs sendfile(): count 0 or > INT_MAX, offset NULL,
			 * negative or overflowing; splice.rs: in_fd not seekable or no splice_read */
	EFAULT,		/* send.rs sendfile(): reading *offset */
	ENOTSOCK,	/* send.rs sendfile(): sock not a socket */
	EOPNOTSUPP,	/* send.rs sendfile(): not a TCP socket */
	ENOTCONN,	/* sock.rs check_can_send(): listening or never connected */
	ENOMEM,		/* registration, storage */
	ENOSPC,		/* limits.rs: max_user_kevents */
	0
};
/* What a send completion may carry in ret_data[1] (negated), 0 for success. */
static const int send_done_errs[] = {
	ECANCELED,	/* send.rs cancel(): KEVENT_CTL_REMOVE before anything was sent */
	ECONNRESET,	/* tcp_sendmsg: the connection was reset (reported once) */
	EPIPE,		/* tcp_sendmsg: reset or shut down for writing */
	EMSGSIZE,	/* udp_sendmsg, ip_append_data: a datagram too long for IP */
	ECONNREFUSED,	/* udp_sendmsg: a pending ICMP error */
	ENOBUFS,	/* ip_append_data, ip_finish_output: no buffer */
	ENOMEM,		/* send.rs: the zero-copy notifier; the stack's allocations */
	0
};
static const int mmap_errs[] = {
	EBADF,		/* do_mmap: fd not open */
	EACCES,		/* do_mmap: MAP_SHARED + PROT_WRITE on a file not open for writing */
	ENODEV,		/* do_mmap: no ->mmap (fd 0); queue.rs mmap(): queue without a ring */
	EINVAL,		/* queue.rs mmap(): longer than the ring */
	ENOMEM,		/* address space, vm_insert_page() page tables */
	0
};
static const int ent_add_errs[] = {
	EINVAL,		/* ctl.rs source_of(), plain_source_of(), file_source.rs, signal_source.rs:
			 * flags, type, event mask, timer period, signal number, POSIX timer,
			 * self-watch, not pollable, not a FIFO; NAIO and AIO (made by the
			 * AIO calls only) */
	EBADF,		/* ctl.rs source_of(): the file type's fd is not open */
	EEXIST,		/* ctl.rs register(): (type, id) already registered */
	ENOSPC,		/* limits.rs charge(): max_user_kevents */
	ENOMEM,		/* registration.rs Registration::new(), rbtree node, storage, poll entries */
	ENOTSOCK,	/* file_source.rs source_of(): KEVENT_SOCKET on a non-socket */
	ELOOP,		/* KEVENT_POLL chains of queues deeper than KEVENT_MAX_NESTS */
	0
};
static const int ent_remove_errs[] = { ENOENT, 0 };		/* ctl.rs remove() */
static const int ent_modify_errs[] = { EINVAL, ENOENT, 0 };	/* ctl.rs modify() */
static const int ent_ready_errs[] = { ENOENT, 0 };		/* ctl.rs make_ready() */

static const int *const allowed[NROWS] = {
	init_errs, ctl_errs, get_errs, wait_errs, commit_errs, aio_send_errs, aio_recv_errs,
	aio_sendfile_errs, aio_errs, mmap_errs, wait_errs, ent_add_errs, ent_remove_errs,
	ent_modify_errs, ent_ready_errs, send_done_errs,
};

static const char *errname(int e)
{
	static const char *const n[MAX_ERRNO + 1] = {
		[0] = "ok", [EPERM] = "EPERM", [ENOENT] = "ENOENT", [ESRCH] = "ESRCH",
		[EINTR] = "EINTR", [EIO] = "EIO", [ENXIO] = "ENXIO", [E2BIG] = "E2BIG",
		[EBADF] = "EBADF", [EAGAIN] = "EAGAIN", [ENOMEM] = "ENOMEM",
		[EACCES] = "EACCES", [EFAULT] = "EFAULT", [EBUSY] = "EBUSY",
		[EEXIST] = "EEXIST", [ENODEV] = "ENODEV", [ENOTDIR] = "ENOTDIR",
		[EINVAL] = "EINVAL", [ENFILE] = "ENFILE", [EMFILE] = "EMFILE",
		[ENOTTY] = "ENOTTY", [ENOSPC] = "ENOSPC", [ESPIPE] = "ESPIPE",
		[EPIPE] = "EPIPE", [ERANGE] = "ERANGE", [EDEADLK] = "EDEADLK",
		[ENOSYS] = "ENOSYS", [ELOOP] = "ELOOP", [EOVERFLOW] = "EOVERFLOW",
		[ENOTSOCK] = "ENOTSOCK", [EOPNOTSUPP] = "EOPNOTSUPP",
		[ECONNRESET] = "ECONNRESET", [ETIMEDOUT] = "ETIMEDOUT",
		[ENOTCONN] = "ENOTCONN", [EDESTADDRREQ] = "EDESTADDRREQ",
		[ENOBUFS] = "ENOBUFS", [EMSGSIZE] = "EMSGSIZE", [ECANCELED] = "ECANCELED",
		[ECONNREFUSED] = "ECONNREFUSED",
	};

	if (e >= 0 && e <= MAX_ERRNO && n[e])
		return n[e];
	return e == MAX_ERRNO ? "other" : "E?";
}

static bool errno_allowed(int row, int err)
{
	for (const int *a = allowed[row]; *a; a++)
		if (*a == err)
			return true;
	return false;
}

static atomic_int queues[NQUEUES];
static char *unmapped;
/* A 64 KiB tmpfs file open for reading and writing. */
static int datafile = -1;
static atomic_long calls[NOPS], classes[8], violations;
static atomic_long counts[NROWS][MAX_ERRNO + 1];	/* [0]: succeeded */
static atomic_int stop;
static struct __test_metadata *md;
static uint64_t run_seed;
static bool alarms;

struct worker {
	uint64_t seed;		/* first state, for reports */
	uint64_t s;
	long n, i;
	int idx;
	int blockq, blockring;	/* private blocking queues */
};

static _Thread_local int last_op = -1;
static _Thread_local char *buf;		/* 4 pages: rw, rw, read-only, PROT_NONE */
static _Thread_local char *rbuf;	/* the same, for aio_recv and aio_read buffers only */
static _Thread_local char *sbuf;	/* SEND_MAX + a page of data, for aio_send */
static int socks[NSOCKS], peers[NSOCKS];	/* receiving ends, sending ends */
static int udp_rx[NUDP], udp_tx[NUDP];	/* udp_tx[i] is connected to udp_rx[i] */
/* Descriptors aio_send refuses: an unconnected UDP socket, a listening TCP one, AF_UNIX, a pipe. */
static int odd_socks[4];
static _Thread_local struct worker *me;

static const char *const class_names[] = {
	"valid", "NULL", "unaligned", "unmapped", "read-only", "PROT_NONE", "kernel address",
	"straddling r/o",
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int errslot(int err)
{
	return err > 0 && err < MAX_ERRNO ? err : MAX_ERRNO;
}

/* Prints one violation (the first MAX_REPORTS in full) and fails the test. */
static void report(int row, const unsigned long *a, int na, const char *what, int err)
{
	struct __test_metadata *_metadata = md;
	long nr = atomic_fetch_add(&violations, 1);
	char args[200] = "", set[200] = "";
	bool errno_in_set = false;
	int len = 0;

	if (nr >= MAX_REPORTS)
		return;
	for (int i = 0; i < na && len < (int)sizeof(args); i++)
		len += snprintf(args + len, sizeof(args) - len, "%s%#lx", i ? ", " : "", a[i]);
	len = 0;
	for (const int *e = allowed[row]; *e && len < (int)sizeof(set); e++)
		len += snprintf(set + len, sizeof(set) - len, "%s%s", e == allowed[row] ? "" : " ",
				errname(*e));
	TH_LOG("seed %#llx thread %d (state %#llx) call %ld: %s(%s)%s%s -> %s (errno %d); %s allows: %s",
	       (unsigned long long)run_seed, me->idx, (unsigned long long)me->seed, me->i,
	       names[row < R_POKE_WAIT ? row : row == R_POKE_WAIT ? R_WAIT :
		     row == R_SEND_DONE ? R_GET : R_CTL], args,
	       what ? " " : "", what ? what : "", errname(err), err, names[row], set);
	EXPECT_TRUE(errno_in_set);
}

/* Counts the result of a call and judges its errno. */
static void judge(int row, long r, int err, const unsigned long *a, int na)
{
	atomic_fetch_add(&counts[row][r >= 0 ? 0 : errslot(err)], 1);
	if (r < 0 && !errno_allowed(row, err))
		report(row, a, na, NULL, err);
}

/*
 * Judges the entries that a successful kevent_ctl() reported at the front of
 * its array: failed ones (BROKEN | DONE, ret_data[1] = -errno) must carry an
 * errno that the command can fail an entry with; only ADD reports entries
 * that are complete without an error (ready at ADD).
 */
static void judge_entries(unsigned int cmd, unsigned int num, const char *p, long n,
			  const unsigned long *a)
{
	static const int rows[] = { R_ENT_ADD, R_ENT_REMOVE, R_ENT_MODIFY, R_ENT_READY };
	int row = rows[cmd & 3];

	/* The entries not reported were done quietly. */
	atomic_fetch_add(&counts[row][0], num - n);

	for (long i = 0; i < n; i++) {
		struct ukevent e;
		char what[128];
		int err;

		memcpy(&e, p + i * sizeof(e), sizeof(e));
		err = -(int)e.ret_data[1];
		snprintf(what, sizeof(what), "entry %ld (type %u id %#llx ret_flags %#x)", i,
			 e.type, (unsigned long long)e.id.raw_u64, e.ret_flags);
		if (!(e.ret_flags & KEVENT_RET_DONE)) {
			strncat(what, " reported without DONE", sizeof(what) - strlen(what) - 1);
			report(row, a, 4, what, 0);
			continue;
		}
		if (!(e.ret_flags & KEVENT_RET_BROKEN)) {
			/* Ready at ADD (REQ_READY, or a ready file): ADD only. */
			atomic_fetch_add(&counts[row][0], 1);
			if (cmd != KEVENT_CTL_ADD) {
				strncat(what, " reported DONE without error",
					sizeof(what) - strlen(what) - 1);
				report(row, a, 4, what, 0);
			}
			continue;
		}
		/*
		 * A file ready at ADD may report itself broken: a pipe with
		 * ret_data[1] = 0, a socket with -sk_err (any errno).
		 */
		if (cmd == KEVENT_CTL_ADD &&
		    ((e.type == KEVENT_PIPE && !err) ||
		     (e.type == KEVENT_SOCKET && !errno_allowed(row, err)))) {
			atomic_fetch_add(&counts[row][0], 1);
			continue;
		}
		atomic_fetch_add(&counts[row][errslot(err)], 1);
		if (!errno_allowed(row, err))
			report(row, a, 4, what, err);
	}
}

static int pick_fd(uint64_t *s)
{
	switch (rnd(s) % 9) {
	case 0: return -1;
	case 1: return 1000 + rnd(s) % 100;	/* not open */
	case 2: return 0;			/* not a queue */
	case 3: return datafile;		/* a regular file, for file AIO */
	default: return atomic_load(&queues[rnd(s) % NQUEUES]);
	}
}

static void *pick_ptr(uint64_t *s, size_t *room)
{
	int c = rnd(s) % 8;

	atomic_fetch_add(&classes[c], 1);
	*room = 0;
	switch (c) {
	case 0: *room = 8192; return buf;
	case 1: return NULL;
	case 2: *room = 8191; return buf + 1;
	case 3: return unmapped;
	case 4: return buf + 8192;
	case 5: return buf + 12288;
	case 6: return (void *)0xffff888000000000ul;
	default: return buf + 8192 - 48 * (rnd(s) % 4);	/* straddles into read-only */
	}
}

static unsigned int pick_count(uint64_t *s)
{
	static const unsigned int edge[] = { 0, 1, 2, 63, 64, 170, KEVENT_MAX_CTL_BATCH,
					     KEVENT_MAX_CTL_BATCH + 1, 0x7fffffff, 0xffffffff };

	return rnd(s) % 2 ? rnd(s) % 8 : edge[rnd(s) % 10];
}

/* Fills the writable part of the buffer with random but plausible requests. */
static void scribble(uint64_t *s)
{
	struct ukevent *e = (struct ukevent *)buf;

	for (int i = 0; i < 8192 / 48; i++) {
		e[i].type = rnd(s) % 12;
		e[i].event = rnd(s) % 3 ? 1 : rnd(s);
		e[i].req_flags = rnd(s) % 4 ? rnd(s) & 0x7f : rnd(s);
		e[i].id.raw_u64 = rnd(s) % 4 ? rnd(s) % 16 : rnd(s);
		if (e[i].type == KEVENT_TIMER && getenv("KEVENT_FUZZ_NOTIMERS"))
			e[i].type = KEVENT_UNOTIFY;
		if (e[i].type == KEVENT_TIMER) {
			/* Periods of 0.1 ms or more: shorter ones only burn CPU. */
			e[i].id.raw[0] = rnd(s) % 2;
			e[i].id.raw[1] = 100000 + rnd(s) % 1000000000;
			if (rnd(s) % 16 == 0)
				e[i].id.raw[1] = rnd(s);
		}
		e[i].ret_data[1] = rnd(s);
	}
}

/*
 * Judges the send completions among @n events that kevent_get_events() copied
 * to @p: ret_data[1] is 0 or -errno of a send's failure, a cancelled request
 * sent nothing, KEVENT_RET_COPIED only comes with bytes, never more bytes
 * than the longest plausible send.
 */
static void judge_send_events(const char *p, long n, const unsigned long *a)
{
	for (long i = 0; i < n; i++) {
		struct ukevent e;
		char what[160];
		int err;

		memcpy(&e, p + i * sizeof(e), sizeof(e));
		if (e.type != KEVENT_NAIO || e.event != KEVENT_SOCKET_SEND)
			continue;
		err = -(int)e.ret_data[1];
		atomic_fetch_add(&counts[R_SEND_DONE][err ? errslot(err) : 0], 1);
		snprintf(what, sizeof(what), "event %ld (id %#llx ret_flags %#x ret_data %u %d)", i,
			 (unsigned long long)e.id.raw_u64, e.ret_flags, e.ret_data[0],
			 (int)e.ret_data[1]);
		if (err && !errno_allowed(R_SEND_DONE, err)) {
			report(R_SEND_DONE, a, 5, what, err);
		} else if ((err == ECANCELED && e.ret_data[0]) ||
			   (e.ret_flags & ~(uint32_t)KEVENT_RET_COPIED) ||
			   ((e.ret_flags & KEVENT_RET_COPIED) && !e.ret_data[0]) ||
			   e.ret_data[0] > SEND_MAX || !(e.req_flags & KEVENT_REQ_ONESHOT)) {
			strncat(what, " is inconsistent", sizeof(what) - strlen(what) - 1);
			report(R_SEND_DONE, a, 5, what, err);
		}
	}
}

static unsigned int ops_mask = (1u << NOPS) - 1;
static const uint64_t empty_sigset;

static void one_call(uint64_t *s)
{
	int which = rnd(s) % NOPS, fd = pick_fd(s);
	unsigned long a[6] = { 0 };
	int na = 0, err = 0, row = which;

	if (!(ops_mask & (1u << which)))
		return;
	size_t room;
	void *p = pick_ptr(s, &room);
	long r = -1;

	atomic_fetch_add(&calls[which], 1);
	last_op = which;
	switch (which) {
	case 0: {
		static const unsigned int sizes[] = { 0, 1, 3, 16, 64, KEVENT_MAX_RING_SIZE,
						      KEVENT_MAX_RING_SIZE + 1, 0xffffffff };
		unsigned int flags = rnd(s) % 4 ? O_NONBLOCK : rnd(s);
		unsigned int size = sizes[rnd(s) % 8];

		a[0] = size;
		a[1] = flags;
		na = 2;
		r = kevent_init(size, flags);
		err = errno;
		if (r >= 0) {
			/* Replace a queue: concurrent users see the old fd closed or reused. */
			int slot = rnd(s) % NQUEUES;

			if (!(flags & O_NONBLOCK))
				fcntl(r, F_SETFL, O_NONBLOCK);
			close(atomic_exchange(&queues[slot], (int)r));
		}
		break;
	}
	case 1: {
		unsigned int cmd, num;

		scribble(s);
		/* The six commands (PLUG and UNPLUG take no entries), or any value. */
		cmd = rnd(s) % 5 ? rnd(s) % 6 : rnd(s);
		num = pick_count(s);
		a[0] = fd;
		a[1] = cmd;
		a[2] = num;
		a[3] = (unsigned long)p;
		na = 4;
		r = kevent_ctl(fd, cmd, num, p);
		err = errno;
		/* Reported entries were written back, so they are in writable memory. */
		if (r >= 0 && cmd <= KEVENT_CTL_READY)
			judge_entries(cmd, num, p, r, a);
		break;
	}
	case 2: {
		struct kevent_wait_arg wa = kevent_timeout_ns(rnd(s) % 2000000);
		const struct kevent_wait_arg *wp;
		unsigned int min_nr, max_nr;

		if (me->blockq >= 0 && rnd(s) % 128 == 0) {
			/* Nothing ever becomes ready here: EINTR or 0 after 25 ms. */
			wa = kevent_timeout_ns(25000000);
			if (rnd(s) % 2) {
				wa.sigmask = (uintptr_t)&empty_sigset;
				wa.sigsetsize = 8;
			}
			fd = me->blockq;
			p = buf;
			wp = &wa;
			min_nr = max_nr = 1;
		} else {
			if (rnd(s) % 4 == 0)
				wa.flags = rnd(s);
			if (rnd(s) % 4 == 0) {
				wa.sigmask = (uintptr_t)(rnd(s) % 2 ? buf : p);
				wa.sigsetsize = rnd(s) % 3 ? 8 : rnd(s);
			}
			if (rnd(s) % 8 == 0)
				wa.timeout.tv_nsec = rnd(s);
			min_nr = pick_count(s) % 4;
			max_nr = pick_count(s);
			wp = rnd(s) % 8 ? &wa : (rnd(s) % 2 ? NULL : p);
		}
		a[0] = fd;
		a[1] = min_nr;
		a[2] = max_nr;
		a[3] = (unsigned long)p;
		a[4] = (unsigned long)wp;
		if (wp == &wa) {
			a[5] = wa.flags;
			na = 6;
		} else {
			na = 5;
		}
		r = kevent_get_events(fd, min_nr, max_nr, p, wp);
		err = errno;
		/* What was copied is there to read (p may be read-only only if nothing was). */
		if (r > 0 && (uint64_t)r * sizeof(struct ukevent) <= room)
			judge_send_events(p, r, a);
		break;
	}
	case 3: {
		struct kevent_wait_arg wa = kevent_timeout_ns(rnd(s) % 1000000);
		const struct kevent_wait_arg *wp = rnd(s) % 8 ? &wa : p;
		unsigned int num = pick_count(s), old_uidx = rnd(s);

		if (me->blockring >= 0 && rnd(s) % 128 == 0) {
			/* An empty ring nobody fills, consumer index 0: sleeps. */
			wa = kevent_timeout_ns(25000000);
			fd = me->blockring;
			num = 1;
			old_uidx = 0;
			wp = &wa;
		}
		a[0] = fd;
		a[1] = num;
		a[2] = old_uidx;
		a[3] = (unsigned long)wp;
		na = 4;
		r = kevent_wait(fd, num, old_uidx, wp);
		err = errno;
		break;
	}
	case 4: {
		unsigned int new_uidx = rnd(s) % 2 ? rnd(s) % 64 : rnd(s);
		unsigned int over = rnd(s) % 2 ? 0 : rnd(s);

		a[0] = fd;
		a[1] = new_uidx;
		a[2] = over;
		na = 3;
		r = kevent_commit(fd, new_uidx, over);
		err = errno;
		break;
	}
	case 5:
	case 6: {
		int sock = pick_fd(s);
		size_t len = rnd(s);
		unsigned int flags = rnd(s);

		if (which == 5 && rnd(s) % 2) {
			/*
			 * A connected socket (either end of a TCP connection, or UDP),
			 * flags 0 mostly, a plausible length: copied (at most 4096
			 * bytes), pinned, now and then up to 256 KiB, rarely anything.
			 */
			char *const ptrs[] = { sbuf, sbuf + 1, sbuf + 4095, sbuf + 4096,
					       buf + 8192 - 100, buf + 12288 - 16, NULL, unmapped };
			uint64_t c = rnd(s);

			sock = c % 16 < 6 ? socks[rnd(s) % NSOCKS] :
			       c % 16 < 11 ? peers[rnd(s) % NSOCKS] :
			       c % 16 < 15 ? udp_tx[rnd(s) % NUDP] : odd_socks[rnd(s) % 4];
			c = rnd(s) % 16;
			len = c < 12 ? 1 + rnd(s) % 8192 : c < 15 ? 1 + rnd(s) % SEND_MAX : rnd(s);
			flags = rnd(s) % 8 ? 0 : flags;
			p = ptrs[rnd(s) % 8];
		}
		if (which == 6 && rnd(s) % 2) {
			/* A real socket, a plausible length, flags 0 or MSG_WAITALL mostly. */
			char *const ptrs[] = { rbuf, rbuf + 1, rbuf + 8192 - 64, rbuf + 12288 - 16,
					       NULL, unmapped };

			sock = socks[rnd(s) % NSOCKS];
			len = rnd(s) % 4 ? 1 + rnd(s) % 8192 : rnd(s);
			flags = rnd(s) % 4 ? (rnd(s) % 2 ? MSG_WAITALL : 0) : flags;
			p = ptrs[rnd(s) % 6];
		}

		a[0] = fd;
		a[1] = sock;
		a[2] = (unsigned long)p;
		a[3] = len;
		a[4] = flags;
		na = 5;
		r = which == 5 ? aio_send(fd, sock, p, len, flags) :
				 aio_recv(fd, sock, p, len, flags);
		err = errno;
		if (which == 5 && r > 0 && rnd(s) % 4 == 0) {
			/* Harvest some completions of that queue right away, and judge them. */
			struct kevent_wait_arg now = kevent_timeout_ns(0);
			struct ukevent ev[16];
			long n = kevent_get_events(fd, 0, 16, ev, &now);

			if (n > 0)
				judge_send_events((const char *)ev, n, a);
		}
		break;
	}
	case 7: {
		int sock = pick_fd(s), in_fd = pick_fd(s);
		size_t count = rnd(s);

		a[0] = fd;
		a[1] = sock;
		a[2] = in_fd;
		a[3] = (unsigned long)p;
		a[4] = count;
		na = 5;
		r = aio_sendfile(fd, sock, in_fd, p, count);
		err = errno;
		break;
	}
	case 8: {
		int f = pick_fd(s);
		/* Mostly a length that fits the buffer and an offset inside the file. */
		size_t len = rnd(s) % 4 ? 1 + rnd(s) % 8192 : rnd(s);
		uint64_t off = rnd(s) % 4 ? rnd(s) % 65536 : rnd(s);
		const uint64_t *offp = rnd(s) % 4 ? &off : p;

		a[0] = fd;
		a[1] = f;
		a[2] = (unsigned long)p;
		a[3] = len;
		a[4] = (unsigned long)offp;
		na = 5;
		/* Reads land later, when they complete: in rbuf, never in what ctl uses. */
		if (rnd(s) % 2) {
			char *dst = p;

			if (dst >= buf && dst < buf + 4 * 4096)
				dst = rbuf + (dst - buf);
			a[2] = (unsigned long)dst;
			r = aio_read(fd, f, dst, len, offp);
		} else {
			r = aio_write(fd, f, p, len, offp);
		}
		err = errno;
		break;
	}
	case 9: {
		/* Map a ring, scribble on its header, maybe unmap it while others use it. */
		size_t len = 4096 * (1 + rnd(s) % 3);
		char *ring = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		err = errno;
		a[0] = len;
		a[1] = fd;
		na = 2;
		if (ring != MAP_FAILED) {
			struct kevent_wait_arg now = kevent_timeout_ns(0);
			unsigned long wargs[4] = { fd, 1, rnd(s), (unsigned long)&now };
			long w;

			((volatile uint32_t *)ring)[1] = wargs[2];
			w = kevent_wait(fd, 1, wargs[2], &now);
			judge(R_POKE_WAIT, w, errno, wargs, 4);
			munmap(ring, len);
			r = 0;
		}
		break;
	}
	}
	judge(row, r, err, a, na);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	sigset_t alrm;

	me = w;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	w->blockq = alarms ? kevent_init(0, 0) : -1;
	w->blockring = alarms ? kevent_init(16, 0) : -1;
	buf = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		fprintf(stderr, "# fuzz: thread %d: no buffer\n", w->idx);
		atomic_fetch_add(&violations, 1);
		return NULL;
	}
	mprotect(buf + 8192, 4096, PROT_READ);
	mprotect(buf + 12288, 4096, PROT_NONE);
	rbuf = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rbuf == MAP_FAILED) {
		fprintf(stderr, "# fuzz: thread %d: no receive buffer\n", w->idx);
		atomic_fetch_add(&violations, 1);
		return NULL;
	}
	mprotect(rbuf + 8192, 4096, PROT_READ);
	mprotect(rbuf + 12288, 4096, PROT_NONE);
	sbuf = mmap(NULL, SEND_MAX + 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (sbuf == MAP_FAILED) {
		fprintf(stderr, "# fuzz: thread %d: no send buffer\n", w->idx);
		atomic_fetch_add(&violations, 1);
		return NULL;
	}
	for (size_t i = 0; i < SEND_MAX + 8192; i++)
		sbuf[i] = (char)(i * 131 + w->idx);
	for (w->i = 0; w->i < w->n && !atomic_load(&stop); w->i++)
		one_call(&w->s);
	munmap(buf, 4 * 4096);
	/* Pending sends keep their pages pinned, mapped or not. */
	munmap(sbuf, SEND_MAX + 8192);
	/* Requests still pending keep their pages pinned: the region stays mapped. */
	if (w->blockq >= 0)
		close(w->blockq);
	if (w->blockring >= 0)
		close(w->blockring);
	return NULL;
}

/*
 * Keeps sending random bytes to the sockets aio_recv is given, and reads
 * what aio_send sent to the other ends (TCP and UDP), so that sends go on.
 */
static void *feed(void *arg)
{
	static char sink[65536];
	uint64_t s = (uintptr_t)arg | 1;
	char data[4096];

	while (!atomic_load(&stop)) {
		for (int i = 0; i < NSOCKS; i++) {
			for (size_t j = 0; j < sizeof(data); j++)
				data[j] = (char)rnd(&s);
			if (send(peers[i], data, 1 + rnd(&s) % sizeof(data), MSG_DONTWAIT) < 0 &&
			    errno != EAGAIN)
				return NULL;
			while (recv(peers[i], sink, sizeof(sink), MSG_DONTWAIT) > 0)
				;
		}
		for (int i = 0; i < NUDP; i++)
			while (recv(udp_rx[i], sink, sizeof(sink), MSG_DONTWAIT) > 0)
				;
		usleep(500);
	}
	return NULL;
}

/* A connected TCP pair over IPv4 loopback: *rx receives, *tx sends. */
static int tcp_pair4(int *rx, int *tx)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (void *)&sa, len) || listen(l, 4) ||
	    getsockname(l, (void *)&sa, &len))
		return -1;
	*tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*tx < 0 || connect(*tx, (void *)&sa, len))
		return -1;
	*rx = accept(l, NULL, NULL);
	close(l);
	return *rx < 0 ? -1 : 0;
}

/* A UDP socket *tx connected to *rx over IPv4 loopback. */
static int udp_pair4(int *rx, int *tx)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	*rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	*tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (*rx < 0 || *tx < 0 || bind(*rx, (void *)&sa, len) ||
	    getsockname(*rx, (void *)&sa, &len) || connect(*tx, (void *)&sa, len))
		return -1;
	return 0;
}

/* The descriptors of odd_socks[]. */
static int open_odd_socks(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int sp[2], pp[2];

	odd_socks[0] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	odd_socks[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (odd_socks[0] < 0 || odd_socks[1] < 0 || bind(odd_socks[1], (void *)&sa, sizeof(sa)) ||
	    listen(odd_socks[1], 1) || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) ||
	    pipe2(pp, O_CLOEXEC))
		return -1;
	odd_socks[2] = sp[0];
	odd_socks[3] = pp[1];
	return 0;
}

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	fprintf(stderr, "fuzz: signal %d at %p during op %d\n", sig, si->si_addr, last_op);
	_exit(2);
}

static void on_alarm(int sig)
{
	(void)sig;	/* only interrupts a call that would block */
}

/* Prints the errno table: one line per call, a column per errno seen. */
static void print_table(struct __test_metadata *_metadata)
{
	bool col[MAX_ERRNO + 1] = { false };
	char line[512];
	int len;

	col[0] = true;
	for (int r = 0; r < NROWS; r++)
		for (int e = 1; e <= MAX_ERRNO; e++)
			if (atomic_load(&counts[r][e]))
				col[e] = true;
	len = snprintf(line, sizeof(line), "%-18s", "errno table");
	for (int e = 0; e <= MAX_ERRNO; e++)
		if (col[e] && len < (int)sizeof(line))
			len += snprintf(line + len, sizeof(line) - len, " %10s", errname(e));
	TH_LOG("%s", line);
	for (int r = 0; r < NROWS; r++) {
		len = snprintf(line, sizeof(line), "%-18s", names[r]);
		for (int e = 0; e <= MAX_ERRNO; e++)
			if (col[e] && len < (int)sizeof(line))
				len += snprintf(line + len, sizeof(line) - len, " %10ld",
						atomic_load(&counts[r][e]));
		TH_LOG("%s", line);
	}
}

FIXTURE(fuzz) {};
FIXTURE_SETUP(fuzz) {}
FIXTURE_TEARDOWN(fuzz) {}

TEST_F_TIMEOUT(fuzz, random_calls, 1800)
{
	const char *env = getenv("KEVENT_FUZZ_CALLS");
	long n = env ? atol(env) : 100000;
	uint64_t seed = getenv("KEVENT_FUZZ_SEED") ? strtoull(getenv("KEVENT_FUZZ_SEED"), NULL, 0)
						   : (uint64_t)now_ns();
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } };
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	int nthreads = getenv("KEVENT_FUZZ_THREADS") ? atoi(getenv("KEVENT_FUZZ_THREADS")) : NTHREADS;
	long total = 0, pins_before = pins_held();
	pthread_t feeder;
	sigset_t alrm;

	if (!seed)
		seed = 1;
	if (getenv("KEVENT_FUZZ_OPS"))
		ops_mask = strtoul(getenv("KEVENT_FUZZ_OPS"), NULL, 0);
	if (nthreads < 1 || nthreads > NTHREADS)
		nthreads = NTHREADS;
	alarms = !getenv("KEVENT_FUZZ_NOALARM");
	md = _metadata;
	run_seed = seed;
	TH_LOG("seed %#llx, %ld calls per thread, %d threads", (unsigned long long)seed, n,
	       nthreads);
	/*
	 * Never mapped: below the static binary and its heap, above mmap_min_addr.
	 * (An munmap()ed range is no good: thread stacks reuse it, and the kernel
	 * then rightly writes results into them.)
	 */
	unmapped = (char *)0x10000;
	datafile = open("/tmp/fuzz.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_LE(0, datafile);
	ASSERT_EQ(0, ftruncate(datafile, 65536));
	for (int i = 0; i < NQUEUES; i++)
		atomic_store(&queues[i], kevent_init(i % 2 ? 16 : 0, O_NONBLOCK));
	for (int i = 0; i < NSOCKS; i++)
		ASSERT_EQ(0, tcp_pair4(&socks[i], &peers[i]));
	for (int i = 0; i < NUDP; i++)
		ASSERT_EQ(0, udp_pair4(&udp_rx[i], &udp_tx[i]));
	ASSERT_EQ(0, open_odd_socks());
	ASSERT_EQ(0, pthread_create(&feeder, NULL, feed, (void *)(uintptr_t)seed));
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	/* The itimer's SIGALRM goes to a worker (they unblock it), not to this thread. */
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	if (alarms)
		setitimer(ITIMER_REAL, &it, NULL);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){ .n = n, .idx = i };
		w[i].seed = w[i].s = seed + i * 0x9e3779b97f4a7c15ull;
		ASSERT_EQ(0, pthread_create(&t[i], NULL, work, &w[i]));
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop, 1);
	pthread_join(feeder, NULL);
	setitimer(ITIMER_REAL, &(struct itimerval){ 0 }, NULL);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	for (int i = 0; i < NOPS; i++) {
		TH_LOG("%-18s %8ld calls, %8ld succeeded", names[i], atomic_load(&calls[i]),
		       atomic_load(&counts[i][0]));
		total += atomic_load(&calls[i]);
	}
	for (int i = 0; i < 8; i++)
		TH_LOG("pointer class %-15s %8ld", class_names[i], atomic_load(&classes[i]));
	TH_LOG("%ld calls in all", total);
	print_table(_metadata);
	for (int i = 0; i < NQUEUES; i++)
		close(atomic_load(&queues[i]));
	for (int i = 0; i < NSOCKS; i++) {
		close(socks[i]);
		close(peers[i]);
	}
	for (int i = 0; i < NUDP; i++) {
		close(udp_rx[i]);
		close(udp_tx[i]);
	}
	/*
	 * Closing the queues ended every pending aio_recv and aio_send: nothing
	 * stays pinned. (Allow a few seconds: sends release their pages as the
	 * stack lets go of them.)
	 */
	for (int i = 0; i < 250 && pins_held() != pins_before; i++)
		usleep(20000);
	EXPECT_EQ(pins_before, pins_held());
	if (atomic_load(&violations) > MAX_REPORTS)
		TH_LOG("%ld violations, the first %d printed", atomic_load(&violations),
		       MAX_REPORTS);
	EXPECT_EQ(0, atomic_load(&violations));
	if (ops_mask == (1u << NOPS) - 1)
		EXPECT_EQ((long)nthreads * n, total);
}

TEST_HARNESS_MAIN
