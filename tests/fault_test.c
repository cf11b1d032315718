// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection: the kevent system calls under failed allocations
 * (failslab, fail_page_alloc) and failed user copies (fail_usercopy). Each
 * variant enables one kind (or all three) at KEVENT_FAULT_PROBABILITY percent
 * and runs rounds of:
 *
 *	kevent_init() of a plain queue and of a queue with a ring, mmap() of
 *	the ring; kevent_ctl() ADD, in batches, of UNOTIFY ids, a timer, a poll
 *	on an eventfd, a pipe, a socket of a socketpair and SIGUSR1 (NOMASK);
 *	READY of the UNOTIFY ids; kill(SIGUSR1); kevent_get_events(); MODIFY;
 *	REMOVE; on the ring queue ADD, READY, kevent_commit() and
 *	kevent_wait(); REMOVE of the rest; close().
 *
 * Injection is confined to this thread (task-filter Y, make-it-fail of this
 * thread only) and to those calls: make-it-fail is 1 only around each of them,
 * so the harness, printf and page faults are never failed (all memory is
 * locked and present: mlockall()).
 *
 * Judgement:
 *  - a call fails with an errno of its set below, nothing else;
 *  - an entry that kevent_ctl() reports in its array failed with ENOMEM or
 *    EFAULT, or with ENOENT where the test provokes it (READY, MODIFY or
 *    REMOVE of an id whose ADD failed), never with ENOENT for an id whose ADD
 *    succeeded;
 *  - no event is lost, none invented, none duplicated: every UNOTIFY id whose
 *    ADD and READY both succeeded is harvested exactly once (by the
 *    kevent_get_events() calls under injection, some of which fail with
 *    EFAULT and must put their events back, plus a final harvest without
 *    injection; on the ring queue, from the ring), with its ret_data and
 *    cookie intact; an id whose ADD or READY failed never; an id whose
 *    outcome is unknown (the call failed with EFAULT, which may come from
 *    writing the reports back after the entries took effect) at most once;
 *    and no event of a registration whose ADD failed;
 *  - on the plain queue, sequence numbers only grow across harvests;
 *  - faults were injected at all (else the test proved nothing).
 *
 * Allowed errnos under injection (and why):
 *  - kevent_init: ENOMEM: Queue::new() (queue.rs), the ring (shared_pages.rs
 *    SharedPages::new(): pages, KVecs, vm_map_ram()), the queue file
 *    (anon_inode_getfile(): dentry and file allocations). Not ENFILE: that is
 *    alloc_empty_file()'s file-max check, for non-root only, not an
 *    allocation; not EMFILE: the descriptor table limit (fs/file.c), no
 *    allocation while the table is below 64 descriptors.
 *  - mmap of the ring: ENOMEM (vma, maple tree, page tables of
 *    vm_insert_page()).
 *  - kevent_ctl: ENOMEM: ctl.rs KVec::with_capacity(), before any entry
 *    takes effect; EFAULT: ctl.rs reading the entries (before) or writing
 *    the reported ones back (after the entries took effect).
 *  - per entry: ENOMEM: Registration::new(), rbtree node, storage, poll
 *    entries; EFAULT: allowed, not reachable (entries are copied in whole).
 *  - kevent_get_events, kevent_wait: EFAULT: the hook layer copies the wait
 *    argument and the sigmask in (kernel/kevent.c, set_user_sigmask()),
 *    harvest.rs copies events out and puts them back on failure. ENOMEM:
 *    allowed, not reachable (a harvest allocates nothing).
 *  - kevent_commit: ENOMEM, EFAULT allowed, neither reachable (no allocation,
 *    no user copy).
 *  - close: never fails.
 *
 * The number of faults comes from each kind's "times" counter (set to
 * 1000000000, counting down with each injection; -1 would not count), and
 * from the kernel log (verbose 1: "FAULT_INJECTION: forcing a failure." then
 * "name <kind>, ..."), which misses every fault injected into an allocation
 * with __GFP_NOWARN: the module allocates with it, so its own faults are
 * silent. Every debugfs setting is restored at the end, even when the test
 * fails or crashes (the teardown runs in the parent); probability is left 0.
 *
 *	KEVENT_FAULT_SECONDS=S		time per variant (default 15)
 *	KEVENT_FAULT_ROUNDS=N		rounds per variant at most (default 3000)
 *	KEVENT_FAULT_PROBABILITY=P	percent (default 10)
 */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

/* Both can be redirected at build time, for a dry run against a model. */
#ifndef FI_DEBUGFS
#define FI_DEBUGFS "/sys/kernel/debug"
#endif
#ifndef MAKE_IT_FAIL
#define MAKE_IT_FAIL "/proc/thread-self/make-it-fail"
#endif
#define TIMES0 1000000000L
#define TIMES0_STR "1000000000"
#define MAX_ERRNO 134		/* larger errnos are counted here */
#define MAX_REPORTS 30		/* violations printed in full */

