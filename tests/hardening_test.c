// SPDX-License-Identifier: GPL-2.0
/*
 * Hardening: behaviour that keeps a watcher from hurting the process or the
 * kernel.
 *
 *  - Signals a watcher may never consume: faults raised by the CPU or the
 *    kernel (si_code > 0, SI_KERNEL included) and job control (SIGCONT, the
 *    stop signals); the same numbers sent by a process are consumed.
 *  - Signal registrations end at execve.
 *  - Queues watching queues: cycles and chains of more than
 *    KEVENT_MAX_NESTS links are ELOOP, concurrent opposite ADDs included.
 *  - Periodic timers below KEVENT_TIMER_MIN_PERIOD_NS are clamped.
 *  - kevent_ctl batches of up to KEVENT_MAX_CTL_BATCH entries.
 *
 * Everything that could hang (a swallowed fault re-runs the faulting
 * instruction forever, a swallowed SIGCONT leaves a process stopped) runs in
 * a child that the test waits for with a deadline and kills if it is late.
 * The other tests have short harness timeouts, which kill the test process
 * the same way.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kevent_test.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP	1	/* si_code of a SIGSYS from SECCOMP_RET_TRAP */
#endif

/* ---- helpers ---- */

/* Results of run_in_child() and wait_exit() other than an exit status. */
#define CHILD_TIMEOUT	(-1)	/* still running at the deadline: killed */
#define CHILD_LOST	(-2)	/* fork() or waitpid() failed */
#define CHILD_SIGNALED	1000	/* plus the number of the signal that killed it */

/* Exit codes of the children (distinct per failure; 4 is KSFT_SKIP). */
enum {
	CH_OK = 0,
	CH_SKIP = 4,
	CH_INIT = 10,
	CH_ADD,
	CH_SIGACTION,
	CH_SETUP,
	CH_NO_HANDLER,
	CH_HANDLER_COUNT,
	CH_SIGNO,
	CH_SICODE,
	CH_NO_EVENT,
	CH_BAD_EVENT,
	CH_HANDLER_RAN,
	CH_PENDING,
	CH_REMOVE,
	CH_EXEC,
	CH_SETPGID,
	CH_READY,
	CH_CMD,
	CH_HARVEST,
	CH_REPORT,
	/* Codes of the program after execve. */
	CH_X_FD = 40,
	CH_X_SIGACTION,
	CH_X_HANDLER,
	CH_X_EVENT,
	CH_X_REMOVE,
	CH_X_NEW_ADD,
	CH_X_NEW_CONSUME,
	CH_X_NEW_EVENT,
};

static const char *child_why(int st)
{
	static char buf[64];

	switch (st) {
	case CHILD_TIMEOUT:
		return "still running at the deadline (hung, or a fault was swallowed and re-raised forever): killed";
	case CHILD_LOST:
		return "fork() or waitpid() failed";
	case CH_OK:
		return "success";
	case CH_SKIP:
		return "skipped";
	case CH_INIT:
		return "kevent_init() failed";
	case CH_ADD:
		return "ADD of the signal watcher failed";
	case CH_SIGACTION:
		return "sigaction() failed";
	case CH_SETUP:
		return "setting up the fault failed";
	case CH_NO_HANDLER:
		return "the handler did not run: the signal was swallowed";
	case CH_HANDLER_COUNT:
		return "the handler ran more than once";
	case CH_SIGNO:
		return "the handler got another signal number";
	case CH_SICODE:
		return "the handler got another si_code";
	case CH_NO_EVENT:
		return "the watcher got no event";
	case CH_BAD_EVENT:
		return "the watcher's event has the wrong type, id, count or sender";
	case CH_HANDLER_RAN:
		return "the handler ran although the signal should have been consumed";
	case CH_PENDING:
		return "the signal stayed pending although it should have been consumed";
	case CH_REMOVE:
		return "REMOVE of a signal registration before execve failed";
	case CH_EXEC:
		return "execve() failed";
	case CH_SETPGID:
		return "setpgid() failed";
	case CH_READY:
		return "could not tell the parent it was ready";
	case CH_CMD:
		return "lost the parent's command pipe";
	case CH_HARVEST:
		return "harvest failed or found an unexpected event";
	case CH_REPORT:
		return "could not write the report";
	case CH_X_FD:
		return "after execve: the inherited queue does not answer kevent_ctl()";
	case CH_X_SIGACTION:
		return "after execve: sigaction() failed";
	case CH_X_HANDLER:
		return "after execve: the handler did not run (the old registration consumed the signal)";
	case CH_X_EVENT:
		return "after execve: the inherited queue got an event for the new program's signal";
	case CH_X_REMOVE:
		return "after execve: REMOVE of the old registration did not report ENOENT";
	case CH_X_NEW_ADD:
		return "after execve: ADD of a new signal registration failed";
	case CH_X_NEW_CONSUME:
		return "after execve: the new registration did not consume the signal";
	case CH_X_NEW_EVENT:
		return "after execve: the new registration got no event, or a wrong one";
	}
	if (st >= CHILD_SIGNALED)
		snprintf(buf, sizeof(buf), "killed by signal %d", st - CHILD_SIGNALED);
	else
		snprintf(buf, sizeof(buf), "exit code %d", st);
	return buf;
}

/* Kills @pid and reaps it, giving up after 2 s (a task stuck in the kernel). */
static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		usleep(10000);
	}
}

/*
 * Waits up to @ms for @pid to end. Returns its exit status, CHILD_SIGNALED +
 * the signal that killed it, or CHILD_TIMEOUT after killing it.
 */
static int wait_exit(pid_t pid, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return CHILD_LOST;
		if (now_ns() >= end) {
			kill_and_reap(pid);
			return CHILD_TIMEOUT;
		}
		usleep(5000);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return CHILD_SIGNALED + WTERMSIG(status);
}

/* Runs @fn(@arg) in a child with a deadline of @ms; see wait_exit(). */
static int run_in_child(int (*fn)(const void *), const void *arg, int ms)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return CHILD_LOST;
	if (pid == 0)
		_exit(fn(arg));
	return wait_exit(pid, ms);
}

/* Results of ctl_one() besides 0 (quiet), 1 (ready at ADD) and -errno. */
#define CTL_FAILED	(-100000)	/* minus errno: the call itself failed */
#define CTL_BAD_REPLY	100000		/* the entry came back malformed */

