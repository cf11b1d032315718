#!/usr/bin/env bash
# libevent's own tests on the kevent backend and on epoll, compared test by test.
#
#   scripts/libevent-regress.sh [KERNEL-BUILD-DIR]
#
# Builds libevent with the kevent backend (scripts/build-libevent.sh static),
# boots the VM once with the kevent module loaded and runs
# libevent/run-regress.sh in it (regress and the test-* programs, on kevent
# and then on epoll: about 3 minutes under TCG), then compares the two runs
# (libevent/compare-regress.py). Prints the comparison as a kselftest TAP
# block ("# selftests: kevent: libevent_regress", one line per test, a
# "# Totals:" line), also kept in out/libevent/regress-tap.txt for
# scripts/check.sh; the table of both results is out/libevent/regress-compare.txt
# and the guest's whole output out/vm/libevent.log.
#
# Exits 0 when every test that passes on epoll passes on kevent (known flaky
# tests aside), 1 when some do not, and the status of vm-run.sh when the VM
# run itself failed (70: kernel splat, 71: timeout, ...).
set -euo pipefail
source "$(dirname "$0")/env.sh"
kb=${1:-$("$KEVENT_TOP/scripts/build-kernel.sh")}
out=$KEVENT_TOP/out
ko=$KEVENT_TOP/rust/kevent.ko
[ -f "$ko" ] || "$KEVENT_TOP/scripts/build-module.sh" "$kb"
"$KEVENT_TOP/scripts/build-libevent.sh" static

mkdir -p "$out/vm" "$out/libevent"
log "running libevent's regress on kevent and on epoll in the VM (about 3 minutes)"
set +e
"$KEVENT_TOP/scripts/vm-run.sh" --kernel "$kb" --timeout 900 --log "$out/vm/libevent.log" \
	--module "$ko" --load \
	--files "$out/libevent/static/bin $KEVENT_TOP/libevent/run-regress.sh" \
	-- ./run-regress.sh > "$out/libevent/vm-output.txt" 2>&1
vm_rc=$?
set -e
"$KEVENT_TOP/libevent/compare-regress.py" "$out/vm/libevent.log" \
	"$out/libevent/regress-compare.txt" > "$out/libevent/regress-tap.txt"
cat "$out/libevent/regress-tap.txt"
if [ "$vm_rc" -ne 0 ]; then
	tail -n 20 "$out/libevent/vm-output.txt" | sed 's/^/#   /'
	echo "# libevent: the VM run failed (status $vm_rc): see $out/vm/libevent.log"
	exit "$vm_rc"
fi
grep -q '^# Totals: pass:[0-9]* fail:0 ' "$out/libevent/regress-tap.txt"