#define NTRACK 32		/* UNOTIFY ids made ready on the plain queue */
#define NVICTIM 8		/* UNOTIFY ids added, never made ready, removed */
#define NOTHER 5		/* timer, poll, pipe, socket, signal */
#define NSLOTS (NTRACK + NVICTIM + NOTHER)
#define NRING 24		/* UNOTIFY ids made ready on the ring queue */
#define RING_SIZE 16		/* fewer than NRING: some wait on the ready list */
#define CHUNK 8			/* entries per kevent_ctl() at most */

enum { FI_SLAB, FI_PAGE, FI_COPY, FI_KINDS };
#define K_SLAB (1u << FI_SLAB)
#define K_PAGE (1u << FI_PAGE)
#define K_COPY (1u << FI_COPY)
#define K_ALL (K_SLAB | K_PAGE | K_COPY)

static const char *const fi_name[FI_KINDS] = { "failslab", "fail_page_alloc", "fail_usercopy" };
static const char *const fi_config[FI_KINDS] = {
	"CONFIG_FAILSLAB", "CONFIG_FAIL_PAGE_ALLOC", "CONFIG_FAULT_INJECTION_USERCOPY",
};

/* The debugfs files the test sets, in this order (probability is set last). */
static const struct knob {
	const char *file;
	const char *value;
	unsigned int kinds;
} knobs[] = {
	{ "probability", "0", K_ALL },		/* off while configuring */
	{ "interval", "1", K_ALL },
	{ "times", TIMES0_STR, K_ALL },		/* counts injections down */
	{ "space", "0", K_ALL },
	{ "verbose", "1", K_ALL },		/* 2 dumps stacks: a splat for the runner */
	{ "task-filter", "Y", K_ALL },		/* only tasks with make-it-fail set */
	/* kevent allocates with GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL: may sleep */
	{ "ignore-gfp-wait", "N", K_SLAB | K_PAGE },
	{ "cache-filter", "N", K_SLAB },
	{ "min-order", "0", K_PAGE },		/* single pages too: the ring's */
	{ "ignore-gfp-highmem", "Y", K_PAGE },	/* never fail user pages */
};
#define NKNOBS ARRAY_SIZE(knobs)

/* What the errno table counts. */
enum {
	C_INIT, C_MMAP, C_ADD, C_REMOVE, C_MODIFY, C_READY, C_GET, C_WAIT, C_COMMIT, C_CLOSE,
	C_ENTRY, NCALLS
};

static const char *const call_name[NCALLS] = {
	"kevent_init", "mmap ring", "kevent_ctl ADD", "kevent_ctl REMOVE", "kevent_ctl MODIFY",
	"kevent_ctl READY", "kevent_get_events", "kevent_wait", "kevent_commit", "close",
	"ctl entries",
};

static const int mem[] = { ENOMEM, 0 };
static const int mem_fault[] = { ENOMEM, EFAULT, 0 };
static const int none[] = { 0 };
static const int *const allowed[NCALLS] = {
	mem, mem, mem_fault, mem_fault, mem_fault, mem_fault, mem_fault, mem_fault, mem_fault,
	none, mem_fault,
};

static const char *const cmd_name[] = { "ADD", "REMOVE", "MODIFY", "READY" };
static const int cmd_call[] = { C_ADD, C_REMOVE, C_MODIFY, C_READY };

static const char *errname(int e)
{
	static const char *const n[MAX_ERRNO + 1] = {
		[0] = "ok", [EPERM] = "EPERM", [ENOENT] = "ENOENT", [EINTR] = "EINTR",
		[EIO] = "EIO", [EBADF] = "EBADF", [EAGAIN] = "EAGAIN", [ENOMEM] = "ENOMEM",
		[EACCES] = "EACCES", [EFAULT] = "EFAULT", [EBUSY] = "EBUSY",
		[EEXIST] = "EEXIST", [ENODEV] = "ENODEV", [EINVAL] = "EINVAL",
		[ENFILE] = "ENFILE", [EMFILE] = "EMFILE", [ENOSPC] = "ENOSPC",
		[ENOSYS] = "ENOSYS", [ELOOP] = "ELOOP", [EOVERFLOW] = "EOVERFLOW",
		[ENOTSOCK] = "ENOTSOCK", [EOPNOTSUPP] = "EOPNOTSUPP",
	};

	if (e >= 0 && e <= MAX_ERRNO && n[e])
		return n[e];
	return e == MAX_ERRNO ? "other" : "E?";
}

static int errslot(int err)
{
	return err > 0 && err < MAX_ERRNO ? err : MAX_ERRNO;
}

static bool in_set(const int *set, int err)
{
	for (; *set; set++)
		if (*set == err)
			return true;
	return false;
}

/* --- debugfs --- */

static void fi_path(char *path, size_t len, int kind, const char *file)
{
	snprintf(path, len, FI_DEBUGFS "/%s/%s", fi_name[kind], file);
}

static int read_str(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	out[n] = 0;
	out[strcspn(out, "\n")] = 0;
	return out[0] ? 0 : -1;
}