/*
 * One kevent_ctl() entry: 0 if done quietly, 1 if reported DONE (ready at
 * ADD), -errno if refused with BROKEN|DONE.
 */
static int ctl_one(int q, unsigned int cmd, struct ukevent e)
{
	int ret = ctl1(q, cmd, &e);

	if (ret < 0)
		return CTL_FAILED - errno;
	if (ret == 0)
		return 0;
	if (ret != 1)
		return CTL_BAD_REPLY;
	if (e.ret_flags == (KEVENT_RET_BROKEN | KEVENT_RET_DONE) && (int)e.ret_data[1] < 0)
		return (int)e.ret_data[1];
	if (!(e.ret_flags & KEVENT_RET_BROKEN) && (e.ret_flags & KEVENT_RET_DONE))
		return 1;
	return CTL_BAD_REPLY;
}

static uint64_t sig_id(int sig)
{
	return (uint64_t)sig | KEVENT_SIGNAL_NOMASK;
}

/* Registers a consuming (NOMASK) watcher of @sig on @q. */
static int watch_signal(int q, int sig)
{
	return ctl_one(q, KEVENT_CTL_ADD,
		       uev(KEVENT_SIGNAL, sig_id(sig), KEVENT_SIGNAL_DELIVERY, 0));
}

static int unwatch_signal(int q, int sig)
{
	return ctl_one(q, KEVENT_CTL_REMOVE, uev(KEVENT_SIGNAL, sig_id(sig), 0, 0));
}

static int is_signal_event(const struct ukevent *e, int sig)
{
	return e->type == KEVENT_SIGNAL && e->id.raw_u64 == sig_id(sig) && e->ret_flags == 0;
}

/* ---- faults raised by the CPU are delivered, and reported ---- */

static sigjmp_buf fault_env;
static volatile sig_atomic_t fault_count, fault_signo, fault_code;

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	fault_signo = sig;
	fault_code = si->si_code;
	fault_count++;
	siglongjmp(fault_env, 1);
}

static int catch_signal(int sig)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

/* What a trigger returns when it did not fault. */
enum { TRIG_RETURNED, TRIG_SETUP, TRIG_SKIP };

static int *volatile null_ptr;
static volatile int dividend = 1, divisor;
static volatile int quotient;

/* HLT in user mode: a general protection fault, SIGSEGV with SI_KERNEL. */
static int __attribute__((noinline)) trigger_hlt(void)
{
	asm volatile("hlt");
	return TRIG_RETURNED;
}

/* A store to address 0: a page fault, SIGSEGV with SEGV_MAPERR. */
static int __attribute__((noinline)) trigger_null_write(void)
{
	*null_ptr = 1;
	return TRIG_RETURNED;
}

/* UD2: an invalid opcode, SIGILL with ILL_ILLOPN. */
static int __attribute__((noinline)) trigger_ud2(void)
{
	asm volatile("ud2");
	return TRIG_RETURNED;
}

/* INT3: a breakpoint, SIGTRAP with SI_KERNEL on x86. Swallowed, it just returns. */
static int __attribute__((noinline)) trigger_int3(void)
{
	asm volatile("int3");
	return TRIG_RETURNED;
}

/* Integer division by zero: SIGFPE with FPE_INTDIV. */
static int __attribute__((noinline)) trigger_div0(void)
{
	quotient = dividend / divisor;
	return TRIG_RETURNED;
}

/* A shared mapping of a one-page file, touched on its second page: SIGBUS, BUS_ADRERR. */
static int __attribute__((noinline)) trigger_sigbus(void)
{
	char path[] = "/tmp/kevent-sigbus-XXXXXX";
	long page = sysconf(_SC_PAGESIZE);
	volatile char *p;
	int fd = mkstemp(path);

	if (fd < 0)
		return TRIG_SETUP;
	unlink(path);
	if (ftruncate(fd, page))
		return TRIG_SETUP;
	p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return TRIG_SETUP;
	p[0] = 1;
	p[page] = 1;
	return TRIG_RETURNED;
}

/* A system call refused by a seccomp filter with SECCOMP_RET_TRAP: SIGSYS, SYS_SECCOMP. */
static int __attribute__((noinline)) trigger_seccomp(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(filter) / sizeof(filter[0]),
		.filter = filter,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return TRIG_SETUP;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return errno == EINVAL ? TRIG_SKIP : TRIG_SETUP;
	syscall(__NR_getppid);
	return TRIG_RETURNED;
}

FIXTURE(fault) {
	int unused;
};

FIXTURE_VARIANT(fault) {
	int sig;
	int code;
	int (*trigger)(void);
};

FIXTURE_SETUP(fault)
{
}

FIXTURE_TEARDOWN(fault)
{
}

FIXTURE_VARIANT_ADD(fault, gp_hlt_sigsegv) {
	.sig = SIGSEGV, .code = SI_KERNEL, .trigger = trigger_hlt,
};

FIXTURE_VARIANT_ADD(fault, null_write_sigsegv) {
	.sig = SIGSEGV, .code = SEGV_MAPERR, .trigger = trigger_null_write,
};

FIXTURE_VARIANT_ADD(fault, ud2_sigill) {
	.sig = SIGILL, .code = ILL_ILLOPN, .trigger = trigger_ud2,
};

FIXTURE_VARIANT_ADD(fault, int3_sigtrap) {
	.sig = SIGTRAP, .code = SI_KERNEL, .trigger = trigger_int3,
};

FIXTURE_VARIANT_ADD(fault, div0_sigfpe) {
	.sig = SIGFPE, .code = FPE_INTDIV, .trigger = trigger_div0,
};

FIXTURE_VARIANT_ADD(fault, beyond_eof_sigbus) {
	.sig = SIGBUS, .code = BUS_ADRERR, .trigger = trigger_sigbus,
};

FIXTURE_VARIANT_ADD(fault, seccomp_sigsys) {
	.sig = SIGSYS, .code = SYS_SECCOMP, .trigger = trigger_seccomp,
};

