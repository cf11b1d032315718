#!/usr/bin/env bash
# Build libevent 2.1.12 with the project's kevent backend (libevent/kevent.c,
# libevent/register-kevent.patch) linked with libkevent:
#
#   out/libevent/src     the tarball, extracted once (again when the patch or
#                        the tarball changes), patched, plus kevent.c
#   out/libevent/static  static CMake build: bin/regress and the test-*
#                        programs, linked -static (they run in the busybox guest)
#   out/libevent/shared  shared CMake build: lib/libevent-2.1.so.7 and friends
#                        (for the memcached benchmark), libkevent linked in
#
#   scripts/build-libevent.sh [static|shared|all]     (default: all)
#
# Incremental: each step is skipped when its output is newer than its inputs.
# The tarball is the unmodified upstream one of shared/third_party
# (LIBEVENT_TARBALL overrides it); its sha256 is checked.
set -euo pipefail
source "$(dirname "$0")/env.sh"
what=${1:-all}
case "$what" in static|shared|all) ;; *) die "usage: $0 [static|shared|all]" ;; esac

# Where it is looked for: $LIBEVENT_TARBALL, then third_party/ beside the
# checkout (../shared/third_party), then the machine's /work/shared/third_party
# (a clone elsewhere, as CI makes); the first that exists is used.
name=libevent-2.1.12-stable.tar.gz
tarball=${LIBEVENT_TARBALL:-}
if [ -z "$tarball" ]; then
	for dir in "$KEVENT_TOP/../shared/third_party" /work/shared/third_party; do
		[ -f "$dir/$name" ] && { tarball=$dir/$name; break; }
	done
fi
sha256=fa647e8ccd6b833bb02c62d9125422f74cbfdf73ad2dd12f8915f644b0ff2b9a
here=$KEVENT_TOP/libevent
out=$KEVENT_TOP/out/libevent
src=$out/src
[ -n "$tarball" ] && [ -f "$tarball" ] ||
	die "no $name (looked in \$LIBEVENT_TARBALL, $KEVENT_TOP/../shared/third_party, /work/shared/third_party): set LIBEVENT_TARBALL to the unmodified upstream tarball (git archive of tag release-2.1.12-stable)"
command -v cmake >/dev/null || die "cmake is missing (scripts/setup.sh installs it)"

"$KEVENT_TOP/scripts/build-lib.sh"
libkevent=$KEVENT_TOP/out/lib/libkevent.a
[ -f "$libkevent" ] || die "no $libkevent (scripts/build-lib.sh)"
incdirs="$KEVENT_TOP/include;$KEVENT_TOP/include/uapi"
mkdir -p "$out"

# 1. The source tree: extracted and patched when the tarball or the patch
#    changed; kevent.c copied whenever it changed (only it recompiles then).
stamp=$( { echo "$sha256"; cat "$here/register-kevent.patch"; } | sha256sum | cut -c1-16)
if [ "$(cat "$src/.kevent-stamp" 2>/dev/null)" != "$stamp" ]; then
	log "extracting and patching libevent-2.1.12-stable (out/libevent/src)"
	echo "$sha256  $tarball" | sha256sum -c --quiet - || die "$tarball: wrong sha256"
	rm -rf "$src" "$out/static" "$out/shared"
	mkdir -p "$src"
	tar -C "$src" --strip-components=1 -xzf "$tarball"
	patch -d "$src" -p1 --quiet --forward < "$here/register-kevent.patch" ||
		die "register-kevent.patch does not apply"
	echo "$stamp" > "$src/.kevent-stamp"
fi
cmp -s "$here/kevent.c" "$src/kevent.c" || cp "$here/kevent.c" "$src/kevent.c"

# Configures build directory $1 with the remaining arguments, unless it was
# configured with exactly these already.
configure() {
	local dir=$1 args
	shift
	args="$* libkevent=$libkevent"
	if [ -f "$dir/CMakeCache.txt" ] && [ "$(cat "$dir/.kevent-args" 2>/dev/null)" = "$args" ]; then
		return 0
	fi
	log "configuring libevent in ${dir#"$KEVENT_TOP"/} (cmake, about 20 s)"
	rm -rf "$dir"
	mkdir -p "$dir"
	(cd "$dir" && cmake "$src" "$@" -DEVENT__KEVENT_LIBRARY="$libkevent" \
		-DEVENT__KEVENT_INCLUDE_DIRS="$incdirs" > configure.log 2>&1) ||
		{ tail -30 "$dir/configure.log" >&2; die "cmake failed (see $dir/configure.log)"; }
	echo "$args" > "$dir/.kevent-args"
}

# Runs make in $1 for the targets that follow, quietly unless it fails.
build() {
	local dir=$1
	shift
	if ! make -C "$dir" -j"$KEVENT_JOBS" "$@" > "$dir/build.log" 2>&1; then
		grep -E "error|Error" "$dir/build.log" | head -30 >&2 || tail -n 20 "$dir/build.log" >&2
		die "libevent build failed (see $dir/build.log)"
	fi
	grep -q "Building C object\|Linking C" "$dir/build.log" &&
		log "built libevent in ${dir#"$KEVENT_TOP"/}"
	return 0
}

if [ "$what" != shared ]; then
	# The command of ../shared/third_party/README.md, plus CMP0056 so that the
	# compiler checks link with -static too (CMake 3.25 otherwise ends them
	# with -Wl,-Bstatic but without -static, and they fail on -lgcc_s).
	# test-ratelim does not link statically: it is not built.
	configure "$out/static" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_POLICY_DEFAULT_CMP0056=NEW -DEVENT__LIBRARY_TYPE=STATIC \
		-DEVENT__DISABLE_OPENSSL=ON -DEVENT__DISABLE_BENCHMARK=ON -DEVENT__DISABLE_SAMPLES=ON \
		-DCMAKE_EXE_LINKER_FLAGS=-static -DCMAKE_LINK_SEARCH_END_STATIC=ON \
		-DZLIB_LIBRARY=/usr/lib/x86_64-linux-gnu/libz.a
	build "$out/static" regress test-init test-eof test-weof test-time test-closed \
		test-fdleak test-changelist test-dumpevents
	# The project's own test of the backend's corners (libevent/test-backend.c).
	tb=$out/static/bin/test-backend
	if [ ! "$tb" -nt "$here/test-backend.c" ] || [ ! "$tb" -nt "$out/static/lib/libevent_core.a" ]; then
		log "building test-backend"
		gcc -O2 -g -Wall -Wextra -Werror -static -I"$src/include" -I"$out/static/include" \
			-o "$tb" "$here/test-backend.c" "$out/static/lib/libevent_core.a" "$libkevent" \
			2> "$out/static/test-backend.log" ||
			{ cat "$out/static/test-backend.log" >&2; die "could not build test-backend"; }
	fi
fi

if [ "$what" != static ]; then
	# libkevent's symbols stay inside libevent (--exclude-libs).
	configure "$out/shared" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVENT__LIBRARY_TYPE=SHARED \
		-DEVENT__DISABLE_OPENSSL=ON -DEVENT__DISABLE_BENCHMARK=ON -DEVENT__DISABLE_SAMPLES=ON \
		-DEVENT__DISABLE_TESTS=ON -DEVENT__DISABLE_REGRESS=ON \
		-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--exclude-libs,libkevent.a
	build "$out/shared" all
	[ -e "$out/shared/lib/libevent-2.1.so.7" ] || die "no libevent-2.1.so.7 in out/libevent/shared/lib"
fi
exit 0
