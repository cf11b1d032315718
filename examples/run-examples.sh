#!/bin/sh
# Runs inside the VM (make run): every example in turn.
cd /root
rc=0
for ex in demo; do
	echo "=== example: $ex"
	"./$ex" || rc=1
done
exit $rc
