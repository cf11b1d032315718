// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only module: provokes exactly one kernel report when loaded, so that
 * the test suite can prove the VM runner (scripts/vm-run.sh) fails a run on
 * it. It is never loaded otherwise. The parameter what= chooses the report:
 *
 *   warn        a WARNING ("WARNING: ... kevent: deliberate warning ...");
 *               every kernel has it (the default)
 *   softlockup  "BUG: soft lockup": spins with preemption disabled until the
 *               soft-lockup detector reports it (it taints the kernel with
 *               TAINT_SOFTLOCKUP), at most 15 s. The caller lowers
 *               /proc/sys/kernel/watchdog_thresh to 1 first (report after
 *               2 * thresh seconds); needs CONFIG_SOFTLOCKUP_DETECTOR
 *   hung        "INFO: task insmod:PID blocked for more than N seconds":
 *               sleeps in TASK_UNINTERRUPTIBLE for 8 s. The caller sets
 *               /proc/sys/kernel/hung_task_check_interval_secs to 1,
 *               hung_task_warnings to 1 (one report, not one a second) and
 *               hung_task_timeout_secs to 1 or 2, in that order (writing the
 *               timeout wakes khungtaskd); needs CONFIG_DETECT_HUNG_TASK
 *   ubsan       "UBSAN: array-index-out-of-bounds": reads past an array
 *               member of a larger struct through a volatile index, so the
 *               memory read is valid and KASAN stays quiet; needs
 *               CONFIG_UBSAN_BOUNDS
 *
 * A kernel without the detector loads the module without any report.
 */
#include <linux/bug.h>
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/panic.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/string.h>

static char *what = "warn";
module_param(what, charp, 0444);
MODULE_PARM_DESC(what, "the report to provoke: warn (default), softlockup, hung or ubsan");

/* Long enough for 2 * watchdog_thresh (1) s, short of an RCU stall (21 s). */
#define KEVENT_WARN_SPIN_MAX_MS 15000
#define KEVENT_WARN_HUNG_SECS 8

static void kevent_warn_softlockup(void)
{
	unsigned int ms;

	preempt_disable();
	for (ms = 0; ms < KEVENT_WARN_SPIN_MAX_MS && !test_taint(TAINT_SOFTLOCKUP); ms += 10)
		mdelay(10);
	preempt_enable();
	/* Words of the runner's splat regex stay out of this line. */
	pr_info("kevent_warn: spun %u ms with preemption disabled, taint L %s\n",
		ms, test_taint(TAINT_SOFTLOCKUP) ? "set" : "not set");
}

static void kevent_warn_hung(void)
{
	schedule_timeout_uninterruptible(KEVENT_WARN_HUNG_SECS * HZ);
	pr_info("kevent_warn: slept %d s uninterruptibly\n", KEVENT_WARN_HUNG_SECS);
}

struct kevent_warn_pair {
	int first[4];
	int second[4];
};

static struct kevent_warn_pair kevent_warn_pair = { .second = { 42 } };

static void kevent_warn_ubsan(void)
{
	volatile int i = ARRAY_SIZE(kevent_warn_pair.first);

	/* In bounds of the struct (second[0]), out of bounds of first[]. */
	pr_info("kevent_warn: first[%d] = %d\n", i, kevent_warn_pair.first[i]);
}

static int __init kevent_warn_init(void)
{
	if (!strcmp(what, "warn")) {
		WARN(1, "kevent: deliberate warning to test the VM runner\n");
	} else if (!strcmp(what, "softlockup")) {
		kevent_warn_softlockup();
	} else if (!strcmp(what, "hung")) {
		kevent_warn_hung();
	} else if (!strcmp(what, "ubsan")) {
		kevent_warn_ubsan();
	} else {
		pr_err("kevent_warn: unknown what=%s (warn, softlockup, hung or ubsan)\n", what);
		return -EINVAL;
	}
	return 0;
}
module_init(kevent_warn_init);

static void __exit kevent_warn_exit(void)
{
}
module_exit(kevent_warn_exit);

MODULE_DESCRIPTION("kevent test suite: proves the VM runner catches each detector's report");
MODULE_LICENSE("GPL");