/* In a child: watch the signal with NOMASK, fault, check the handler and the event. */
static int fault_child(const void *arg)
{
	const FIXTURE_VARIANT(fault) *c = arg;
	struct ukevent out[4];
	int q = kevent_init(0, 0), n;

	if (q < 0)
		return CH_INIT;
	if (watch_signal(q, c->sig))
		return CH_ADD;
	if (catch_signal(c->sig))
		return CH_SIGACTION;
	fault_count = 0;
	if (sigsetjmp(fault_env, 1) == 0) {
		switch (c->trigger()) {
		case TRIG_SKIP:
			return CH_SKIP;
		case TRIG_SETUP:
			return CH_SETUP;
		default:
			return CH_NO_HANDLER;
		}
	}
	if (fault_count != 1)
		return CH_HANDLER_COUNT;
	if (fault_signo != c->sig)
		return CH_SIGNO;
	if (fault_code != c->code)
		return CH_SICODE;
	n = harvest(q, 1, 4, out, 1000);
	if (n != 1)
		return CH_NO_EVENT;
	if (!is_signal_event(&out[0], c->sig) || out[0].ret_data[0] != 1)
		return CH_BAD_EVENT;
	return CH_OK;
}

/*
 * A fault raised by the CPU or the kernel, with a consuming (NOMASK) watcher
 * of its signal: the process's handler still runs, with the kernel's si_code,
 * and the watcher gets one event too. Swallowing the fault would re-run the
 * faulting instruction forever (or, for int3, skip the handler): the child
 * hangs or reports it, and is killed after 5 s.
 */
TEST_F(fault, delivered_and_reported)
{
	int st = run_in_child(fault_child, variant, 5000);

	if (st == CH_SKIP)
		SKIP(return, "seccomp filters are not available in this kernel");
	ASSERT_EQ(CH_OK, st) TH_LOG("signal %d, si_code %d: %s", variant->sig, variant->code,
				    child_why(st));
}

/* In a child: SIGSEGV sent three ways by the process itself, with a NOMASK watcher. */
static volatile sig_atomic_t was_pending;

static int sent_segv_child(const void *arg)
{
	union sigval v = { .sival_int = 7 };
	struct ukevent out[4];
	sigset_t set, pend;
	int q = kevent_init(0, 0), n;

	if (q < 0)
		return CH_INIT;
	if (watch_signal(q, SIGSEGV))
		return CH_ADD;
	if (catch_signal(SIGSEGV))
		return CH_SIGACTION;
	fault_count = 0;
	was_pending = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGSEGV);
	if (sigsetjmp(fault_env, 1) == 0) {
		/* Unblocked: a delivered signal would run the handler before kill() returns. */
		kill(getpid(), SIGSEGV);
		/* Blocked: a delivered signal would stay pending. */
		sigprocmask(SIG_BLOCK, &set, NULL);
		sigqueue(getpid(), SIGSEGV, v);
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSEGV);
		sigpending(&pend);
		was_pending = sigismember(&pend, SIGSEGV);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
	}
	if (fault_count)
		return CH_HANDLER_RAN;
	if (was_pending)
		return CH_PENDING;
	n = harvest(q, 1, 4, out, 1000);
	if (n != 1)
		return CH_NO_EVENT;
	if (!is_signal_event(&out[0], SIGSEGV) || out[0].ret_data[0] != 3 ||
	    (pid_t)out[0].ret_data[1] != getpid())
		return CH_BAD_EVENT;
	return CH_OK;
}

/*
 * The control case: SIGSEGV sent by a process (kill, sigqueue, tgkill:
 * si_code <= 0) with a NOMASK watcher is consumed: no handler runs, it is
 * not pending, and one event counts the three sends and names the sender.
 */
TEST(fault_signal_sent_by_a_process_is_consumed)
{
	int st = run_in_child(sent_segv_child, NULL, 5000);

	ASSERT_EQ(CH_OK, st) TH_LOG("%s", child_why(st));
}

/* ---- job control signals are never consumed ---- */

/*
 * Waits up to @ms for @pid to report a stop or continue selected by @flags.
 * Returns 1 with *status set, 0 on timeout, -1 if the child ended (reaped,
 * *status set) or waitpid() failed.
 */
static int wait_change(pid_t pid, int flags, int ms, int *status)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;

	for (;;) {
		pid_t r = waitpid(pid, status, flags | WNOHANG);

		if (r == pid)
			return WIFEXITED(*status) || WIFSIGNALED(*status) ? -1 : 1;
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ns() >= end)
			return 0;
		usleep(2000);
	}
}

