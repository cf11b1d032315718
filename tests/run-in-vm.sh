#!/bin/sh
# Runs inside the VM: every test program (*_test), each printing TAP. The
# host (scripts/check.sh) adds up the "# Totals" lines and checks each
# program's results against its plan.
cd /root

run() {
	name=$1
	shift
	echo "# selftests: kevent: $name"
	"./$name" "$@"
	echo "KEVENT-TEST: $name exit=$?"
}

# On a debug kernel, kmemleak checks the whole run: no automatic scans (they
# would report other code's boot-time leaks), a manual one at the end.
leaks=/sys/kernel/debug/kmemleak
mount -t debugfs none /sys/kernel/debug 2>/dev/null
if [ -e $leaks ]; then
	echo scan=off > $leaks
	echo clear > $leaks
else
	leaks=
fi

# Before the module is loaded: every system call is ENOSYS.
run enosys_test
insmod /lib/modules/kevent.ko || echo "KEVENT-TEST: insmod exit=1"
# Then every other test program, in name order: a new tests/NAME_test.c runs
# without being listed anywhere. (fault_test injects faults on the debug
# kernel only and skips elsewhere, saying why.)
for t in *_test; do
	[ "$t" = enosys_test ] || run "$t"
done

if [ -n "$leaks" ]; then
	echo "# selftests: kevent: kmemleak"
	# Queues are closed; kmemleak reports objects unreferenced for 5 s.
	sleep 6
	echo scan > $leaks
	echo scan > $leaks
	cat $leaks > /tmp/leaks
	n=$(grep -c kevent /tmp/leaks)
	if [ "$n" = 0 ]; then
		echo "ok 1 kmemleak: no unreferenced object allocated by kevent"
		echo "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0"
	else
		sed 's/^/# /' /tmp/leaks
		echo "not ok 1 kmemleak: $n report lines mention kevent"
		echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"
	fi
	echo "KEVENT-TEST: kmemleak exit=0"
fi
