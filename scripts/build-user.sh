#!/usr/bin/env bash
# Build the user-space programs (tests, examples, benchmarks) for the guest:
# static binaries using the patched kernel's UAPI headers, the kernel's
# kselftest harness and libkevent (built first, out/lib/libkevent.a).
#
#   scripts/build-user.sh KERNEL_BUILD_DIR DIR...   e.g. tests examples
# Each DIR/*.c becomes out/DIR/NAME.
set -euo pipefail
source "$(dirname "$0")/env.sh"
kb=${1:?usage: $0 KERNEL_BUILD_DIR DIR...}
shift
ksrc=$(cd "$kb/../src" && pwd)
"$KEVENT_TOP/scripts/build-lib.sh"
libkevent=$KEVENT_TOP/out/lib/libkevent.a

for dir in "$@"; do
	out=$KEVENT_TOP/out/$dir
	mkdir -p "$out"
	log "building $dir/"
	for c in "$KEVENT_TOP/$dir"/*.c; do
		[ -e "$c" ] || continue
		bin=$out/$(basename "$c" .c)
		# Rebuild only what changed.
		if [ "$bin" -nt "$c" ] && [ "$bin" -nt "$KEVENT_TOP/include/kevent_syscalls.h" ] &&
		   [ "$bin" -nt "$libkevent" ] &&
		   [ "$bin" -nt "$kb/usr/include/linux/kevent.h" ] &&
		   ! find "$KEVENT_TOP/$dir" -name '*.h' -newer "$bin" | grep -q .; then
			continue
		fi
		gcc -O2 -g -Wall -static -pthread -D_GNU_SOURCE \
			-I"$ksrc/tools/testing/selftests" -isystem "$kb/usr/include" \
			-I"$KEVENT_TOP/include" -I"$KEVENT_TOP/$dir" \
			-o "$bin" "$c" ${KEVENT_LDLIBS:-} "$libkevent" -luring -laio || die "could not compile $c"
	done
	for s in "$KEVENT_TOP/$dir"/*.sh; do
		[ -e "$s" ] && cp "$s" "$out/"
	done
	[ "$dir" = tests ] || continue
	# The man pages' example programs, built from the pages, and the runs
	# they show: tests/man_examples.sh checks one against the other.
	for page in "$KEVENT_TOP"/man/man*/*.[0-9]; do
		grep -q '^\.\\" SRC BEGIN' "$page" || continue
		name=man-example-$(basename "$page" | tr . -)
		"$KEVENT_TOP/scripts/extract-man-example.sh" "$page" source > "$out/$name.c"
		"$KEVENT_TOP/scripts/extract-man-example.sh" "$page" output > "$out/$name.expected"
		# A page that shows no run is only compiled.
		[ -s "$out/$name.expected" ] || rm "$out/$name.expected"
		gcc -O2 -Wall -Wextra -Werror -static -isystem "$kb/usr/include" -I"$KEVENT_TOP/include" \
			-o "$out/$name" "$out/$name.c" "$libkevent" ||
			die "the example of $page does not compile (source: $out/$name.c)"
		rm "$out/$name.c"
	done
	mv "$out/man_examples.sh" "$out/man_examples_test"
done
exit 0
