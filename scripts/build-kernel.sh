#!/usr/bin/env bash
# Build the patched kernel into the cache, or reuse a cached build.
#
#   scripts/build-kernel.sh [VARIANT]     VARIANT: release (default) or debug
#
# The cache directory is keyed by a hash of everything the build depends on:
# the kernel version, patches/, the config fragments, the UAPI header, this
# build recipe and the toolchain versions. A warm run prints the directory and
# exits at once. Prints the build directory (the O= tree) on stdout.
set -euo pipefail
source "$(dirname "$0")/env.sh"

variant=${1:-release}
fragments=("$KEVENT_TOP/kernel/kevent.config")
[ "$variant" = release ] || fragments+=("$KEVENT_TOP/kernel/$variant.config")
for f in "${fragments[@]}"; do [ -f "$f" ] || die "no config fragment $f"; done

tarball=$(ls /usr/src/linux-source-6.12.tar.* 2>/dev/null | head -n1)
[ -n "$tarball" ] || die "linux-source-6.12 is not installed (run scripts/setup.sh)"
kver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
kdir=$(kevent_kernel_dir "$variant")
src=$kdir/src
obj=$kdir/build

if [ -f "$kdir/.done" ]; then
	log "kernel ($variant) is cached: $kdir"
	echo "$obj"
	exit 0
fi

start=$(date +%s)
log "building the patched kernel ($variant, linux-source-6.12 $kver) in $kdir"
rm -rf "$kdir"
mkdir -p "$kdir"

log "extracting $(basename "$tarball")"
tar -C "$kdir" -xf "$tarball"
mv "$kdir"/linux-source-6.12 "$src"

log "applying $(ls "$KEVENT_TOP"/patches/*.patch | wc -l) patches"
for p in "$KEVENT_TOP"/patches/*.patch; do
	patch -d "$src" -p1 --quiet --forward < "$p" || die "patch $(basename "$p") does not apply"
done
# The series carries the ABI header; it must be the repository's.
cmp -s "$src/include/uapi/linux/kevent.h" "$KEVENT_TOP/include/uapi/linux/kevent.h" ||
	die "include/uapi/linux/kevent.h differs from the one in patches/ (regenerate the series)"

log "configuring: tinyconfig + ${fragments[*]##*/}"
kmake() { make -C "$src" O="$obj" "${KMAKE_ARGS[@]}" "$@"; }
kmake -s tinyconfig >/dev/null
(cd "$src" && ./scripts/kconfig/merge_config.sh -m -O "$obj" "$obj/.config" "${fragments[@]}") >/dev/null
kmake -s olddefconfig >/dev/null
# Every line of the fragments must have survived olddefconfig.
for f in "${fragments[@]}"; do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$obj/.config" || die "config: '$line' did not stick (missing dependency?)" ;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt% is not set}
			! grep -q "^$opt=" "$obj/.config" || die "config: '$line' did not stick" ;;
		esac
	done < "$f"
done

log "compiling bzImage with $KEVENT_JOBS jobs (about 12 minutes on 2 cores; progress every 500 files)"
kmake -j"$KEVENT_JOBS" bzImage modules 2>&1 | tee "$kdir/build.log" |
	awk '/^  (CC|RUSTC|AR|LD|AS|BINDGEN)/ { n++; if (n % 500 == 0) { printf "    ... %d files compiled\n", n > "/dev/stderr" } }
	     /error:|Error [0-9]/ { print > "/dev/stderr" }'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "kernel build failed; log: $kdir/build.log"
log "installing UAPI headers for the tests"
kmake -s headers >/dev/null

touch "$kdir/.done"
log "kernel built in $(( $(date +%s) - start )) s"

# Keep the cache small: drop other builds of the same variant.
for old in "$KEVENT_CACHE"/kernel-"$variant"-*; do
	[ "$old" = "$kdir" ] || rm -rf "$old"
done
echo "$obj"