static int write_str(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

static int write_knob(int kind, const char *file, const char *value)
{
	char path[128];

	fi_path(path, sizeof(path), kind, file);
	return write_str(path, value);
}

/* --- state of the test (it runs in one thread) --- */

static struct __test_metadata *md;
static int mif_fd = -1, kmsg_fd = -1, efd = -1, pfd[2] = { -1, -1 }, sv[2] = { -1, -1 };
static int round_nr;
static long nviol;
static long ncalls[NCALLS], nerr[NCALLS][MAX_ERRNO + 1];
static long logged[FI_KINDS], kmsg_pending, kmsg_lost;
static long accepted, maybe_seen, maybe_unseen, get_efault, ctl_efault;
static volatile sig_atomic_t usr1_handled;
static const uint64_t empty_sigset;

/* Prints one violation (the first MAX_REPORTS) and fails the test. */
static void __attribute__((format(printf, 1, 2))) violation(const char *fmt, ...)
{
	struct __test_metadata *_metadata = md;
	bool as_expected = false;
	char msg[320];
	va_list ap;

	if (nviol++ >= MAX_REPORTS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	TH_LOG("round %d: %s", round_nr, msg);
	EXPECT_TRUE(as_expected);
}

/*
 * Sets make-it-fail of this thread. Switching it off runs with injection on,
 * so the write's own copy_from_user() may be failed: retry until it sticks.
 */
static void set_fail(int on)
{
	for (int i = 0; i < 100000; i++)
		if (write(mif_fd, on ? "1" : "0", 1) == 1)
			return;
	fprintf(stderr, "# cannot switch make-it-fail %s\n", on ? "on" : "off");
	abort();
}

/* Evaluates a system call with faults injected into it; keeps its errno. */
#define FAULTY(expr) ({			\
	long __r;			\
	int __e;			\
					\
	set_fail(1);			\
	__r = (long)(expr);		\
	__e = errno;			\
	set_fail(0);			\
	errno = __e;			\
	__r;				\
})

/* Counts the result of a call made under injection and judges its errno. */
static void judge(int call, long r, int err, const char *args)
{
	char set[64] = "nothing";
	int len = 0;

	ncalls[call]++;
	nerr[call][r >= 0 ? 0 : errslot(err)]++;
	if (r >= 0 || in_set(allowed[call], err))
		return;
	for (const int *e = allowed[call]; *e; e++)
		len += snprintf(set + len, sizeof(set) - len, "%s%s", len ? " " : "", errname(*e));
	violation("%s(%s) failed with %s (errno %d); under fault injection only: %s",
		  call_name[call], args, errname(err), err, set);
}

/* --- the kernel log --- */

/* Counts "FAULT_INJECTION: forcing a failure." followed by "name <kind>,". */
static void kmsg_record(const char *rec)
{
	const char *msg = strchr(rec, ';'), *name;

	if (!msg)
		return;
	if (strstr(msg, "FAULT_INJECTION: forcing a failure."))
		kmsg_pending++;
	name = strstr(msg, "name ");
	if (!name || !kmsg_pending)
		return;
	for (int k = 0; k < FI_KINDS; k++) {
		size_t len = strlen(fi_name[k]);

		if (!strncmp(name + 5, fi_name[k], len) && name[5 + len] == ',') {
			logged[k]++;
			kmsg_pending--;
			return;
		}
	}
}

static void kmsg_drain(void)
{
	static char rec[8192];
	ssize_t n;

	if (kmsg_fd < 0)
		return;
	for (;;) {
		n = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE) {
			kmsg_lost++;	/* overwritten before we read them */
			continue;
		}
		if (n <= 0)
			return;
		rec[n] = 0;
		kmsg_record(rec);
	}
}

/* --- queues, registrations and their events --- */

enum { NO, YES, MAYBE };
static const char *const state_name[] = { "no", "yes", "maybe" };

struct slot {
	struct ukevent req;	/* as added */
	unsigned char reg;	/* registered */
	unsigned char fired;	/* made ready (UNOTIFY) */
	unsigned char seen;	/* events harvested (UNOTIFY) */
	bool tracked;		/* an UNOTIFY id that is made ready */
};

struct queue {
	const char *name;
	int fd;
	struct slot *slots;
	int n;
	bool check_seq;		/* no ring: sequence numbers only grow */
	uint64_t last_seq;
	struct kevent_ring *ring;
	unsigned int u;		/* consumer index */
};

static uint32_t magic(uint64_t id)
{
	return (uint32_t)(id * 2654435761u) | 1;
}

static struct slot *lookup(struct queue *q, uint32_t type, uint64_t id)
{
	for (int i = 0; i < q->n; i++)
		if (q->slots[i].req.type == type && q->slots[i].req.id.raw_u64 == id)
			return &q->slots[i];
	return NULL;
}

