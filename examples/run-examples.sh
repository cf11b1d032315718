#!/bin/sh
# Runs inside the VM (make run): every example, then the benchmarks.
cd /root
rc=0
for ex in evtest sigtimer evserver; do
	echo "=== example: $ex"
	"./$ex" || { echo "=== example $ex FAILED"; rc=1; }
done
./run-bench.sh || rc=1
exit $rc
