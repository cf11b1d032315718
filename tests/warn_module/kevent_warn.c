// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only module: emits one kernel WARNING when loaded. The test suite
 * boots a VM that loads it and checks that the VM runner fails the run; it
 * is never loaded otherwise.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init kevent_warn_init(void)
{
	WARN(1, "kevent: deliberate warning to test the VM runner\n");
	return 0;
}
module_init(kevent_warn_init);

static void __exit kevent_warn_exit(void)
{
}
module_exit(kevent_warn_exit);

MODULE_DESCRIPTION("kevent test suite: proves the VM runner catches WARNINGs");
MODULE_LICENSE("GPL");
