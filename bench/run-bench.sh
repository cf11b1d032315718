#!/bin/sh
# Runs inside the VM: every benchmark, back to back in one boot. The host
# aggregates the BENCH lines (scripts/bench-report.py).
cd /root
rc=0
for b in "percall 5 100000" "memwatch 3 100000" "mtharvest 3 1000" "harvest 5 200" "pingpong 5 500" "webserver 5 2000 32" "latency 5 300" "recvstream 5 64" "sendstream 3 1024" "sendfile 5 64" "aiopingpong 5 500" "fileio 7 2000" "inodewatch 3 100000" "memcached.sh 5 5 32"; do
	set -- $b
	echo "=== benchmark: $*"
	"./$1" $2 $3 $4 || { echo "=== benchmark $1 FAILED"; rc=1; }
done
exit $rc
