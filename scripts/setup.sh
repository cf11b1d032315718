#!/usr/bin/env bash
# Install everything kevent needs on a Debian 12 machine: the toolchain of
# the spec (Debian rustc-web 1.85 + rust-src, clang/lld/llvm 19, bindgen-cli
# 0.69.5), the kernel build dependencies, QEMU, busybox and the Debian
# linux-source-6.12 tarball. Idempotent and quiet when all is present.
set -euo pipefail
source "$(dirname "$0")/env.sh"

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

pkgs=(
	"rustc-web=$KEVENT_RUST_VERSION" "libstd-rust-web-dev=$KEVENT_RUST_VERSION"
	"rust-web-src=$KEVENT_RUST_VERSION"
	clang-19 lld-19 llvm-19 libclang-19-dev
	flex bison bc libelf-dev libssl-dev cpio kmod xz-utils make gcc libc6-dev
	qemu-system-x86 busybox-static linux-source-6.12 liburing-dev mandoc
	python3-matplotlib pkgconf memcached libmemcached-tools
	cmake patch zlib1g-dev e2fsprogs libaio-dev
)

missing=()
for p in "${pkgs[@]}"; do
	name=${p%%=*}
	want=${p#*=}
	have=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
	case "$have" in
	"install ok installed "*)
		[ "$name" = "$p" ] || [ "${have##* }" = "$want" ] || missing+=("$p")
		;;
	*) missing+=("$p") ;;
	esac
done

if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	$SUDO apt-get update -qq || log "apt-get update reported errors; trying the install anyway"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install failed (see above)"
fi

bindgen="$HOME/.cargo/bin/bindgen"
if ! "$bindgen" --version 2>/dev/null | grep -q " $KEVENT_BINDGEN_VERSION\$"; then
	command -v cargo >/dev/null || die "cargo is needed to install bindgen-cli"
	log "installing bindgen-cli $KEVENT_BINDGEN_VERSION with cargo (about a minute)"
	env -u RUSTC cargo install -q --locked bindgen-cli --version "$KEVENT_BINDGEN_VERSION" \
		|| die "cargo install bindgen-cli failed"
fi

/usr/bin/rustc --version | grep -q "^rustc 1.85.0" || die "/usr/bin/rustc is not 1.85.0"
[ -d /usr/lib/rustlib/src/rust/library/core ] || die "rust-web-src is missing"
ls /usr/src/linux-source-6.12.tar.* >/dev/null 2>&1 || die "linux-source-6.12 tarball missing in /usr/src"
exit 0