/* Reads exactly @len bytes from @fd within @ms; 0 on success. */
static int read_within(int fd, void *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return -1;
	return read(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

/* The watched job control signals; the child reports its deliveries in this order. */
static const int job_signals[] = { SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU };
#define NJOBSIG	(int)(sizeof(job_signals) / sizeof(job_signals[0]))

/* What the parent sends, in order; each stop is followed by a SIGCONT. */
static const int job_steps[] = {
	SIGTSTP, SIGCONT, SIGTTIN, SIGCONT, SIGTTOU, SIGCONT, SIGSTOP, SIGCONT,
};
#define NJOBSTEP	(int)(sizeof(job_steps) / sizeof(job_steps[0]))

/*
 * The child: its own process group (not orphaned: its parent is in another
 * group of the same session, so SIGTSTP, SIGTTIN and SIGTTOU stop it), NOMASK
 * watchers of SIGCONT and the three catchable stop signals, then it sleeps in
 * read() until the parent asks for a report of the deliveries its queue saw.
 */
static int job_child(int ready_w, int cmd_r, int report_w)
{
	int counts[NJOBSIG] = { 0 };
	struct ukevent out[8];
	ssize_t r;
	char c;
	int q, n;

	if (setpgid(0, 0))
		return CH_SETPGID;
	q = kevent_init(0, 0);
	if (q < 0)
		return CH_INIT;
	for (int i = 0; i < NJOBSIG; i++)
		if (watch_signal(q, job_signals[i]))
			return CH_ADD;
	if (write(ready_w, "r", 1) != 1)
		return CH_READY;
	do
		r = read(cmd_r, &c, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		return CH_CMD;
	while ((n = harvest(q, 0, 8, out, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			int k = 0;

			while (k < NJOBSIG && !is_signal_event(&out[i], job_signals[k]))
				k++;
			if (k == NJOBSIG)
				return CH_HARVEST;
			counts[k] += out[i].ret_data[0];
		}
	}
	if (n < 0)
		return CH_HARVEST;
	if (write(report_w, counts, sizeof(counts)) != sizeof(counts))
		return CH_REPORT;
	return CH_OK;
}

/* Sends @sig to @pid and waits up to 5 s for the stop or continue it must cause. */
static int job_step(pid_t pid, int sig, int *status, int *reaped)
{
	int stop = sig != SIGCONT, r;

	if (kill(pid, sig))
		return -1;
	r = wait_change(pid, stop ? WUNTRACED : WCONTINUED, 5000, status);
	if (r < 0)
		*reaped = 1;
	if (r != 1)
		return -1;
	if (stop)
		return WIFSTOPPED(*status) && WSTOPSIG(*status) == sig ? 0 : -1;
	return WIFCONTINUED(*status) ? 0 : -1;
}

/* Job control from the parent's side; returns a J_* code, or J_STEP + the failed step. */
enum { J_OK, J_READY, J_CMD, J_REPORT, J_STEP };

static int job_parent(pid_t pid, int ready_r, int cmd_w, int report_r,
		      int counts[NJOBSIG], int *status, int *reaped)
{
	char c;

	if (read_within(ready_r, &c, 1, 5000))
		return J_READY;
	for (int i = 0; i < NJOBSTEP; i++)
		if (job_step(pid, job_steps[i], status, reaped))
			return J_STEP + i;
	if (write(cmd_w, "h", 1) != 1)
		return J_CMD;
	if (read_within(report_r, counts, NJOBSIG * sizeof(int), 5000))
		return J_REPORT;
	return J_OK;
}

static const char *job_why(int err)
{
	static char buf[96];

	switch (err) {
	case J_OK:
		return "success";
	case J_READY:
		return "the child never said it was ready";
	case J_CMD:
		return "could not ask the child for its report";
	case J_REPORT:
		return "no report from the child within 5 s";
	}
	snprintf(buf, sizeof(buf), "step %d: %s did not %s the child within 5 s",
		 err - J_STEP + 1, strsignal(job_steps[err - J_STEP]),
		 job_steps[err - J_STEP] == SIGCONT ? "continue" : "stop");
	return buf;
}

/*
 * SIGTSTP, SIGTTIN, SIGTTOU and SIGSTOP stop a process and SIGCONT continues
 * it even when the process has consuming (NOMASK) watchers of SIGCONT and the
 * catchable stop signals: the parent sees WIFSTOPPED with the right signal
 * and WIFCONTINUED after each, within 5 s. The watchers still see the
 * deliveries: SIGCONT four times, each catchable stop signal once.
 */
TEST(job_control_signals_stop_and_continue)
{
	int ready[2], cmd[2], rep[2], counts[NJOBSIG], status = 0, reaped = 0, err, st;
	pid_t pid;

	for (int i = 0; i < NJOBSIG; i++)
		counts[i] = -1;
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(cmd));
	ASSERT_EQ(0, pipe(rep));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(ready[0]);
		close(cmd[1]);
		close(rep[0]);
		_exit(job_child(ready[1], cmd[0], rep[1]));
	}
	close(ready[1]);
	close(cmd[0]);
	close(rep[1]);
	err = job_parent(pid, ready[0], cmd[1], rep[0], counts, &status, &reaped);
	if (err == J_OK)
		st = wait_exit(pid, 5000);
	else if (reaped)
		st = WIFEXITED(status) ? WEXITSTATUS(status) : CHILD_SIGNALED + WTERMSIG(status);
	else
		st = wait_exit(pid, 0);	/* kills it, stopped or not */
	close(ready[0]);
	close(cmd[1]);
	close(rep[0]);
	ASSERT_EQ(J_OK, err) TH_LOG("%s; child: %s", job_why(err),
				    reaped ? child_why(st) : "killed by the test");
	ASSERT_EQ(CH_OK, st) TH_LOG("child: %s", child_why(st));
	TH_LOG("deliveries seen: SIGCONT %d, SIGTSTP %d, SIGTTIN %d, SIGTTOU %d",
	       counts[0], counts[1], counts[2], counts[3]);
	EXPECT_LE(1, counts[0]);
	EXPECT_GE(4, counts[0]);
	for (int i = 1; i < NJOBSIG; i++) {
		EXPECT_EQ(1, counts[i]) TH_LOG("%s", strsignal(job_signals[i]));
	}
}

/* ---- execve ends signal registrations ---- */

#define EXEC_ENV "KEVENT_EXEC_CHILD"

static volatile sig_atomic_t usr1_count;

static void usr1_handler(int sig)
{
	usr1_count++;
}

/*
 * The program after execve, with the inherited queue @q: SIGUSR1 reaches its
 * handler, the queue gets no event, the old registration is gone (ENOENT),
 * and a registration the new program makes works.
 */
static int exec_checks(int q)
{
	struct ukevent out[4];
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = usr1_handler;
	sigemptyset(&sa.sa_mask);
	if (fcntl(q, F_GETFD) < 0)
		return CH_X_FD;
	if (sigaction(SIGUSR1, &sa, NULL))
		return CH_X_SIGACTION;
	usr1_count = 0;
	raise(SIGUSR1);
	if (usr1_count != 1)
		return CH_X_HANDLER;
	if (harvest(q, 1, 4, out, 200) != 0)
		return CH_X_EVENT;
	switch (unwatch_signal(q, SIGUSR1)) {
	case -ENOENT:
		break;
	case CTL_FAILED - EBADF:
	case CTL_FAILED - EINVAL:
		return CH_X_FD;
	default:
		return CH_X_REMOVE;
	}
	if (watch_signal(q, SIGUSR1))
		return CH_X_NEW_ADD;
	raise(SIGUSR1);
	if (usr1_count != 1)
		return CH_X_NEW_CONSUME;
	if (harvest(q, 1, 4, out, 1000) != 1 || !is_signal_event(&out[0], SIGUSR1) ||
	    out[0].ret_data[0] != 1 || (pid_t)out[0].ret_data[1] != getpid())
		return CH_X_NEW_EVENT;
	return CH_OK;
}

/* Runs before the harness's main(): the re-executed test binary does its checks only. */
static void __attribute__((constructor)) exec_child_main(void)
{
	const char *s = getenv(EXEC_ENV);

	if (s)
		_exit(exec_checks(atoi(s)));
}

/*
 * In a child: a queue without O_CLOEXEC and NOMASK watchers of SIGUSR1 and
 * SIGUSR2; SIGUSR1 is consumed and reported; then re-execute this binary
 * with the queue's fd in the environment.
 */
static int exec_child(const void *arg)
{
	char env[64], *argv[] = { "hardening_test", NULL }, *envp[] = { env, NULL };
	struct ukevent out[4];
	int q = kevent_init(0, 0);

	if (q < 0)
		return CH_INIT;
	if (watch_signal(q, SIGUSR1) || watch_signal(q, SIGUSR2))
		return CH_ADD;
	signal(SIGUSR1, usr1_handler);
	usr1_count = 0;
	raise(SIGUSR1);
	if (usr1_count)
		return CH_HANDLER_RAN;
	if (harvest(q, 1, 4, out, 1000) != 1)
		return CH_NO_EVENT;
	if (!is_signal_event(&out[0], SIGUSR1) || out[0].ret_data[0] != 1 ||
	    (pid_t)out[0].ret_data[1] != getpid())
		return CH_BAD_EVENT;
	/* The key the program after execve removes is a valid one. */
	if (unwatch_signal(q, SIGUSR2))
		return CH_REMOVE;
	signal(SIGUSR1, SIG_DFL);
	snprintf(env, sizeof(env), EXEC_ENV "=%d", q);
	execve("/proc/self/exe", argv, envp);
	return CH_EXEC;
}

/*
 * Signal registrations belong to the program that made them: after execve
 * the inherited queue (no O_CLOEXEC) stays usable, but the old NOMASK watcher
 * of SIGUSR1 neither consumes nor observes the new program's SIGUSR1, and
 * REMOVE of it says ENOENT.
 */
TEST(execve_ends_signal_registrations)
{
	int st = run_in_child(exec_child, NULL, 10000);

	ASSERT_EQ(CH_OK, st) TH_LOG("%s", child_why(st));
}

/* ---- queues watching queues ---- */

#define NQ 8

FIXTURE(nest) {
	int q[NQ];
};

FIXTURE_SETUP(nest)
{
	for (int i = 0; i < NQ; i++)
		self->q[i] = -1;
}

FIXTURE_TEARDOWN(nest)
{
	for (int i = 0; i < NQ; i++)
		if (self->q[i] >= 0)
			close(self->q[i]);
}

/* A new queue with user event 1 registered. */
static int new_queue(void)
{
	struct ukevent e = uev(KEVENT_UNOTIFY, 1, 0, 0);
	int q = kevent_init(0, 0);

	if (q >= 0 && ctl1(q, KEVENT_CTL_ADD, &e)) {
		close(q);
		return -1;
	}
	return q;
}

/*
 * @parent watches queue @child. ALWAYS_QUEUE keeps the registration even if
 * @child happens to be ready, so an accepted ADD always returns 0.
 */
static int watch(int parent, int child)
{
	return ctl_one(parent, KEVENT_CTL_ADD,
		       uev(KEVENT_POLL, child, POLLIN, KEVENT_REQ_ALWAYS_QUEUE));
}

static int unwatch(int parent, int child)
{
	return ctl_one(parent, KEVENT_CTL_REMOVE, uev(KEVENT_POLL, child, 0, 0));
}

static int is_poll_event(const struct ukevent *e, int fd)
{
	return e->type == KEVENT_POLL && e->id.raw_u64 == (uint64_t)fd &&
	       (e->ret_data[0] & POLLIN) && !(e->ret_flags & KEVENT_RET_BROKEN);
}

static int is_user_event(const struct ukevent *e)
{
	return e->type == KEVENT_UNOTIFY && e->id.raw_u64 == 1;
}

/*
 * A watches B, so B watching A would close a cycle: ELOOP (and a queue
 * watching itself stays EINVAL). Events fired in both queues then harvest
 * normally (the original bug hung the guest here): A sees its own event and
 * a POLL event for B, B only its own. The refused link left nothing behind:
 * once A stops watching B, B may watch A, and then A may not watch B.
 */
TEST_F_TIMEOUT(nest, two_queue_cycle_is_eloop, 10)
{
	struct ukevent out[8];
	int a, b, n;

	a = self->q[0] = new_queue();
	b = self->q[1] = new_queue();
	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	EXPECT_EQ(-EINVAL, watch(a, a));
	ASSERT_EQ(0, watch(a, b));
	ASSERT_EQ(-ELOOP, watch(b, a));

	ASSERT_EQ(0, fire(a, 1));
	ASSERT_EQ(0, fire(b, 1));
	n = harvest(a, 2, 8, out, 1000);
	ASSERT_EQ(2, n);
	EXPECT_TRUE((is_user_event(&out[0]) && is_poll_event(&out[1], b)) ||
		    (is_user_event(&out[1]) && is_poll_event(&out[0], b)));
	n = harvest(b, 1, 8, out, 1000);
	ASSERT_EQ(1, n);
	EXPECT_TRUE(is_user_event(&out[0]));
	EXPECT_EQ(0, harvest(b, 1, 8, out, 100));

	ASSERT_EQ(0, unwatch(a, b));
	ASSERT_EQ(0, watch(b, a));
	EXPECT_EQ(-ELOOP, watch(a, b));
	ASSERT_EQ(0, fire(a, 1));
	n = harvest(b, 1, 8, out, 1000);
	ASSERT_EQ(1, n);
	EXPECT_TRUE(is_poll_event(&out[0], a));
}

/*
 * A watches B watches C: C watching A (or B), or B watching A, is a cycle:
 * ELOOP. An event in C climbs to A. Closing B removes both of its links, so
 * C may then watch A.
 */
TEST_F_TIMEOUT(nest, three_queue_cycle_is_eloop, 10)
{
	struct ukevent out[8];
	int a, b, c;

	a = self->q[0] = new_queue();
	b = self->q[1] = new_queue();
	c = self->q[2] = new_queue();
	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_LE(0, c);
	ASSERT_EQ(0, watch(a, b));
	ASSERT_EQ(0, watch(b, c));
	EXPECT_EQ(-ELOOP, watch(c, a));
	EXPECT_EQ(-ELOOP, watch(c, b));
	EXPECT_EQ(-ELOOP, watch(b, a));

	ASSERT_EQ(0, fire(c, 1));
	ASSERT_EQ(1, harvest(a, 1, 8, out, 1000));
	EXPECT_TRUE(is_poll_event(&out[0], b));
	ASSERT_EQ(1, harvest(b, 1, 8, out, 1000));
	EXPECT_TRUE(is_poll_event(&out[0], c));
	ASSERT_EQ(1, harvest(c, 1, 8, out, 1000));
	EXPECT_TRUE(is_user_event(&out[0]));
	EXPECT_EQ(0, harvest(c, 1, 8, out, 100));

	close(b);
	self->q[1] = -1;
	EXPECT_EQ(0, watch(c, a));
	EXPECT_EQ(-ELOOP, watch(a, c));
}

/*
 * Q4 -> Q3 -> Q2 -> Q1 -> Q0 is KEVENT_MAX_NESTS (4) links: accepted. A link
 * above (Q5 watches Q4) or below (Q0 watches N) is ELOOP, and so is Q0
 * watching Q4 (a cycle); a short side branch (Q3 watches N) fits. Removing
 * the bottom link makes room at the top; closing a queue in the middle
 * removes its links and makes room again.
 */
TEST_F_TIMEOUT(nest, chain_of_four_links_is_the_limit, 10)
{
	int *q = self->q, n;

	for (int i = 0; i < 7; i++) {
		q[i] = new_queue();
		ASSERT_LE(0, q[i]);
	}
	n = q[6];
	for (int i = 0; i < KEVENT_MAX_NESTS; i++) {
		ASSERT_EQ(0, watch(q[i + 1], q[i])) TH_LOG("link %d", i + 1);
	}
	EXPECT_EQ(-ELOOP, watch(q[5], q[4]));
	EXPECT_EQ(-ELOOP, watch(q[0], n));
	EXPECT_EQ(-ELOOP, watch(q[0], q[4]));
	EXPECT_EQ(0, watch(q[3], n));
	EXPECT_EQ(0, unwatch(q[3], n));

	ASSERT_EQ(0, unwatch(q[1], q[0]));
	EXPECT_EQ(0, watch(q[5], q[4]));	/* Q5 -> Q4 -> Q3 -> Q2 -> Q1 */
	EXPECT_EQ(0, watch(q[0], n));		/* Q0 -> N */
	EXPECT_EQ(-ELOOP, watch(q[1], q[0]));	/* would be 6 links */

	close(q[3]);
	q[3] = -1;
	EXPECT_EQ(0, watch(q[1], q[0]));	/* Q2 -> Q1 -> Q0 -> N */
}

/*
 * Two chains of two links each, A2 -> A1 -> A0 and B2 -> B1 -> B0: A0
 * watching B2 would make a 5-link chain (ELOOP), A0 watching B1 makes one of
 * exactly 4. After that, a link anywhere that lengthens the longest chain
 * through the junction is ELOOP (below B0, above A2, B2 watching A2).
 * Removing the junction makes room again: B0 and A0 may both watch N, but A0
 * watching B2 is still ELOOP (6 links now).
 */
TEST_F_TIMEOUT(nest, joined_chains_count_the_whole_path, 10)
{
	int *q = self->q, a0, a1, a2, b0, b1, b2, n;

	for (int i = 0; i < 7; i++) {
		q[i] = new_queue();
		ASSERT_LE(0, q[i]);
	}
	a0 = q[0], a1 = q[1], a2 = q[2], b0 = q[3], b1 = q[4], b2 = q[5], n = q[6];
	ASSERT_EQ(0, watch(a1, a0));
	ASSERT_EQ(0, watch(a2, a1));
	ASSERT_EQ(0, watch(b1, b0));
	ASSERT_EQ(0, watch(b2, b1));
	EXPECT_EQ(-ELOOP, watch(a0, b2));
	ASSERT_EQ(0, watch(a0, b1));
	EXPECT_EQ(-ELOOP, watch(b0, n));
	EXPECT_EQ(-ELOOP, watch(n, a2));
	EXPECT_EQ(-ELOOP, watch(b2, a2));
	ASSERT_EQ(0, unwatch(a0, b1));
	EXPECT_EQ(0, watch(b0, n));		/* B2 -> B1 -> B0 -> N */
	EXPECT_EQ(0, watch(a0, n));		/* A2 -> A1 -> A0 -> N too */
	EXPECT_EQ(-ELOOP, watch(a0, b2));	/* would be 6 links */
}

/*
 * A user event fired at the bottom of a 4-link chain reaches the top: Q4
 * reports a POLL event for Q3 within 1 s, and every level below reports one
 * for the queue it watches.
 */
TEST_F_TIMEOUT(nest, wakeup_climbs_four_levels, 10)
{
	struct ukevent out[8];
	int *q = self->q;

	for (int i = 0; i <= KEVENT_MAX_NESTS; i++) {
		q[i] = new_queue();
		ASSERT_LE(0, q[i]);
	}
	for (int i = 0; i < KEVENT_MAX_NESTS; i++) {
		ASSERT_EQ(0, watch(q[i + 1], q[i]));
	}
	ASSERT_EQ(0, fire(q[0], 1));
	for (int i = KEVENT_MAX_NESTS; i > 0; i--) {
		ASSERT_EQ(1, harvest(q[i], 1, 8, out, 1000)) TH_LOG("level %d", i);
		EXPECT_TRUE(is_poll_event(&out[0], q[i - 1])) TH_LOG("level %d", i);
	}
	ASSERT_EQ(1, harvest(q[0], 1, 8, out, 1000));
	EXPECT_TRUE(is_user_event(&out[0]));
}

struct racer {
	pthread_barrier_t *start;
	int parent;
	int child;
	int ret;
};

static void *race_watch(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->start);
	r->ret = watch(r->parent, r->child);
	return NULL;
}

/*
 * Two threads add opposite links between two fresh queues at the same time
 * (A watches B, B watches A), 200 rounds: each ADD is accepted or ELOOP,
 * never both accepted, and the link that won is really in place (the
 * opposite ADD, retried, is still ELOOP).
 */
TEST_F_TIMEOUT(nest, opposite_adds_race, 60)
{
	int both = 0, one = 0, neither = 0;
	pthread_barrier_t start;

	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, 2));
	for (int round = 0; round < 200; round++) {
		int a = self->q[0] = kevent_init(0, 0), b = self->q[1] = kevent_init(0, 0);
		struct racer r[2] = {
			{ .start = &start, .parent = a, .child = b },
			{ .start = &start, .parent = b, .child = a },
		};
		pthread_t t[2];

		ASSERT_LE(0, a);
		ASSERT_LE(0, b);
		ASSERT_EQ(0, pthread_create(&t[0], NULL, race_watch, &r[0]));
		ASSERT_EQ(0, pthread_create(&t[1], NULL, race_watch, &r[1]));
		pthread_join(t[0], NULL);
		pthread_join(t[1], NULL);
		ASSERT_TRUE(r[0].ret == 0 || r[0].ret == -ELOOP)
			TH_LOG("round %d: A watches B: %d", round, r[0].ret);
		ASSERT_TRUE(r[1].ret == 0 || r[1].ret == -ELOOP)
			TH_LOG("round %d: B watches A: %d", round, r[1].ret);
		if (!r[0].ret && !r[1].ret)
			both++;
		else if (!r[0].ret || !r[1].ret)
			one++;
		else
			neither++;
		if (!r[0].ret) {
			EXPECT_EQ(-ELOOP, watch(b, a)) TH_LOG("round %d", round);
		}
		if (!r[1].ret) {
			EXPECT_EQ(-ELOOP, watch(a, b)) TH_LOG("round %d", round);
		}
		close(a);
		close(b);
		self->q[0] = self->q[1] = -1;
	}
	pthread_barrier_destroy(&start);
	TH_LOG("200 rounds: %d with one link accepted, %d with none, %d with both",
	       one, neither, both);
	EXPECT_EQ(0, both);
}

