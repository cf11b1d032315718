# shellcheck shell=bash
# Common environment for every kevent build step. Source it; do not run it.
#
# KEVENT_CACHE  where the extracted kernel, its build tree and the toolchain
#               stamp live (default: ~/.cache/kevent). Nothing in it is needed
#               to understand the project; delete it to force a cold build.

KEVENT_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEVENT_CACHE=${KEVENT_CACHE:-$HOME/.cache/kevent}
KEVENT_RUST_VERSION=1.85.0+dfsg3-1~deb12u3
KEVENT_BINDGEN_VERSION=0.69.5
KEVENT_LLVM=/usr/lib/llvm-19
KEVENT_JOBS=${KEVENT_JOBS:-$(nproc)}
# Bump when scripts/build-kernel.sh changes what it builds (part of the cache key).
KEVENT_KERNEL_RECIPE=2

export PATH="$KEVENT_LLVM/bin:$HOME/.cargo/bin:$PATH"
export LIBCLANG_PATH="$KEVENT_LLVM/lib"

# Arguments every kernel and module make invocation needs. The rustup rustc
# that may be first on PATH has no rust-src, so name Debian's explicitly.
KMAKE_ARGS=(LLVM=1 RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc
	    BINDGEN="$HOME/.cargo/bin/bindgen" RUSTFMT=/bin/false)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# The cache directory of a kernel variant: a hash of every input of the
# build, so that a change of any input builds a new kernel.
kevent_kernel_dir() {
	local variant=${1:-release} key
	key=$( {
		echo "variant=$variant"
		dpkg-query -W -f='${Version}\n' linux-source-6.12 2>/dev/null
		/usr/bin/rustc --version 2>/dev/null
		"$KEVENT_LLVM/bin/clang" --version 2>/dev/null | head -n1
		"$HOME/.cargo/bin/bindgen" --version 2>/dev/null
		echo "recipe=$KEVENT_KERNEL_RECIPE ${KMAKE_ARGS[*]}"
		cat "$KEVENT_TOP"/patches/*.patch
		# Only the fragments this variant uses, in name order.
		{
			echo "$KEVENT_TOP/kernel/kevent.config"
			[ "$variant" = release ] || echo "$KEVENT_TOP/kernel/$variant.config"
		} | sort | xargs cat
	} | sha256sum | cut -c1-16)
	echo "$KEVENT_CACHE/kernel-$variant-$key"
}
