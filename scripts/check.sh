#!/usr/bin/env bash
# The whole test suite: install what is missing, build the patched kernel
# (or reuse the cached one), the module and the tests, run host-side checks,
# boot the VM and run every test program in it. Ends with the line
# "N passed, N failed" and exits non-zero if anything failed.
#
#   scripts/check.sh [release|debug]
set -euo pipefail
source "$(dirname "$0")/env.sh"
variant=${1:-release}
start=$(date +%s)
out=$KEVENT_TOP/out
mkdir -p "$out"

"$KEVENT_TOP/scripts/setup.sh"
kb=$("$KEVENT_TOP/scripts/build-kernel.sh" "$variant")
"$KEVENT_TOP/scripts/build-module.sh" "$kb"
"$KEVENT_TOP/scripts/build-user.sh" "$kb" tests

passed=0 failed=0
host_check() {
	local name=$1
	shift
	if "$@" > "$out/host-check.log" 2>&1; then
		echo "ok - host: $name"
		passed=$((passed + 1))
	else
		echo "not ok - host: $name"
		sed 's/^/#   /' "$out/host-check.log"
		failed=$((failed + 1))
	fi
}

patches_apply() {
	local tmp tarball files
	tmp=$(mktemp -d)
	tarball=$(ls /usr/src/linux-source-6.12.tar.*)
	files=$(sed -n 's#^--- a/\(.*\)#linux-source-6.12/\1#p' "$KEVENT_TOP"/patches/*.patch | sort -u)
	# shellcheck disable=SC2086
	tar -C "$tmp" -xf "$tarball" $files
	# In order, as the build applies them: --check each, then apply it for the next one.
	local p rc=0
	for p in "$KEVENT_TOP"/patches/*.patch; do
		(cd "$tmp/linux-source-6.12" && git apply --check "$p" && git apply "$p") || { rc=1; break; }
		echo "applies: $(basename "$p")"
	done
	rm -rf "$tmp"
	return $rc
}

# The series carries the ABI header (a new file in patch 0001): it must be
# byte for byte include/uapi/linux/kevent.h, the single source of truth.
uapi_in_series() {
	awk '/^diff --git / { take = ($3 == "a/include/uapi/linux/kevent.h") }
	     take && /^@@ / { body = 1; next }
	     take && body && /^\+/ { print substr($0, 2) }' "$KEVENT_TOP"/patches/*.patch |
		cmp - "$KEVENT_TOP/include/uapi/linux/kevent.h"
}

checkpatch_clean() {
	local p rc=0
	for p in "$KEVENT_TOP"/patches/*.patch; do
		# ENOSYS is what a system call returns when it does not exist; without the
		# module that is exactly the case (Documentation/hooks.md), so that one
		# checkpatch rule is ignored.
		"$kb/../src/scripts/checkpatch.pl" --no-tree --strict --quiet --ignore ENOSYS "$p" || rc=1
	done
	return $rc
}

uapi_matches_syscall_table() {
	local nr name
	while read -r nr _ name _; do
		grep -qE "#define __NR_$name[[:space:]]+$nr\$" "$KEVENT_TOP/include/uapi/linux/kevent.h" ||
			{ echo "__NR_$name is not $nr in kevent.h"; return 1; }
	done < <(grep -E "^4(6[3-9]|7[01])[[:space:]]" "$kb/../src/arch/x86/entry/syscalls/syscall_64.tbl")
}

echo "TAP version 13"
host_check "patches apply to the pristine Debian linux-source-6.12 (git apply --check)" patches_apply
host_check "the series' include/uapi/linux/kevent.h is byte-identical to the repository's" uapi_in_series
host_check "patches are checkpatch-clean (--strict, ENOSYS rule ignored: see hooks.md)" checkpatch_clean
host_check "UAPI syscall numbers match the syscall table" uapi_matches_syscall_table

rust_formatted() {
	# The kernel's rustfmt settings; any rustfmt will do (none is needed to build).
	if ! command -v rustfmt >/dev/null; then
		echo "rustfmt is not installed"
		return 1
	fi
	rustfmt --edition 2021 --config-path "$kb/../src/.rustfmt.toml" --check \
		"$KEVENT_TOP/rust/kevent.rs"
}
host_check "the module is rustfmt-clean (kernel .rustfmt.toml)" rust_formatted

# The module's layering (rust/kevent.rs, "Layout"): checked, not just written down.
compat_is_a_leaf() {
	# compat/ may name only its own paths ($crate::compat::..., super::...).
	! grep -rnE '(^|[^$])crate::' "$KEVENT_TOP/rust/compat" | grep -v 'crate::compat::'
}
bindings_only_in_compat() {
	! grep -rn 'bindings::' "$KEVENT_TOP/rust" --include='*.rs' | grep -v '^[^:]*/rust/compat/'
}
core_names_no_event_type() {
	# Event types are told apart only by the sources (the dispatch table in sources/mod.rs).
	! grep -nE 'TYPE_[A-Z]' "$KEVENT_TOP"/rust/*.rs
}
lock_order_documented_once() {
	# The numbered lock order of rust/kevent.rs, line by line, in Documentation/semantics.md.
	python3 - "$KEVENT_TOP/rust/kevent.rs" "$KEVENT_TOP/Documentation/semantics.md" <<'PY'
import re, sys
src = open(sys.argv[1]).read().split("//! # Lock order", 1)[1]
items, cur = [], None
for line in src.splitlines()[1:]:
    if not line.startswith("//!"):
        break
    text = line[3:].strip()
    if re.match(r"\d\. ", text):
        cur = text
        items.append(cur)
    elif cur is not None and text and not re.match(r"\d\. ", text) and line.startswith("//!    "):
        items[-1] += " " + text
    else:
        cur = None
doc = " ".join(open(sys.argv[2]).read().split())
missing = [i for i in items if " ".join(i.split()) not in doc]
for i in missing:
    print("not in semantics.md:", i)
sys.exit(1 if missing or not items else 0)
PY
}
host_check "rust/compat/ imports nothing from the rest of the module" compat_is_a_leaf
host_check "kernel::bindings is used only in rust/compat/" bindings_only_in_compat
host_check "the module core never tells event types apart (only rust/sources/ does)" \
	core_names_no_event_type
host_check "Documentation/semantics.md states the lock order of rust/kevent.rs" \
	lock_order_documented_once
host_check "every hook site is a static-key NOP without the module" \
	"$KEVENT_TOP/scripts/check-static-keys.py" "$kb/vmlinux"

# `make install` gives a usable library: a program built from the installed
# headers with `pkg-config kevent` links (shared: the soname; static: the
# archive) and runs against the installed copy.
install_is_usable() {
	local tmp rc=0
	tmp=$(mktemp -d)
	make -s -C "$KEVENT_TOP" install PREFIX=/usr/local DESTDIR="$tmp/root" || { rm -rf "$tmp"; return 1; }
	cat > "$tmp/v.c" <<'C'
#include <stdio.h>
#include <libkevent.h>
int main(void)
{
	struct ukevent e;

	kevent_prep_user(&e, 7, KEVENT_REQ_ONESHOT, 9);
	printf("%s %d\n", kevent_version(), kevent_check_version(LIBKEVENT_VERSION_MAJOR, 0) &&
	       e.type == KEVENT_UNOTIFY);
	return 0;
}
C
	export PKG_CONFIG_PATH=$tmp/root/usr/local/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$tmp/root
	# shellcheck disable=SC2046
	gcc -o "$tmp/v" "$tmp/v.c" $(pkg-config --cflags --libs kevent) &&
	gcc -static -o "$tmp/v-static" "$tmp/v.c" $(pkg-config --cflags --libs --static kevent) || rc=1
	if [ $rc = 0 ]; then
		readelf -d "$tmp/v" | grep -q 'NEEDED.*\[libkevent.so.1\]' || { echo "not linked to libkevent.so.1"; rc=1; }
		[ "$(LD_LIBRARY_PATH=$tmp/root/usr/local/lib "$tmp/v")" = "$(cat "$KEVENT_TOP/out/lib/version") 1" ] ||
			{ echo "the shared program printed the wrong version"; rc=1; }
		[ "$("$tmp/v-static")" = "$(cat "$KEVENT_TOP/out/lib/version") 1" ] ||
			{ echo "the static program printed the wrong version"; rc=1; }
	fi
	unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
	rm -rf "$tmp"
	return $rc
}
host_check "make install: headers, libkevent (shared, static) and kevent.pc work for a program" \
	install_is_usable
# The manual (man/, Documentation/userspace-api.md): lint-clean, and complete.
man_lint_clean() (
	if ! command -v mandoc >/dev/null; then
		echo "mandoc is not installed"
		exit 1
	fi
	cd "$KEVENT_TOP/man"
	# Run from man/ so that the one-line ".so man3/page.3" links resolve. mandoc
	# warns about every .so (it prefers hard links); those links are the
	# man-pages convention, so that one message is the only one tolerated.
	out=$(mandoc -Tlint -W warning man2/*.2 man3/*.3 man7/*.7 2>&1 |
		grep -v ': WARNING: \.so is fragile, better use ln(1): so man[0-9]/[a-z0-9_]*\.[0-9]$' || true)
	[ -z "$out" ] || { echo "$out"; exit 1; }
)
man_pages_complete() (
	cd "$KEVENT_TOP"
	missing=0 n=0
	# Every system call of the ABI header, plus aio_write (472: specified, not implemented yet).
	for name in $(sed -nE 's/^#define[[:space:]]+__NR_([a-z0-9_]+)[[:space:]].*/\1/p' \
			include/uapi/linux/kevent.h) aio_write; do
		n=$((n + 1))
		[ -f "man/man2/$name.2" ] || { echo "no man page man/man2/$name.2"; missing=1; }
	done
	# Every function of libkevent.h (prototypes, static inline functions) and its
	# function-like macros (kevent_queue_for_each).
	for name in $({ sed -nE 's/^[a-z][^(=;]*[ *](kevent_[a-z0-9_]+)\(.*/\1/p' include/libkevent.h
			sed -nE 's/^(kevent_[a-z0-9_]+)\(.*/\1/p' include/libkevent.h
			sed -nE 's/^#define[[:space:]]+(kevent_[a-z0-9_]+)\(.*/\1/p' include/libkevent.h
		} | sort -u); do
		n=$((n + 1))
		[ -f "man/man3/$name.3" ] || { echo "no man page man/man3/$name.3"; missing=1; }
	done
	# A link page is one ".so manN/page.N" line naming a page that exists.
	for f in man/man[237]/*.[237]; do
		target=$(sed -n 's/^\.so \(man[237]\/[a-z0-9_]*\.[237]\)$/\1/p' "$f")
		if [ -n "$target" ] && [ ! -f "man/$target" ]; then
			echo "$f links to missing $target"
			missing=1
		fi
	done
	[ "$n" -gt 40 ] || { echo "only $n names found: is the extraction broken?"; missing=1; }
	exit $missing
)
host_check "man pages are lint-clean (mandoc -Tlint)" man_lint_clean
host_check "every system call and libkevent function has a man page or a .so link in man/" \
	man_pages_complete

# The runner must fail a run whose kernel log shows a report of any detector
# the kernel has. The test-only module provokes exactly one report, chosen by
# what=; SETUP lowers the detector's sysctls first. The run must end with 70
# (kernel splat), and the report's line must appear exactly once in the dmesg
# the guest prints at the end (which it prints only if it did not crash).
runner_catches_warning() {
	local what=$1 want=$2 setup=${3:-} rc=0 log=$out/vm/selftest-$1.log n
	"$KEVENT_TOP/scripts/vm-run.sh" --kernel "$kb" --timeout 240 --log "$log" \
		--module "$KEVENT_TOP/tests/warn_module/kevent_warn.ko" -- \
		sh -c "set -e; $setup insmod /lib/modules/kevent_warn.ko what=$what" || rc=$?
	[ "$rc" -eq 70 ] || { echo "vm-run exited $rc, want 70 (kernel splat)"; return 1; }
	n=$(sed -n '/^KEVENT-DMESG-BEGIN/,/^KEVENT-DMESG-END/p' "$log" | grep -cE "$want" || true)
	[ "$n" -eq 1 ] || { echo "want one '$want' in the guest's dmesg, found $n (log: $log)"; return 1; }
}
# Status 75 (boot again) is only for a lone int3 oops under multi-threaded TCG,
# where the emulator runs stale breakpoints of static-key patching; judged on
# logs made here, one per case (scripts/vm-log-verdict.sh).
verdict_cases() {
	local dir rc want emulation
	dir=$(mktemp -d)
	printf 'booting\nKEVENT-VM: exit 0\n' > "$dir/clean"
	printf '[ 0.77] Oops: int3: 0000 [#1] SMP\n[ 0.77] RIP: 0010:sched_clock_cpu+0xa/0x180\n[ 0.77] Call Trace:\n[ 0.77] Kernel panic - not syncing: Fatal exception in interrupt\n' > "$dir/int3"
	printf '[ 3.1] WARNING: CPU: 0 PID: 1 at kevent_warn.c:10\n[ 3.2] Oops: int3: 0000 [#1] SMP\n' > "$dir/warn-int3"
	printf '[ 3.1] BUG: kernel NULL pointer dereference\n[ 3.2] Oops: 0002 [#1] SMP\n' > "$dir/bug"
	while read -r log emulation want; do
		rc=0
		"$KEVENT_TOP/scripts/vm-log-verdict.sh" "$dir/$log" "$emulation" 2>/dev/null || rc=$?
		echo "$log under $emulation: $rc (want $want)"
		[ "$rc" -eq "$want" ] || { rm -rf "$dir"; return 1; }
	done <<-CASES
	clean tcg-multi 0
	int3 tcg-multi 75
	int3 tcg-single 70
	int3 kvm 70
	warn-int3 tcg-multi 70
	bug tcg-multi 70
	CASES
	rm -rf "$dir"
}
host_check "the VM runner tells a stale int3 of multi-threaded TCG (boot again) from a kernel report (fail)" \
	verdict_cases
if [ "$variant" = release ]; then
	host_check "the VM runner fails a run on a WARNING (release kernel: it has no lockup, hung-task or UBSAN detector)" \
		runner_catches_warning warn "WARNING: .*kevent_warn\\.c"
else
	host_check "the VM runner fails a run on a WARNING" \
		runner_catches_warning warn "WARNING: .*kevent_warn\\.c"
	host_check "the VM runner fails a run on a soft lockup (watchdog_thresh 1)" \
		runner_catches_warning softlockup "BUG: soft lockup - CPU#[0-9]+ stuck for [0-9]+s! \\[insmod:" \
		"echo 1 > /proc/sys/kernel/watchdog_thresh;"
	host_check "the VM runner fails a run on a hung task (hung_task_timeout_secs 2)" \
		runner_catches_warning hung "INFO: task insmod:[0-9]+ blocked for more than [0-9]+ seconds" \
		"echo 1 > /proc/sys/kernel/hung_task_check_interval_secs; echo 1 > /proc/sys/kernel/hung_task_warnings; echo 2 > /proc/sys/kernel/hung_task_timeout_secs;"
	host_check "the VM runner fails a run on a UBSAN report" \
		runner_catches_warning ubsan "UBSAN: array-index-out-of-bounds in .*kevent_warn\\.c"
fi

# The fuzzer makes 3 threads x this many calls: over a million on the debug kernel.
# A fixed seed keeps runs reproducible; set KEVENT_FUZZ_SEED to explore others.
fuzz_calls=100000
[ "$variant" = release ] || fuzz_calls=340000
# The debug suite takes about 35 minutes under TCG (the release one 8):
# its limit leaves room for a slower machine, not for a hang.
vm_limit=1500
[ "$variant" = release ] || vm_limit=3600
fuzz_seed=${KEVENT_FUZZ_SEED:-0x6b6576656e74}
log "running the test programs in the VM"
set +e
"$KEVENT_TOP/scripts/vm-run.sh" --kernel "$kb" --timeout $vm_limit --log "$out/vm/check.log" \
	--module "$KEVENT_TOP/rust/kevent.ko" --files "$out/tests/*" -- \
	env KEVENT_FUZZ_CALLS=$fuzz_calls KEVENT_FUZZ_SEED=$fuzz_seed ./run-in-vm.sh
vm_rc=$?
set -e

# Release only: libevent's own regress suite on the kevent backend and on
# epoll, in a second (short) VM run, compared test by test; its TAP block
# (out/libevent/regress-tap.txt) is added up with the main run's below.
tap_files=("$out/vm/check.log")
libevent_rc=0
if [ "$variant" = release ]; then
	rm -f "$out/libevent/regress-tap.txt"
	set +e
	"$KEVENT_TOP/scripts/libevent-regress.sh" "$kb"
	libevent_rc=$?
	set -e
	if [ -f "$out/libevent/regress-tap.txt" ]; then
		tap_files+=("$out/libevent/regress-tap.txt")
	elif [ "$libevent_rc" -eq 1 ]; then
		libevent_rc=2	# it stopped before comparing anything (a build failure)
	fi
fi

# Add up the kselftest totals. A program that exits non-zero without totals,
# or reports fewer results than its TAP plan ("1..N") declares, is a failure;
# skipped tests are counted apart and listed with their reasons.
summary=$out/vm/summary.txt
awk -v summary="$summary" '
	/^# selftests: kevent: / { prog = $4; plan[prog] = -1; results[prog] = 0; next }
	/^1\.\.[0-9]+$/ && prog != "" { plan[prog] = substr($0, 4) + 0; next }
	/^(ok|not ok) [0-9]+ / && prog != "" {
		results[prog]++
		if ($0 ~ / # SKIP/) { line = $0; sub(/^ok [0-9]+ /, "", line); print "# skipped: " prog ": " line > summary }
		next
	}
	/^# Totals: / { for (i = 3; i <= NF; i++) { split($i, kv, ":"); t[kv[1]] += kv[2] }; seen[prog] = 1; next }
	/^KEVENT-TEST: / {
		split($3, e, "=")
		if (e[2] != 0 && !seen[$2]) {
			t["error"]++; print "not ok - " $2 " exited with status " e[2] " before its totals" > summary
		} else if (plan[$2] > results[$2]) {
			t["error"]++; print "not ok - " $2 " ran " results[$2] " of the " plan[$2] " tests it declares" > summary
		}
	}
	END { printf "%d %d %d\n", t["pass"] + t["xfail"], t["fail"] + t["error"] + t["xpass"], t["skip"] }
' "${tap_files[@]}" > "$out/vm/totals.txt"
read -r p f s < "$out/vm/totals.txt"
[ -f "$summary" ] && cat "$summary" && rm -f "$summary"
passed=$((passed + p))
failed=$((failed + f))
if [ "$vm_rc" -ne 0 ] && [ "$f" -eq 0 ]; then
	echo "not ok - the VM run failed (status $vm_rc) with no failing test: see $out/vm/check.log"
	failed=$((failed + 1))
fi
if [ "$libevent_rc" -ne 0 ] && [ "$libevent_rc" -ne 1 ]; then
	# 1 is failing tests, already counted; anything else is the run itself.
	echo "not ok - libevent's regress run failed (status $libevent_rc): see $out/vm/libevent.log"
	failed=$((failed + 1))
fi
log "test suite finished in $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed, $s skipped"
[ "$failed" -eq 0 ]
