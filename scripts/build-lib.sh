#!/usr/bin/env bash
# Build libkevent (lib/, header include/libkevent.h) into out/lib:
# libkevent.a (position-independent, so that shared libraries such as a
# rebuilt libevent can link it in) and libkevent.so.MAJOR.MINOR.0 with its
# soname link. Needs only gcc and the repository's UAPI header, not the
# kernel build. Quiet and quick when up to date.
#
#   scripts/build-lib.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
src=$KEVENT_TOP/lib
out=$KEVENT_TOP/out/lib
hdr=$KEVENT_TOP/include/libkevent.h
major=$(sed -n 's/^#define LIBKEVENT_VERSION_MAJOR[[:space:]]*//p' "$hdr")
minor=$(sed -n 's/^#define LIBKEVENT_VERSION_MINOR[[:space:]]*//p' "$hdr")
[ -n "$major" ] && [ -n "$minor" ] || die "no LIBKEVENT_VERSION_* in $hdr"
so=libkevent.so.$major.$minor.0
mkdir -p "$out"

inputs=("$src"/*.c "$src"/libkevent.map "$hdr" "$KEVENT_TOP/include/kevent_syscalls.h"
	"$KEVENT_TOP/include/uapi/linux/kevent.h" "$0")
uptodate=1
for f in "${inputs[@]}"; do
	[ "$out/libkevent.a" -nt "$f" ] && [ "$out/$so" -nt "$f" ] || uptodate=0
done
[ "$uptodate" = 1 ] && exit 0

log "building libkevent $major.$minor (out/lib)"
cflags=(-O2 -g -Wall -Wextra -Werror -fPIC -fvisibility=default -D_GNU_SOURCE
	-I"$KEVENT_TOP/include" -I"$KEVENT_TOP/include/uapi")
objs=()
for c in "$src"/*.c; do
	o=$out/$(basename "$c" .c).o
	gcc "${cflags[@]}" -c -o "$o" "$c" || die "could not compile $c"
	objs+=("$o")
done
rm -f "$out/libkevent.a"
ar rcs "$out/libkevent.a" "${objs[@]}"
gcc -shared -Wl,-soname,libkevent.so.$major -Wl,--version-script="$src/libkevent.map" \
	-Wl,-z,defs -o "$out/$so" "${objs[@]}" || die "could not link $so"
ln -sfn "$so" "$out/libkevent.so.$major"
ln -sfn "libkevent.so.$major" "$out/libkevent.so"
echo "$major.$minor" > "$out/version"
exit 0
