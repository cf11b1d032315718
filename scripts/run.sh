#!/usr/bin/env bash
# The main job: build everything, boot the patched kernel with the module
# loaded and run the examples and the benchmarks.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$KEVENT_TOP/scripts/setup.sh"
kb=$("$KEVENT_TOP/scripts/build-kernel.sh")
"$KEVENT_TOP/scripts/build-module.sh" "$kb"
"$KEVENT_TOP/scripts/build-user.sh" "$kb" examples bench
log "running the examples in the VM"
exec "$KEVENT_TOP/scripts/vm-run.sh" --kernel "$kb" --module "$KEVENT_TOP/rust/kevent.ko" --load \
	--log "$KEVENT_TOP/out/vm/run.log" --files "$KEVENT_TOP/out/examples/* $KEVENT_TOP/out/bench/*" -- ./run-examples.sh
