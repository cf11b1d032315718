#!/usr/bin/env bash
# `make prog SRC=my_test.c`: compile a program of the user's for the guest
# (static, with <linux/kevent.h>, <kevent_syscalls.h> and libkevent), next to SRC.
set -euo pipefail
source "$(dirname "$0")/env.sh"
src=${1:?usage: make prog SRC=file.c}
"$KEVENT_TOP/scripts/setup.sh"
kb=$("$KEVENT_TOP/scripts/build-kernel.sh")
"$KEVENT_TOP/scripts/build-lib.sh"
ksrc=$kb/../src
gcc -O2 -g -Wall -static -pthread -D_GNU_SOURCE -I"$ksrc/tools/testing/selftests" \
	-isystem "$kb/usr/include" -I"$KEVENT_TOP/include" -o "${src%.c}" "$src" "$KEVENT_TOP/out/lib/libkevent.a"
log "built ${src%.c}"
