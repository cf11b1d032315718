#!/usr/bin/env bash
# Boot the patched kernel in QEMU with an initramfs and run a command in it.
#
#   scripts/vm-run.sh [options] [--] COMMAND...
#
#   --kernel DIR     kernel build directory (default: build/cache the release kernel)
#   --files "A B"    host files to copy into the guest's working directory /root
#   --module KO      a module to copy to /lib/modules in the guest (repeatable)
#   --overlay DIR    a directory tree to copy over the guest's root (repeatable;
#                    scripts/build-guest-dyn.sh makes one for dynamic programs)
#   --load           insmod every --module before running COMMAND
#   --timeout S      kill the VM after S seconds (default 600)
#   --log FILE       where to keep the full serial log (default out/vm/serial.log)
#   --append ARGS    extra kernel command-line arguments
#   --smp N, --mem M CPUs and memory of the guest (default 2, 2G)
#   --tcg-threads single|multi
#                    how TCG runs the vCPUs (default: single, or $KEVENT_TCG_THREADS):
#                    "single" interleaves them on one host thread, "multi" gives
#                    each its own (faster; the benchmarks use it). Under QEMU
#                    7.2 "multi" occasionally runs a stale int3 of the kernel's
#                    own static-key patching (an "Oops: int3" in a hook site
#                    while another vCPU loads or unloads the module: 1 of 4
#                    runs of module_test's rmmod race, 0 of 6 with "single";
#                    also at boot, in sched_clock_cpu: 2 of 27 boots), so the
#                    test suite uses "single" (Documentation/reliability.md),
#                    and such a run ends with status 75 below.
#
# Every guest gets a scratch disk: a fresh ext4 file system on a virtio-blk
# device (512 MiB, made on the host with mkfs.ext4), mounted at /mnt/disk
# (KEVENT_DISK in the guest's environment). File AIO tests and benchmarks use
# it for O_DIRECT I/O that completes from the device's interrupt.
# The disk's PCI interrupt is routed from the BIOS's table (pci=noacpi): on
# the emulated debug kernel, evaluating the ACPI routing method (_PRT) runs
# into ACPI's 30 s loop timeout, leaving the disk without an interrupt.
#
# COMMAND runs with /bin/sh in /root. The script streams the guest's output,
# then exits with COMMAND's status, unless the run fails:
#
#   70  the serial log (the console, and the dmesg the guest prints at the
#       end) has a line matching $splat below, that is one of:
#       - an oops: "Oops", "general protection fault", "Unable to handle"
#       - a panic: "Kernel panic"
#       - "BUG:": BUG(), sleeping or scheduling in atomic context, "BUG:
#         KASAN: ...", the soft-lockup detector's "BUG: soft lockup - CPU#N
#         stuck for Ns!"
#       - "WARNING:": WARN(), lockdep ("WARNING: possible circular locking
#         dependency detected" and the like), suspicious RCU usage, debug
#         objects
#       - "KASAN:" and "UBSAN:" reports ("UBSAN: array-index-out-of-bounds",
#         "UBSAN: shift-out-of-bounds")
#       - kmemleak's "suspected memory leak" (when a scan ran)
#       - the hung-task detector's "INFO: task X:PID blocked for more than N
#         seconds" ("blocked for more than")
#       - an RCU stall ("rcu: INFO")
#       - "soft lockup", "hard LOCKUP" (no hard-lockup detector runs in the
#         TCG guest: it needs a PMU NMI)
#       - any other stack dump ("Call Trace:")
#       Which of them a kernel can produce depends on its config: the release
#       kernel has none of the debug detectors (lockdep, KASAN, UBSAN,
#       kmemleak, soft lockup, hung task), only oopses, panics, BUG()s,
#       WARN()s and RCU stalls; the debug kernel (kernel/debug.config) has all
#       of them but the hard-lockup detector.
#       (scripts/vm-log-verdict.sh judges the log and holds the list.)
#   71  the VM ran out of --timeout
#   72  the guest did not finish (crashed, or COMMAND ended the VM)
#   73  the guest has another number of online CPUs than --smp asked for;
#       COMMAND is not run
#   75  with --tcg-threads multi, the only report is an "Oops: int3": the
#       emulator ran a stale breakpoint of the kernel's static-key patching
#       (see --tcg-threads above). Not a kernel problem; callers may boot
#       again (scripts/run.sh does).
#
# scripts/check.sh proves with tests/warn_module/kevent_warn.ko that a run
# fails on a WARNING, and on the debug kernel on a soft lockup, a hung task
# and a UBSAN report too; and, on logs made for the purpose, that only a lone
# int3 oops under multi-threaded TCG gives 75.
#
# KEVENT_ACCEL=kvm|tcg|auto picks the accelerator; auto (the default)
# probes KVM once per kernel and falls back to TCG.
set -euo pipefail
source "$(dirname "$0")/env.sh"

