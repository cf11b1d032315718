#!/usr/bin/env bash
# `make vm-run CMD='...' FILES='...'`: run a command of the user's in the VM
# with the kevent module loaded. FILES are copied to /root, the working
# directory; build C programs with `make user-prog SRC=prog.c`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cmd=${1:?usage: make vm-run CMD='command' [FILES='files to copy']}
files=${2:-}
"$KEVENT_TOP/scripts/setup.sh"
kb=$("$KEVENT_TOP/scripts/build-kernel.sh")
"$KEVENT_TOP/scripts/build-module.sh" "$kb"
exec "$KEVENT_TOP/scripts/vm-run.sh" --kernel "$kb" --module "$KEVENT_TOP/rust/kevent.ko" --load \
	--files "$files" -- sh -c "$cmd"