/* Checks one harvested event; returns 1 for an UNOTIFY event. */
static int see(struct queue *q, const struct ukevent *e, const char *how)
{
	unsigned long long id = e->id.raw_u64;
	struct slot *s = lookup(q, e->type, id);

	if (q->check_seq) {
		if (e->seq <= q->last_seq)
			violation("%s on %s: type %u id %#llx has seq %llu after %llu", how, q->name,
				  e->type, id, (unsigned long long)e->seq,
				  (unsigned long long)q->last_seq);
		q->last_seq = e->seq;
	}
	if (!s) {
		violation("%s on %s: event type %u id %#llx that was never added", how, q->name,
			  e->type, id);
		return 0;
	}
	if (s->reg == NO)
		violation("%s on %s: event type %u id %#llx of a registration that failed or was removed",
			  how, q->name, e->type, id);
	if (e->type != KEVENT_UNOTIFY)
		return 0;
	if (!s->tracked || s->fired == NO)
		violation("%s on %s: UNOTIFY id %#llx was never made ready (READY %s)", how, q->name,
			  id, state_name[s->fired]);
	if (++s->seen > 1)
		violation("%s on %s: UNOTIFY id %#llx delivered %d times", how, q->name, id,
			  s->seen);
	if (e->ret_flags || e->ret_data[0] != 1 || e->ret_data[1] != magic(id) ||
	    e->user != s->req.user || e->req_flags != s->req.req_flags ||
	    e->event != s->req.event)
		violation("%s on %s: UNOTIFY id %#llx altered: ret_flags %#x ret_data %u/%#x (want 1/%#x) user %#llx flags %#x event %#x",
			  how, q->name, id, e->ret_flags, e->ret_data[0], e->ret_data[1],
			  magic(id), (unsigned long long)e->user, e->req_flags, e->event);
	return 1;
}

static struct ukevent request(const struct slot *s, unsigned int cmd)
{
	struct ukevent e;

	switch (cmd) {
	case KEVENT_CTL_READY:
		e = uev(s->req.type, s->req.id.raw_u64, 0, 0);
		e.ret_data[1] = magic(s->req.id.raw_u64);
		return e;
	case KEVENT_CTL_REMOVE:
		return uev(s->req.type, s->req.id.raw_u64, 0, 0);
	default:		/* ADD, and MODIFY to the same values */
		return s->req;
	}
}

/* An entry of a successful kevent_ctl() that was not reported: it took effect. */
static void entry_done(struct slot *s, unsigned int cmd)
{
	unsigned long long id = s->req.id.raw_u64;

	ncalls[C_ENTRY]++;
	nerr[C_ENTRY][0]++;
	if (cmd != KEVENT_CTL_ADD && s->reg == NO)
		violation("%s of type %u id %#llx succeeded, but it is not registered",
			  cmd_name[cmd], s->req.type, id);
	switch (cmd) {
	case KEVENT_CTL_ADD:
	case KEVENT_CTL_MODIFY:
		s->reg = YES;
		break;
	case KEVENT_CTL_READY:
		s->reg = YES;
		s->fired = YES;
		break;
	case KEVENT_CTL_REMOVE:
		s->reg = NO;
		break;
	}
}

/* An entry that kevent_ctl() reported in its array. */
static void entry_failed(struct slot *s, unsigned int cmd, const struct ukevent *e)
{
	unsigned long long id = s->req.id.raw_u64;
	int err = -(int)e->ret_data[1];

	ncalls[C_ENTRY]++;
	if ((e->ret_flags & (KEVENT_RET_BROKEN | KEVENT_RET_DONE)) !=
	    (KEVENT_RET_BROKEN | KEVENT_RET_DONE)) {
		violation("%s of type %u id %#llx reported with ret_flags %#x, not as a failure",
			  cmd_name[cmd], s->req.type, id, e->ret_flags);
		if (cmd == KEVENT_CTL_ADD)
			s->reg = NO;	/* ready at ADD and not kept */
		return;
	}
	nerr[C_ENTRY][errslot(err)]++;
	if (err == ENOENT && cmd != KEVENT_CTL_ADD) {
		/* Provoked: the id's ADD failed, or may have. */
		if (s->reg == YES)
			violation("%s of type %u id %#llx: ENOENT, but its ADD succeeded",
				  cmd_name[cmd], s->req.type, id);
		s->reg = NO;
		s->fired = NO;
		return;
	}
	if (!in_set(allowed[C_ENTRY], err))
		violation("%s of type %u id %#llx failed with %s (%d); under fault injection only ENOMEM EFAULT",
			  cmd_name[cmd], s->req.type, id, errname(err), err);
	if (cmd == KEVENT_CTL_ADD)
		s->reg = NO;
}

/* kevent_ctl() failed with EFAULT: the entries may or may not have taken effect. */
static void entry_unknown(struct slot *s, unsigned int cmd)
{
	switch (cmd) {
	case KEVENT_CTL_ADD:
		if (s->reg == NO)
			s->reg = MAYBE;
		break;
	case KEVENT_CTL_READY:
		if (s->reg != NO && s->fired == NO)
			s->fired = MAYBE;
		break;
	case KEVENT_CTL_REMOVE:
		if (s->reg != NO)
			s->reg = MAYBE;
		break;
	}
}