/* ---- timers ---- */

FIXTURE(queue) {
	int fd;
};

FIXTURE_SETUP(queue)
{
	self->fd = kevent_init(0, 0);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(queue)
{
	close(self->fd);
}

/*
 * Periodic timers of 1 ns and 50 us are clamped to KEVENT_TIMER_MIN_PERIOD_NS
 * (100 us): over about 300 ms the expirations reported add up to at least 1
 * and at most elapsed / 100 us, plus 10 % and a little slack.
 */
TEST_F_TIMEOUT(queue, periodic_timer_below_minimum_is_clamped, 20)
{
	static const uint32_t periods[] = { 1, KEVENT_TIMER_MIN_PERIOD_NS / 2 };
	struct ukevent out[8];

	for (unsigned int p = 0; p < sizeof(periods) / sizeof(periods[0]); p++) {
		struct ukevent e = timer_uev(0, periods[p], 0);
		uint64_t t0, elapsed, total = 0, limit;
		int events = 0;

		t0 = now_ns();
		ASSERT_EQ(0, ctl_one(self->fd, KEVENT_CTL_ADD, e));
		while (now_ns() - t0 < 300000000ull) {
			int n = harvest(self->fd, 1, 8, out, 50);

			ASSERT_LE(0, n);
			for (int i = 0; i < n; i++) {
				EXPECT_EQ(KEVENT_TIMER, out[i].type);
				total += out[i].ret_data[0];
				events++;
			}
		}
		ASSERT_EQ(0, ctl_one(self->fd, KEVENT_CTL_REMOVE, e));
		elapsed = now_ns() - t0;
		limit = elapsed / KEVENT_TIMER_MIN_PERIOD_NS * 11 / 10 + 10;
		TH_LOG("period %u ns: %llu expirations in %d events over %llu us (limit %llu)",
		       periods[p], (unsigned long long)total, events,
		       (unsigned long long)(elapsed / 1000), (unsigned long long)limit);
		EXPECT_LE(1, total);
		EXPECT_GE(limit, total);
		harvest(self->fd, 0, 8, out, 0);
	}
}

/*
 * A one-shot timer of 1 ns fires exactly once (whether reported at ADD or
 * harvested), then is gone: REMOVE says ENOENT.
 */
TEST_F_TIMEOUT(queue, oneshot_timer_of_one_ns_fires_once, 10)
{
	struct ukevent e = timer_uev(0, 1, KEVENT_REQ_ONESHOT), out[8];
	unsigned int fired = 0, events = 0;
	uint64_t t0 = now_ns();
	int ret = ctl1(self->fd, KEVENT_CTL_ADD, &e);

	if (ret == 1) {
		/* Reported ready at ADD: that is its one firing. */
		ASSERT_EQ(KEVENT_RET_DONE, e.ret_flags);
		events++;
		fired++;
	} else {
		ASSERT_EQ(0, ret);
	}
	while (now_ns() - t0 < 300000000ull) {
		int n = harvest(self->fd, 1, 8, out, 50);

		ASSERT_LE(0, n);
		for (int i = 0; i < n; i++) {
			EXPECT_EQ(KEVENT_TIMER, out[i].type);
			fired += out[i].ret_data[0];
			events++;
		}
	}
	EXPECT_EQ(1, events);
	EXPECT_EQ(1, fired);
	EXPECT_EQ(-ENOENT, ctl_one(self->fd, KEVENT_CTL_REMOVE,
				   timer_uev(0, 1, KEVENT_REQ_ONESHOT)));
}

/* ---- large kevent_ctl batches ---- */

static struct ukevent harvest_buf[4096];

/* User events with ids @first, @first + 1, ... */
static void fill_user_events(struct ukevent *b, int n, uint64_t first)
{
	for (int i = 0; i < n; i++)
		b[i] = uev(KEVENT_UNOTIFY, first + i, 0, 0);
}

/*
 * Harvests until @want events came or nothing more comes within 1 s; marks
 * each id (1..@max) in @seen. Returns the number of events, and in *@bad
 * those that were not user events with an id in range or were duplicates.
 */
static int harvest_ids(int fd, int want, unsigned char *seen, uint64_t max, int *bad)
{
	int got = 0;

	*bad = 0;
	while (got < want) {
		int n = harvest(fd, 1, 4096, harvest_buf, 1000);

		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			uint64_t id = harvest_buf[i].id.raw_u64;

			if (harvest_buf[i].type != KEVENT_UNOTIFY || id < 1 || id > max ||
			    harvest_buf[i].ret_data[0] != 1 || seen[id - 1]++)
				(*bad)++;
		}
		got += n;
	}
	return got;
}

