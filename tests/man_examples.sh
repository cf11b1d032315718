#!/bin/sh
# Runs inside the VM (installed as out/tests/man_examples_test by
# scripts/build-user.sh): every example program of the man pages, built
# from the page's source, must print exactly the run the page shows
# (NAME.expected, from the page too). TAP, counted like the C tests.
cd /root
n=0 fail=0
for exp in man-example-*.expected; do
	[ -e "$exp" ] || continue
	n=$((n + 1))
done
echo "TAP version 13"
echo "1..$n"
i=0
for exp in man-example-*.expected; do
	[ -e "$exp" ] || continue
	i=$((i + 1))
	prog=${exp%.expected}
	timeout 20 "./$prog" > "/tmp/$prog.out" 2>&1
	rc=$?
	if [ $rc = 0 ] && cmp -s "/tmp/$prog.out" "$exp"; then
		echo "ok $i ${prog#man-example-}: prints what its man page shows"
	else
		echo "# exit status $rc; got:"
		sed 's/^/#   /' "/tmp/$prog.out"
		echo "# want:"
		sed 's/^/#   /' "$exp"
		echo "not ok $i ${prog#man-example-}: prints what its man page shows"
		fail=$((fail + 1))
	fi
done
echo "# Totals: pass:$((n - fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail = 0 ]