/* Applies @cmd to the slots @idx[0..n) of @q under injection, @chunk at a time. */
static void ctl_batch(struct queue *q, unsigned int cmd, const int *idx, int n, int chunk)
{
	static struct ukevent cb[CHUNK];

	for (int at = 0; at < n; at += chunk) {
		int m = n - at < chunk ? n - at : chunk;
		bool reported[CHUNK] = { false };
		char args[64];
		long r;
		int err;

		for (int j = 0; j < m; j++)
			cb[j] = request(&q->slots[idx[at + j]], cmd);
		r = FAULTY(kevent_ctl(q->fd, cmd, m, cb));
		err = errno;
		snprintf(args, sizeof(args), "%s %d, %s, %d, entries", q->name, q->fd,
			 cmd_name[cmd], m);
		judge(cmd_call[cmd], r, err, args);
		if (r < 0) {
			/*
			 * ENOMEM comes before any entry is looked at (ctl.rs);
			 * EFAULT either before (reading) or after (writing the
			 * reports back).
			 */
			if (err == EFAULT) {
				ctl_efault++;
				for (int j = 0; j < m; j++)
					entry_unknown(&q->slots[idx[at + j]], cmd);
			}
			continue;
		}
		if (r > m) {
			violation("kevent_ctl(%s) returned %ld for %d entries", args, r, m);
			r = m;
		}
		for (int j = 0; j < r; j++) {
			int pos = -1;

			for (int k = 0; k < m; k++) {
				const struct ukevent *req = &q->slots[idx[at + k]].req;

				if (req->type == cb[j].type && req->id.raw_u64 == cb[j].id.raw_u64)
					pos = k;
			}
			if (pos < 0 || reported[pos]) {
				violation("kevent_ctl(%s) reported entry %d (type %u id %#llx) twice or for no request",
					  args, j, cb[j].type, (unsigned long long)cb[j].id.raw_u64);
				continue;
			}
			reported[pos] = true;
			entry_failed(&q->slots[idx[at + pos]], cmd, &cb[j]);
		}
		for (int j = 0; j < m; j++)
			if (!reported[j])
				entry_done(&q->slots[idx[at + j]], cmd);
	}
}

/*
 * Harvests up to @max events of @q without waiting, under injection if
 * @faulty. Returns the number of UNOTIFY events.
 */
static int take_events(struct queue *q, unsigned int max, bool faulty, bool sigmask)
{
	static struct ukevent hb[64];
	struct kevent_wait_arg wa = kevent_timeout_ns(0);
	char args[64];
	int err, n = 0;
	long r;

	if (sigmask) {
		wa.sigmask = (uintptr_t)&empty_sigset;
		wa.sigsetsize = 8;
	}
	if (faulty)
		r = FAULTY(kevent_get_events(q->fd, 0, max, hb, &wa));
	else
		r = kevent_get_events(q->fd, 0, max, hb, &wa);
	err = errno;
	snprintf(args, sizeof(args), "%s %d, 0, %u, buf, timeout 0%s", q->name, q->fd, max,
		 sigmask ? " + sigmask" : "");
	if (faulty) {
		judge(C_GET, r, err, args);
		if (r < 0 && err == EFAULT)
			get_efault++;
	} else if (r < 0) {
		violation("kevent_get_events(%s) failed with %s without injection", args,
			  errname(err));
	}
	if (r > (long)max) {
		violation("kevent_get_events(%s) returned %ld", args, r);
		r = max;
	}
	for (long i = 0; i < r; i++)
		n += see(q, &hb[i], faulty ? "kevent_get_events" : "final kevent_get_events");
	return n;
}

/* Takes the events that the kernel published in the ring since the last call. */
static void ring_take(struct queue *q, const char *how)
{
	unsigned int k = __atomic_load_n(&q->ring->ring_kidx, __ATOMIC_ACQUIRE);

	if (k - q->u > RING_SIZE) {
		violation("%s: ring_kidx %u is more than %u entries past the consumer index %u",
			  how, k, RING_SIZE, q->u);
		return;
	}
	for (; q->u != k; q->u++)
		see(q, &q->ring->event[q->u & (RING_SIZE - 1)], how);
}

/* Releases every slot taken so far. */
static void ring_commit(struct queue *q, bool faulty)
{
	unsigned int idx = q->u & (RING_SIZE - 1), over = q->u / RING_SIZE;
	char args[64];
	long r;
	int err;

	snprintf(args, sizeof(args), "%d, %u, %u", q->fd, idx, over);
	if (faulty) {
		r = FAULTY(kevent_commit(q->fd, idx, over));
		judge(C_COMMIT, r, errno, args);
		if (r >= 0)
			return;
	}
	r = kevent_commit(q->fd, idx, over);
	err = errno;
	if (r < 0)
		violation("kevent_commit(%s) failed with %s without injection", args, errname(err));
}

/* Moves ready events into the ring without waiting; returns the unconsumed count. */
static long ring_wait(struct queue *q, bool faulty)
{
	struct kevent_wait_arg wa = kevent_timeout_ns(0);
	unsigned int k;
	char args[64];
	long r;
	int err;

	snprintf(args, sizeof(args), "%d, 0, %u, timeout 0", q->fd, q->u);
	if (faulty)
		r = FAULTY(kevent_wait(q->fd, 0, q->u, &wa));
	else
		r = kevent_wait(q->fd, 0, q->u, &wa);
	err = errno;
	if (faulty)
		judge(C_WAIT, r, err, args);
	else if (r < 0)
		violation("kevent_wait(%s) failed with %s without injection", args, errname(err));
	k = __atomic_load_n(&q->ring->ring_kidx, __ATOMIC_ACQUIRE);
	if (r >= 0 && r != (long)(k - q->u))
		violation("kevent_wait(%s) returned %ld, but %u entries are unconsumed", args, r,
			  k - q->u);
	return r;
}