/*
 * KEVENT_MAX_CTL_BATCH user events: one more entry than that is EINVAL; one
 * ADD of all of them returns 0, one READY of all returns 0, harvesting (4096
 * at a time) returns every id exactly once, one REMOVE of all returns 0, and
 * a second one returns KEVENT_MAX_CTL_BATCH with every entry BROKEN|DONE,
 * -ENOENT, in the original order.
 */
TEST_F_TIMEOUT(queue, max_batch_add_ready_harvest_remove, 300)
{
	const int n = KEVENT_MAX_CTL_BATCH;
	size_t bytes = (size_t)(n + 1) * sizeof(struct ukevent);
	struct ukevent *b = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *seen = calloc(n, 1);
	int got, bad = 0, missing = 0;

	ASSERT_NE(MAP_FAILED, b);
	ASSERT_NE(NULL, seen);
	fill_user_events(b, n + 1, 1);
	EXPECT_EQ(-1, kevent_ctl(self->fd, KEVENT_CTL_ADD, n + 1, b));
	EXPECT_EQ(EINVAL, errno);

	fill_user_events(b, n, 1);
	ASSERT_EQ(0, kevent_ctl(self->fd, KEVENT_CTL_ADD, n, b));
	fill_user_events(b, n, 1);
	ASSERT_EQ(0, kevent_ctl(self->fd, KEVENT_CTL_READY, n, b));
	got = harvest_ids(self->fd, n, seen, n, &bad);
	for (int i = 0; i < n; i++)
		missing += !seen[i];
	EXPECT_EQ(n, got);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, missing);
	EXPECT_EQ(0, harvest(self->fd, 0, 4096, harvest_buf, 0));

	fill_user_events(b, n, 1);
	ASSERT_EQ(0, kevent_ctl(self->fd, KEVENT_CTL_REMOVE, n, b));
	fill_user_events(b, n, 1);
	ASSERT_EQ(n, kevent_ctl(self->fd, KEVENT_CTL_REMOVE, n, b));
	bad = 0;
	for (int i = 0; i < n; i++)
		if (b[i].ret_flags != (KEVENT_RET_BROKEN | KEVENT_RET_DONE) ||
		    (int)b[i].ret_data[1] != -ENOENT || b[i].id.raw_u64 != (uint64_t)i + 1)
			bad++;
	EXPECT_EQ(0, bad);
	free(seen);
	munmap(b, bytes);
}