kdir= files=() modules=() overlays=() load=0 timeout=600 log= append= smp=2 mem=2G
tcg_threads=${KEVENT_TCG_THREADS:-single}
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kdir=$2; shift 2 ;;
	--files) for f in $2; do files+=("$f"); done; shift 2 ;;
	--module) modules+=("$2"); shift 2 ;;
	--overlay) overlays+=("$2"); shift 2 ;;
	--load) load=1; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--tcg-threads) tcg_threads=$2; shift 2 ;;
	--) shift; break ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || die "usage: $0 [options] [--] COMMAND..."
[[ $smp =~ ^[1-9][0-9]*$ ]] || die "--smp wants a number of CPUs, not '$smp'"
case "$tcg_threads" in single|multi) ;; *) die "--tcg-threads wants single or multi, not '$tcg_threads'" ;; esac
[ -n "$kdir" ] || kdir=$("$KEVENT_TOP/scripts/build-kernel.sh")
bzimage=$kdir/arch/x86/boot/bzImage
[ -f "$bzimage" ] || die "no kernel image at $bzimage"

work=$(mktemp -d "${TMPDIR:-/tmp}/kevent-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$KEVENT_TOP/out/vm"
log=${log:-$KEVENT_TOP/out/vm/serial.log}
mkdir -p "$(dirname "$log")"

# The initramfs: busybox, `make install` (libkevent, its headers and man
# pages under /usr), the modules, the files and the command.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,root,lib/modules}
cp /bin/busybox "$root/bin/busybox"
KEVENT_INSTALL_QUIET=1 "$KEVENT_TOP/scripts/install.sh" /usr "$root"
for m in "${modules[@]}"; do cp "$m" "$root/lib/modules/"; done
for o in "${overlays[@]}"; do
	[ -d "$o" ] || die "no such directory: $o"
	cp -a "$o/." "$root/"
done
for f in "${files[@]}"; do
	[ -e "$f" ] || die "no such file: $f"
	cp -r "$f" "$root/root/"
done
printf '%q ' "$@" > "$root/cmd"
cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/root HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
ip link set lo up
mkdir -p /mnt/disk
if mount -t ext4 /dev/vda /mnt/disk; then
	export KEVENT_DISK=/mnt/disk
else
	echo "KEVENT-VM: could not mount the scratch disk /dev/vda"
fi
cd /root
# Every run has the CPUs it asked for (/proc/cpuinfo lists the online ones).
cpus=\$(grep -c '^processor' /proc/cpuinfo)
if [ "\$cpus" != $smp ]; then
	echo "KEVENT-VM: asked for $smp CPUs, the guest has \$cpus (online: \$(cat /sys/devices/system/cpu/online))"
else
	if [ $load = 1 ]; then
		for m in /lib/modules/*.ko; do insmod "\$m" || echo "KEVENT-VM: insmod \$m failed"; done
	fi
	echo "KEVENT-VM: start"
	sh -c "\$(cat /cmd)"
	rc=\$?
	echo "KEVENT-VM: exit \$rc"
fi
echo "KEVENT-DMESG-BEGIN"
dmesg
echo "KEVENT-DMESG-END"
sync
reboot -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"
truncate -s 512M "$work/disk.img"
mkfs.ext4 -q -F -N 262144 -O ^has_journal -E lazy_itable_init=0,nodiscard "$work/disk.img" ||
	die "mkfs.ext4 of the guest's scratch disk failed"

accel_args() {
	local accel=${KEVENT_ACCEL:-auto} probe
	if [ "$accel" = auto ]; then
		probe=$kdir/../.kvm-probe
		if [ ! -f "$probe" ]; then
			echo tcg > "$probe"
			if [ -w /dev/kvm ] && timeout -k 2 20 qemu-system-x86_64 -enable-kvm -cpu host \
				-m 256M -display none -monitor none -serial stdio -no-reboot \
				-kernel "$bzimage" -append "console=ttyS0 panic=-1 rdinit=/bin/does-not-exist" \
				</dev/null 2>/dev/null | grep -q "Kernel panic"; then
				echo kvm > "$probe"
			fi
			log "accelerator probe: $(cat "$probe") (KVM $( [ "$(cat "$probe")" = kvm ] && echo works || echo hangs or is absent))"
		fi
		accel=$(cat "$probe")
	fi
	case "$accel" in
	kvm) echo "-enable-kvm -cpu host" ;;
	*) echo "-accel tcg,thread=$tcg_threads -cpu max,la57=off" ;;
	esac
}

log "booting the VM ($(accel_args | cut -d' ' -f1-2), $smp CPUs, $mem; timeout ${timeout}s)"
set +e
# The console is streamed line by line: with tr's default block buffering, the
# log and the terminal lagged up to 4 KiB behind the guest, so a long quiet
# test looked like a hung guest.
# shellcheck disable=SC2046
timeout -k 5 "$timeout" qemu-system-x86_64 $(accel_args) -smp "$smp" -m "$mem" \
	-display none -monitor none -serial stdio -no-reboot \
	-kernel "$bzimage" -initrd "$work/initramfs.gz" \
	-drive "file=$work/disk.img,if=virtio,format=raw,cache=unsafe" \
	-append "console=ttyS0 loglevel=5 panic=-1 oops=panic tsc=reliable pci=noacpi $append" </dev/null 2>&1 |
	stdbuf -oL tr -d '\r' | tee "$log" |
	awk '/^KEVENT-DMESG-BEGIN/ { hide = 1 } !hide && !/^KEVENT-VM: (start|exit)/ { print; fflush() } /^KEVENT-DMESG-END/ { hide = 0 }'
qemu_rc=${PIPESTATUS[0]}
set -e

case "$(accel_args)" in
-enable-kvm*) emulation=kvm ;;
*) emulation=tcg-$tcg_threads ;;
esac
"$KEVENT_TOP/scripts/vm-log-verdict.sh" "$log" "$emulation" || exit $?
if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
	echo "vm-run: FAILED (timed out after ${timeout}s; full log: $log)" >&2
	exit 71
fi
cpu_mismatch=$(grep -m1 '^KEVENT-VM: asked for' "$log" || true)
if [ -n "$cpu_mismatch" ]; then
	echo "vm-run: FAILED (--smp $smp: ${cpu_mismatch#KEVENT-VM: }; the command did not run; full log: $log)" >&2
	exit 73
fi
rc=$(sed -n 's/^KEVENT-VM: exit \([0-9]*\)$/\1/p' "$log" | tail -n1)
if [ -z "$rc" ]; then
	echo "vm-run: FAILED (the guest did not finish, qemu status $qemu_rc; full log: $log)" >&2
	exit 72
fi
exit "$rc"
