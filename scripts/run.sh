#!/usr/bin/env bash
# The main job: build everything, boot the patched kernel with the module
# loaded, run the examples and the benchmarks, then aggregate the benchmark
# results on the host (tables and plots in out/results/).
#
#   scripts/run.sh        examples and benchmarks (make run)
#   scripts/run.sh bench  benchmarks only (make bench)
set -euo pipefail
source "$(dirname "$0")/env.sh"
what=${1:-all}
start=$(date +%s)
"$KEVENT_TOP/scripts/setup.sh"
kb=$("$KEVENT_TOP/scripts/build-kernel.sh")
"$KEVENT_TOP/scripts/build-module.sh" "$kb"
"$KEVENT_TOP/scripts/build-user.sh" "$kb" examples bench
# memcached on kevent: libevent with the kevent backend (shared), and the
# dynamically linked programs with their libraries for the guest.
"$KEVENT_TOP/scripts/build-libevent.sh" shared
"$KEVENT_TOP/scripts/build-guest-dyn.sh"
if [ "$what" = bench ]; then
	cmd=./run-bench.sh
	log "running the benchmarks in the VM (about 8 minutes; results stream below)"
else
	cmd=./run-examples.sh
	log "running the examples, then the benchmarks, in the VM (about 9 minutes)"
fi
vmlog=$KEVENT_TOP/out/vm/run.log
# Status 75: the emulator (multi-threaded TCG) ran a stale breakpoint of the
# kernel's static-key patching, which says nothing about kevent
# (scripts/vm-run.sh); the run is started again, from the beginning, at most
# twice. Any other failure ends the job.
attempts=3
rm -f "$vmlog".emulator-fault-*
for attempt in $(seq 1 $attempts); do
	rc=0
	"$KEVENT_TOP/scripts/vm-run.sh" --kernel "$kb" --module "$KEVENT_TOP/rust/kevent.ko" --load \
		--timeout 1500 --log "$vmlog" --tcg-threads multi --overlay "$KEVENT_TOP/out/guest-dyn" \
		--files "$KEVENT_TOP/out/examples/* $KEVENT_TOP/out/bench/*" -- "$cmd" || rc=$?
	[ "$rc" -eq 75 ] || break
	cp "$vmlog" "$vmlog.emulator-fault-$attempt"
	if [ "$attempt" -lt "$attempts" ]; then
		log "the emulator faulted (stale int3, not a kernel problem; log kept in" \
			"$vmlog.emulator-fault-$attempt): starting the run again ($((attempt + 1)) of $attempts)"
	else
		log "the emulator faulted in all $attempts runs; giving up (logs: $vmlog.emulator-fault-*)"
	fi
done
if grep -q '^BENCH ' "$vmlog"; then
	log "benchmark results (kevent ÷ epoll, ÷ io_uring, ÷ the best other baseline; medians of one run)"
	/usr/bin/python3 "$KEVENT_TOP/scripts/bench-report.py" "$vmlog" "$KEVENT_TOP/out/results"
fi
log "finished in $(( $(date +%s) - start )) s"
exit $rc
