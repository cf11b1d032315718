#!/bin/sh
# Runs inside the VM: every test program in order, each printing TAP.
# The host (scripts/check.sh) adds up the "# Totals" lines.
cd /root

run() {
	name=$1
	shift
	echo "# selftests: kevent: $name"
	"./$name" "$@"
	echo "KEVENT-TEST: $name exit=$?"
}

# Before the module is loaded: every system call is ENOSYS.
run enosys_test
insmod /lib/modules/kevent.ko || echo "KEVENT-TEST: insmod exit=1"
run module_test
run init_test
run core_test
run ring_test
