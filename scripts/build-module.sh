#!/usr/bin/env bash
# Build the kevent module (rust/kevent.ko) and the test-only module against
# a kernel build directory.
#
#   scripts/build-module.sh KERNEL_BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/env.sh"
kb=${1:?usage: $0 KERNEL_BUILD_DIR}

log "building the kevent module (rust/kevent.ko)"
make -s -C "$kb" M="$KEVENT_TOP" "${KMAKE_ARGS[@]}" -j"$KEVENT_JOBS" modules ||
	die "module build failed"
make -s -C "$kb" M="$KEVENT_TOP/tests/warn_module" "${KMAKE_ARGS[@]}" modules ||
	die "test module build failed"