/* After the final harvest: the delivery of each made-ready id. */
static void verify(struct queue *q)
{
	for (int i = 0; i < q->n; i++) {
		struct slot *s = &q->slots[i];

		if (!s->tracked)
			continue;
		if (s->reg == YES && s->fired == YES) {
			accepted++;
			if (s->seen != 1)
				violation("%s: UNOTIFY id %#llx: ADD and READY succeeded, delivered %d times",
					  q->name, (unsigned long long)s->req.id.raw_u64, s->seen);
		} else if (s->reg != NO && s->fired != NO) {
			if (s->seen)
				maybe_seen++;
			else
				maybe_unseen++;
		}
	}
}

static void *map_ring(int fd, bool faulty)
{
	size_t len = KEVENT_RING_BYTES(RING_SIZE);
	void *p;
	int err;

	if (!faulty)
		return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	set_fail(1);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = errno;
	set_fail(0);
	judge(C_MMAP, p == MAP_FAILED ? -1 : 0, err, "ring");
	return p;
}

static int init_queue(unsigned int size, unsigned int flags)
{
	char args[32];
	long r;

	snprintf(args, sizeof(args), "%u, %#x", size, flags);
	r = FAULTY(kevent_init(size, flags));
	judge(C_INIT, r, errno, args);
	if (r < 0)
		r = kevent_init(size, flags);
	if (r < 0)
		violation("kevent_init(%s) failed with %s without injection", args,
			  errname(errno));
	return r;
}

static void close_queue(struct queue *q)
{
	char args[32];
	long r;

	snprintf(args, sizeof(args), "%s %d", q->name, q->fd);
	r = FAULTY(close(q->fd));
	judge(C_CLOSE, r, errno, args);
}

static struct slot qslots[NSLOTS], rslots[NRING];

/* One round; returns -1 if it could not be set up. */
static int one_round(int round)
{
	int chunk = 1 + round % CHUNK, all[NSLOTS], track[NTRACK], even[NTRACK / 2];
	int victims[NVICTIM], others[NOTHER], ring_all[NRING];
	uint64_t base = (uint64_t)(round + 1) << 20;
	struct queue q = { .name = "queue", .slots = qslots, .n = NSLOTS, .check_seq = true };
	struct queue rq = { .name = "ring queue", .slots = rslots, .n = NRING };
	int o = NTRACK + NVICTIM;
	void *ring;

	round_nr = round;
	for (int i = 0; i < NTRACK; i++) {
		qslots[i] = (struct slot){
			.req = uev(KEVENT_UNOTIFY, base + i, KEVENT_UNOTIFY_FIRED,
				   i & 1 ? KEVENT_REQ_ONESHOT : 0),
			.tracked = true,
		};
		track[i] = i;
		if (!(i & 1))
			even[i / 2] = i;
	}
	for (int i = 0; i < NVICTIM; i++) {
		qslots[NTRACK + i] = (struct slot){
			.req = uev(KEVENT_UNOTIFY, base + 0x1000 + i, KEVENT_UNOTIFY_FIRED, 0),
		};
		victims[i] = NTRACK + i;
	}
	qslots[o] = (struct slot){ .req = timer_uev(0, 2000000, 0) };
	qslots[o + 1] = (struct slot){
		.req = uev(KEVENT_POLL, efd, POLLIN, KEVENT_REQ_ALWAYS_QUEUE),
	};
	qslots[o + 2] = (struct slot){
		.req = uev(KEVENT_PIPE, pfd[0], KEVENT_SOCKET_RECV, KEVENT_REQ_ALWAYS_QUEUE),
	};
	qslots[o + 3] = (struct slot){
		.req = uev(KEVENT_SOCKET, sv[0], KEVENT_SOCKET_RECV, KEVENT_REQ_ALWAYS_QUEUE),
	};
	qslots[o + 4] = (struct slot){
		.req = uev(KEVENT_SIGNAL, SIGUSR1 | KEVENT_SIGNAL_NOMASK, KEVENT_SIGNAL_DELIVERY, 0),
	};
	for (int i = 0; i < NOTHER; i++)
		others[i] = o + i;
	/* Rotate the ADD order so that each kind lands anywhere in a batch. */
	for (int i = 0; i < NSLOTS; i++)
		all[i] = (i + round) % NSLOTS;
	for (int i = 0; i < NRING; i++) {
		rslots[i] = (struct slot){
			.req = uev(KEVENT_UNOTIFY, base + 0x2000 + i, KEVENT_UNOTIFY_FIRED,
				   i % 3 ? 0 : KEVENT_REQ_ONESHOT),
			.tracked = true,
		};
		ring_all[i] = i;
	}

	q.fd = init_queue(0, 0);
	rq.fd = init_queue(RING_SIZE, O_CLOEXEC);
	if (q.fd < 0 || rq.fd < 0)
		return -1;
	ring = map_ring(rq.fd, true);
	if (ring == MAP_FAILED)
		ring = map_ring(rq.fd, false);
	if (ring == MAP_FAILED) {
		violation("mmap of the ring failed with %s without injection", errname(errno));
		return -1;
	}
	rq.ring = ring;

	ctl_batch(&q, KEVENT_CTL_ADD, all, NSLOTS, chunk);
	ctl_batch(&rq, KEVENT_CTL_ADD, ring_all, NRING, chunk);
	ctl_batch(&q, KEVENT_CTL_READY, track, NTRACK, chunk);
	ctl_batch(&rq, KEVENT_CTL_READY, ring_all, NRING, chunk);
	/* Consumed by the registration if there is one, else handled. */
	kill(getpid(), SIGUSR1);

	take_events(&q, 4 + round % 9, true, round & 1);
	take_events(&q, 8, true, false);
	ctl_batch(&q, KEVENT_CTL_MODIFY, even, NTRACK / 2, chunk);
	ctl_batch(&q, KEVENT_CTL_REMOVE, victims, NVICTIM, chunk);
	take_events(&q, 6, true, round & 2);

	ring_take(&rq, "ring");
	ring_commit(&rq, true);
	ring_wait(&rq, true);
	ring_take(&rq, "ring");
	ring_commit(&rq, true);

	/* Without injection: everything still pending comes out now. */
	for (int i = 0; i < 8; i++)
		if (!take_events(&q, 64, false, false))
			break;
	for (int i = 0; i < 2 * NRING; i++) {
		unsigned int before = rq.u;

		ring_take(&rq, "final ring");
		ring_commit(&rq, false);
		if (ring_wait(&rq, false) <= 0 && rq.u == before)
			break;
	}
	take_events(&rq, 64, false, false);
	verify(&q);
	verify(&rq);

	ctl_batch(&q, KEVENT_CTL_REMOVE, others, NOTHER, chunk);
	munmap(ring, KEVENT_RING_BYTES(RING_SIZE));
	close_queue(&q);
	close_queue(&rq);
	kmsg_drain();
	return 0;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1_handled++;
}

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);

	return v && *v ? atol(v) : def;
}