/*
 * One ADD of @n user events (ids 1..n) where every 7th entry is bad, in
 * turn: an unknown request flag (EINVAL), the id of a registration made
 * before (EEXIST), the id of the entry just before it in the batch (EEXIST).
 */
static void mixed_batch(struct __test_metadata *_metadata, int fd, int n)
{
	const uint64_t old_id = 1ull << 40;
	struct ukevent *b = calloc(n, sizeof(*b)), *g = calloc(n, sizeof(*g));
	struct ukevent *e = calloc(n, sizeof(*e)), pre = uev(KEVENT_UNOTIFY, old_id, 0, 0);
	unsigned char *seen = calloc(n, 1);
	int nbad = 0, ngood = 0, ninval = 0, wrong = 0, got, bad, missing = 0;

	ASSERT_NE(NULL, b);
	ASSERT_NE(NULL, g);
	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, seen);
	ASSERT_EQ(0, ctl1(fd, KEVENT_CTL_ADD, &pre));
	/* e[] gets the expected front of the array, g[] the good entries. */
	for (int i = 0; i < n; i++) {
		b[i] = uev(KEVENT_UNOTIFY, i + 1, 0, 0);
		if (i % 7 != 6) {
			g[ngood++] = b[i];
			continue;
		}
		switch (i / 7 % 3) {
		case 0:
			b[i].req_flags = 0x80;
			b[i].ret_data[1] = -EINVAL;
			break;
		case 1:
			b[i].id.raw_u64 = old_id;
			b[i].ret_data[1] = -EEXIST;
			break;
		default:
			b[i].id.raw_u64 = i;
			b[i].ret_data[1] = -EEXIST;
			break;
		}
		e[nbad++] = b[i];
		b[i].ret_data[1] = 0;
	}
	ASSERT_EQ(nbad, kevent_ctl(fd, KEVENT_CTL_ADD, n, b));
	for (int k = 0; k < nbad; k++) {
		if (b[k].ret_flags == (KEVENT_RET_BROKEN | KEVENT_RET_DONE) &&
		    b[k].ret_data[1] == e[k].ret_data[1] && b[k].id.raw_u64 == e[k].id.raw_u64 &&
		    b[k].req_flags == e[k].req_flags && b[k].user == e[k].user)
			continue;
		if (!wrong++)
			TH_LOG("entry %d of %d: id %llu flags %#x ret_flags %#x error %d; want id %llu flags %#x error %d",
			       k, nbad, (unsigned long long)b[k].id.raw_u64, b[k].req_flags,
			       b[k].ret_flags, (int)b[k].ret_data[1],
			       (unsigned long long)e[k].id.raw_u64, e[k].req_flags,
			       (int)e[k].ret_data[1]);
	}
	EXPECT_EQ(0, wrong);

	/* The good entries are registered: READY and harvest show each once. */
	ASSERT_EQ(0, kevent_ctl(fd, KEVENT_CTL_READY, ngood, g));
	got = harvest_ids(fd, ngood, seen, n, &bad);
	for (int i = 0; i < n; i++)
		missing += (i % 7 != 6) != !!seen[i];
	EXPECT_EQ(ngood, got);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, missing);

	/* The entries with an unknown flag were not registered. */
	for (int k = 0; k < nbad; k++)
		if (e[k].req_flags)
			e[ninval++] = uev(KEVENT_UNOTIFY, e[k].id.raw_u64, 0, 0);
	EXPECT_EQ(ninval, kevent_ctl(fd, KEVENT_CTL_REMOVE, ninval, e));
	ASSERT_EQ(0, kevent_ctl(fd, KEVENT_CTL_REMOVE, ngood, g));
	EXPECT_EQ(0, ctl1(fd, KEVENT_CTL_REMOVE, &pre));
	free(seen);
	free(e);
	free(g);
	free(b);
}

/*
 * A batch of 1000 ADDs with every 7th entry bad returns the number of bad
 * entries; they come first, in their original order, each BROKEN|DONE with
 * its own -errno; the good ones are registered.
 */
TEST_F_TIMEOUT(queue, mixed_batch_of_1000, 60)
{
	mixed_batch(_metadata, self->fd, 1000);
}

/* The same with 20000 entries, so that errors come from every internal chunk. */
TEST_F_TIMEOUT(queue, mixed_batch_of_20000, 120)
{
	mixed_batch(_metadata, self->fd, 20000);
}

TEST_HARNESS_MAIN
