#!/usr/bin/env bash
# Judge a guest's serial log for scripts/vm-run.sh: did the kernel report a
# problem?
#
#   scripts/vm-log-verdict.sh LOG EMULATION
#
# EMULATION is how the vCPUs ran: "tcg-multi" (one host thread each),
# "tcg-single" or "kvm". Exits with
#   0   no report in LOG
#   70  a kernel report (the lines that vm-run.sh's header lists), shown on
#       standard error
#   75  the only kind of report is an "Oops: int3" and EMULATION is tcg-multi:
#       QEMU 7.2's multi-threaded TCG executed a stale breakpoint of the
#       kernel's own static-key patching (text_poke_bp), which no real CPU
#       can do (Documentation/reliability.md). The run proves nothing either
#       way; callers may boot again.
# The first report decides: an int3 oops that follows another report is that
# report's consequence or a second problem, and the run fails with 70.
set -euo pipefail
log=${1:?usage: $0 LOG EMULATION}
emulation=${2:?usage: $0 LOG EMULATION}
[ -r "$log" ] || { echo "vm-log-verdict: cannot read $log" >&2; exit 2; }

splat='Oops|BUG:|WARNING:|Kernel panic|general protection fault|Unable to handle|KASAN:|UBSAN:|suspected memory leak|blocked for more than|rcu: INFO|soft lockup|hard LOCKUP|Call Trace:'
first=$(grep -m1 -E "$splat" "$log" || true)
[ -n "$first" ] || exit 0

if [ "$emulation" = tcg-multi ] && [[ "$first" =~ Oops:\ int3: ]]; then
	echo "vm-run: the kernel log shows an emulator fault, not a kernel problem:" >&2
	grep -n -A2 -m1 -E 'Oops: int3:|RIP:' "$log" | head -6 >&2
	echo "vm-run: multi-threaded TCG (QEMU 7.2) executed a stale int3 of the kernel's own" \
		"static-key patching; see Documentation/reliability.md (full log: $log)" >&2
	exit 75
fi
echo "vm-run: the kernel log shows a problem:" >&2
grep -nE -A3 "$splat" "$log" | head -40 >&2
echo "vm-run: FAILED (kernel splat; full log: $log)" >&2
exit 70