/* Prints the errno table: one line per call, a column per errno seen. */
static void print_table(struct __test_metadata *_metadata)
{
	bool col[MAX_ERRNO + 1] = { false };
	char line[512];
	int len;

	col[0] = true;
	for (int c = 0; c < NCALLS; c++)
		for (int e = 1; e <= MAX_ERRNO; e++)
			if (nerr[c][e])
				col[e] = true;
	len = snprintf(line, sizeof(line), "%-18s %8s", "errno table", "calls");
	for (int e = 0; e <= MAX_ERRNO; e++)
		if (col[e] && len < (int)sizeof(line))
			len += snprintf(line + len, sizeof(line) - len, " %8s", errname(e));
	TH_LOG("%s", line);
	for (int c = 0; c < NCALLS; c++) {
		len = snprintf(line, sizeof(line), "%-18s %8ld", call_name[c], ncalls[c]);
		for (int e = 0; e <= MAX_ERRNO; e++)
			if (col[e] && len < (int)sizeof(line))
				len += snprintf(line + len, sizeof(line) - len, " %8ld",
						nerr[c][e]);
		TH_LOG("%s", line);
	}
}

FIXTURE(fault) {
	/* Every knob of every kind as it was ("" where there is none). */
	char saved[FI_KINDS][NKNOBS][32];
};

FIXTURE_VARIANT(fault) {
	unsigned int kinds;
};

FIXTURE_VARIANT_ADD(fault, failslab) {
	.kinds = K_SLAB,
};

FIXTURE_VARIANT_ADD(fault, fail_page_alloc) {
	.kinds = K_PAGE,
};

FIXTURE_VARIANT_ADD(fault, fail_usercopy) {
	.kinds = K_COPY,
};

FIXTURE_VARIANT_ADD(fault, all) {
	.kinds = K_ALL,
};

/* Changes nothing: a setup that SKIPs or fails gets no teardown. */
FIXTURE_SETUP(fault)
{
	char path[128];

	for (int k = 0; k < FI_KINDS; k++) {
		snprintf(path, sizeof(path), FI_DEBUGFS "/%s", fi_name[k]);
		if (access(path, F_OK)) {
			if (variant->kinds & (1u << k))
				SKIP(return, "no %s: kernel without %s or CONFIG_FAULT_INJECTION_DEBUG_FS, or debugfs not mounted",
				     path, fi_config[k]);
			continue;
		}
		for (unsigned int i = 0; i < NKNOBS; i++) {
			if (!(knobs[i].kinds & (1u << k)))
				continue;
			fi_path(path, sizeof(path), k, knobs[i].file);
			if (read_str(path, self->saved[k][i], sizeof(self->saved[k][i])))
				SKIP(return, "cannot read %s", path);
		}
	}
	if (access(MAKE_IT_FAIL, W_OK))
		SKIP(return, "no " MAKE_IT_FAIL " (CONFIG_FAULT_INJECTION)");
}

/* In the parent: runs even when the test crashed. */
FIXTURE_TEARDOWN_PARENT(fault)
{
	char path[128];

	/* Injection off first, then every other knob as it was. */
	for (int k = 0; k < FI_KINDS; k++) {
		if (!self->saved[k][0][0])
			continue;
		fi_path(path, sizeof(path), k, "probability");
		if (write_str(path, "0"))
			TH_LOG("cannot switch %s off", path);
	}
	for (int k = 0; k < FI_KINDS; k++) {
		for (unsigned int i = 1; i < NKNOBS; i++) {
			if (!self->saved[k][i][0])
				continue;
			fi_path(path, sizeof(path), k, knobs[i].file);
			if (write_str(path, self->saved[k][i]))
				TH_LOG("cannot restore %s to %s", path, self->saved[k][i]);
		}
	}
}

