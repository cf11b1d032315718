#!/usr/bin/env bash
# `make install PREFIX=/usr/local DESTDIR=`: the headers (<libkevent.h>,
# <kevent_syscalls.h>, <linux/kevent.h>), libkevent (static and shared, with
# its pkg-config file kevent.pc) and the man pages, under DESTDIR/PREFIX.
# The VM image is made with it too (scripts/vm-run.sh: PREFIX=/usr).
#
#   scripts/install.sh PREFIX [DESTDIR]
set -euo pipefail
source "$(dirname "$0")/env.sh"
prefix=${1:-/usr/local}
destdir=${2:-}
case "$prefix" in /*) ;; *) die "PREFIX must be an absolute path, not '$prefix'" ;; esac
"$KEVENT_TOP/scripts/build-lib.sh"
root=$destdir$prefix
lib=$KEVENT_TOP/out/lib
version=$(cat "$lib/version")
so=libkevent.so.$version.0

install -d "$root/include/linux" "$root/lib/pkgconfig"
install -m 644 "$KEVENT_TOP/include/libkevent.h" "$KEVENT_TOP/include/kevent_syscalls.h" \
	"$root/include/"
install -m 644 "$KEVENT_TOP/include/uapi/linux/kevent.h" "$root/include/linux/"
install -m 644 "$lib/libkevent.a" "$root/lib/"
install -m 755 "$lib/$so" "$root/lib/"
ln -sfn "$so" "$root/lib/libkevent.so.${version%%.*}"
ln -sfn "libkevent.so.${version%%.*}" "$root/lib/libkevent.so"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$KEVENT_TOP/lib/kevent.pc.in" \
	> "$root/lib/pkgconfig/kevent.pc"
n=0
for page in "$KEVENT_TOP"/man/man[0-9]/*.[0-9]; do
	[ -e "$page" ] || continue
	sec=${page##*.}
	install -d "$root/share/man/man$sec"
	install -m 644 "$page" "$root/share/man/man$sec/"
	n=$((n + 1))
done
[ -n "$destdir" ] && [ "${KEVENT_INSTALL_QUIET:-0}" = 1 ] ||
	log "installed libkevent $version, its headers and $n man pages under $root"
exit 0
