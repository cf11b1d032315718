#!/bin/sh
# Runs inside the VM (make run): every example, then the benchmarks.
cd /root
rc=0
for ex in evtest sigtimer evserver; do
	echo "=== example: $ex"
	"./$ex" || rc=1
done
echo "=== benchmark: harvest cost (kevent ring / kevent_get_events / epoll_wait)"
./harvest || rc=1
exit $rc