TEST_F_TIMEOUT(fault, syscalls, 180)
{
	long seconds = env_long("KEVENT_FAULT_SECONDS", 15);
	long rounds = env_long("KEVENT_FAULT_ROUNDS", 3000);
	long prob = env_long("KEVENT_FAULT_PROBABILITY", 10);
	struct sigaction sa = { .sa_handler = on_usr1 };
	long injected[FI_KINDS] = { 0 }, total = 0, nlogged = 0;
	bool counted = true;
	uint64_t start, deadline;
	char buf[32];
	int round;

	md = _metadata;
	if (prob < 1 || prob > 100)
		prob = 10;
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	efd = eventfd(1, EFD_CLOEXEC);	/* readable: the poll registration fires */
	ASSERT_LE(0, efd);
	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	ASSERT_EQ(1, write(pfd[1], "x", 1));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(1, write(sv[1], "x", 1));
	mif_fd = open(MAKE_IT_FAIL, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, mif_fd);
	/* Counts only what this test makes the kernel log. */
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
	else
		TH_LOG("no /dev/kmsg (%s): faults are counted by the times files only",
		       strerror(errno));
	/* Nothing this test touches may fault a page in while injection is on. */
	ASSERT_EQ(0, mlockall(MCL_CURRENT | MCL_FUTURE));

	/* Every kind present off; the variant's configured, then switched on. */
	for (int k = 0; k < FI_KINDS; k++)
		if (self->saved[k][0][0])
			ASSERT_EQ(0, write_knob(k, "probability", "0"));
	for (int k = 0; k < FI_KINDS; k++) {
		if (!(variant->kinds & (1u << k)))
			continue;
		for (unsigned int i = 1; i < NKNOBS; i++) {
			if (!(knobs[i].kinds & (1u << k)))
				continue;
			ASSERT_EQ(0, write_knob(k, knobs[i].file, knobs[i].value)) {
				TH_LOG("cannot set %s/%s to %s", fi_name[k], knobs[i].file,
				       knobs[i].value);
			}
		}
	}
	snprintf(buf, sizeof(buf), "%ld", prob);
	for (int k = 0; k < FI_KINDS; k++)
		if (variant->kinds & (1u << k))
			ASSERT_EQ(0, write_knob(k, "probability", buf));
	TH_LOG("probability %ld%%, at most %ld rounds in %ld s", prob, rounds, seconds);

	start = now_ns();
	deadline = start + (uint64_t)seconds * 1000000000ull;
	for (round = 0; round < rounds && now_ns() < deadline; round++)
		ASSERT_EQ(0, one_round(round));

	for (int k = 0; k < FI_KINDS; k++) {
		char path[128];

		if (!(variant->kinds & (1u << k)))
			continue;
		ASSERT_EQ(0, write_knob(k, "probability", "0"));
		fi_path(path, sizeof(path), k, "times");
		if (read_str(path, buf, sizeof(buf))) {
			counted = false;
			continue;
		}
		injected[k] = TIMES0 - atol(buf);
		total += injected[k];
	}
	kmsg_drain();
	for (int k = 0; k < FI_KINDS; k++)
		nlogged += logged[k];
	TH_LOG("%d rounds in %.1f s", round, (now_ns() - start) / 1e9);
	TH_LOG("faults injected (times counters): failslab %ld, fail_page_alloc %ld, fail_usercopy %ld",
	       injected[FI_SLAB], injected[FI_PAGE], injected[FI_COPY]);
	TH_LOG("faults in the kernel log: failslab %ld, fail_page_alloc %ld, fail_usercopy %ld%s (allocations with __GFP_NOWARN, like the module's, are not logged)",
	       logged[FI_SLAB], logged[FI_PAGE], logged[FI_COPY],
	       kmsg_lost ? ", some records lost" : "");
	TH_LOG("UNOTIFY ids: %ld accepted (ADD and READY succeeded; each must come out once), %ld of unknown outcome came out, %ld did not; EFAULT: %ld kevent_get_events, %ld kevent_ctl; SIGUSR1 not consumed %d times",
	       accepted, maybe_seen, maybe_unseen, get_efault, ctl_efault, (int)usr1_handled);
	print_table(_metadata);
	if (nviol > MAX_REPORTS)
		TH_LOG("%ld violations, the first %d printed", nviol, MAX_REPORTS);
	EXPECT_EQ(0, nviol);
	if (!counted)
		total = nlogged;
	EXPECT_LT(0, total) {
		TH_LOG("no fault was injected: the test proved nothing");
	}
	EXPECT_LT(0, accepted) {
		TH_LOG("no event went through: the test proved nothing");
	}
	close(kmsg_fd);
	close(mif_fd);
	close(efd);
	close(pfd[0]);
	close(pfd[1]);
	close(sv[0]);
	close(sv[1]);
}

TEST_HARNESS_MAIN
