#!/usr/bin/env bash
# Compare builds of the module on one benchmark, in one boot.
#
#   scripts/compare-modules.sh [options] A.ko B.ko [C.ko ...] -- BENCH [ARGS...]
#
#   --rounds N      rounds (default 6); each round runs BENCH once under every
#                   module in turn (insmod, BENCH, rmmod), so that all builds
#                   meet the same machine state and drift hits them alike
#   --kernel DIR    kernel build directory (default: vm-run.sh's, the release
#                   kernel); every .ko must be built for it
#   --env VAR=VAL   set for BENCH in the guest (repeatable), e.g.
#                   FILEIO_ONLY=kevent-aio_read-ring FILEIO_CASE=direct-qd128
#   --timeout S     limit of the VM run (default 1800)
#
# BENCH is a program of out/bench (scripts/build-user.sh KDIR bench). Its BENCH
# lines (bench/bench.h) are collected per module; the script prints, for every
# case, mechanism and metric, each module's median and its ratio to the first
# module's (the first round is left out of the medians: it warms the emulator),
# and the range of the rounds.
# Under TCG, one build against another differs by a few per cent from run to
# run: compare medians of many rounds, as Documentation/benchmarks.md explains.
set -euo pipefail
source "$(dirname "$0")/env.sh"

rounds=6 kdir_args=() envs=() timeout=1800 mods=()
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) rounds=$2; shift 2 ;;
	--kernel) kdir_args=(--kernel "$2"); shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--) shift; break ;;
	-*) die "compare-modules: unknown option $1" ;;
	*) mods+=("$1"); shift ;;
	esac
done
[ ${#mods[@]} -ge 2 ] || die "compare-modules: give at least two modules (.ko), then -- BENCH"
[ $# -ge 1 ] || die "compare-modules: no benchmark after --"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "compare-modules: --rounds wants a positive number"
bench=$KEVENT_TOP/out/bench/$1
shift
[ -x "$bench" ] || die "compare-modules: $bench not built (scripts/build-user.sh KDIR bench)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
files=("$bench")
labels=()
for i in "${!mods[@]}"; do
	[ -f "${mods[$i]}" ] || die "compare-modules: no module ${mods[$i]}"
	label=$(basename "${mods[$i]}" .ko)
	for l in "${labels[@]}"; do
		[ "$l" != "$label" ] || die "compare-modules: two modules named $label.ko"
	done
	labels+=("$label")
	cp "${mods[$i]}" "$work/$label.ko"
	files+=("$work/$label.ko")
done

# The guest's script: every round, every module, the benchmark; a failing
# benchmark ends the run with its output.
{
	echo 'set -e'
	for e in "${envs[@]}"; do
		[[ "$e" == *=* ]] || die "compare-modules: --env wants VAR=VALUE, not $e"
		printf 'export %q\n' "$e"
	done
	echo "for r in \$(seq $rounds); do"
	echo "  for m in ${labels[*]}; do"
	echo '    insmod ./$m.ko'
	printf '    if ! ./%q' "$(basename "$bench")"
	printf ' %q' "$@"
	echo ' > out.txt 2>&1; then cat out.txt; exit 1; fi'
	echo '    sed -n "s/^BENCH /BENCH-$r-$m /p" out.txt'
	echo '    rmmod kevent'
	echo '  done'
	echo 'done'
} > "$work/compare.sh"
files+=("$work/compare.sh")

log "compare-modules: ${labels[*]}, $rounds rounds of $(basename "$bench") $*, in one boot"
"$KEVENT_TOP/scripts/vm-run.sh" "${kdir_args[@]}" --timeout "$timeout" \
	--files "${files[*]}" -- sh ./compare.sh | tee "$work/log" | grep -v '^BENCH-' || true
vm_rc=${PIPESTATUS[0]}
[ "$vm_rc" -ne 75 ] || die "compare-modules: the emulator faulted (a stale int3 of multi-threaded TCG, not a kernel problem): run it again"
[ "$vm_rc" -eq 0 ] || die "compare-modules: the VM run failed (see above)"

python3 - "$work/log" "${labels[@]}" <<'EOF'
import collections, statistics, sys
log, labels = sys.argv[1], sys.argv[2:]
vals = collections.defaultdict(list)
for line in open(log, errors="replace"):
    parts = line.split()
    if len(parts) != 6 or not parts[0].startswith("BENCH-"):
        continue
    _, rnd, mod = parts[0].split("-", 2)
    if rnd == "1":
        continue  # the warm-up round
    vals[(parts[1], parts[2], parts[3], parts[4], mod)].append(float(parts[5]))
if not vals:
    sys.exit("compare-modules: no BENCH lines after the first round")
keys = sorted({k[:4] for k in vals})
print("benchmark case mechanism metric: " + " | ".join(
    f"{m} median (÷ {labels[0]}) [min–max]" for m in labels))
for k in keys:
    base = vals.get(k + (labels[0],))
    cells = []
    for m in labels:
        v = vals.get(k + (m,))
        if not v:
            cells.append(f"{m} -")
            continue
        med = statistics.median(v)
        ratio = f" ({med / statistics.median(base):.3f})" if base and statistics.median(base) else ""
        cells.append(f"{m} {med:,.6g}{ratio} [{min(v):,.4g}–{max(v):,.4g}]")
    print(" ".join(k) + ": " + " | ".join(cells))
EOF
