#!/bin/sh
# Runs inside the VM: an unmodified Debian memcached (1.6.18) on kevent and
# on epoll, under memaslap load (Debian libmemcached-tools), in rounds that
# alternate the two. Both servers are the same binary: the kevent one loads
# the rebuilt libevent 2.1.12 with the kevent backend (/opt/libevent-kevent,
# LD_LIBRARY_PATH; scripts/build-libevent.sh) and is forced onto it with
# EVENT_NOEPOLL/NOPOLL/NOSELECT; the epoll one runs on Debian's own
# libevent. memaslap (which uses libevent too) always runs on Debian's
# libevent, on epoll. memaslap checks every reply it gets (--verify=1.0); a
# round with a failed verification fails the benchmark.
#
#   memcached.sh [rounds [seconds [connections]]]
#
# MEMCACHED_KEVENT_LIB names another directory holding a libevent-2.1.so.7
# for the kevent server (to compare two builds of the backend in one boot).
#
# Prints BENCH lines (bench/bench.h): ops_per_s, avg_us and p99_us. memaslap
# keeps latencies in power-of-two buckets only (its "Log2 Dist" row K
# counts latencies in [2^(K-1), 2^K) us), so p99_us is the upper bound of
# the bucket holding the 99th percentile (coarse: 2x steps).
rounds=${1:-3}
secs=${2:-5}
conns=${3:-32}
kev_lib=${MEMCACHED_KEVENT_LIB:-/opt/libevent-kevent}
export PATH=/usr/bin:$PATH

fail() {
	echo "memcached: $*" >&2
	exit 1
}
[ -x /usr/bin/memcached ] && [ -x /usr/bin/memcaslap ] ||
	fail "memcached or memcaslap missing in the guest (scripts/build-guest-dyn.sh)"
[ -e $kev_lib/libevent-2.1.so.7 ] ||
	fail "no libevent with the kevent backend in $kev_lib (scripts/build-libevent.sh)"

# Starts memcached for MECH (kevent or epoll) on port 11211; sets $pid.
start_server() {
	if [ "$1" = kevent ]; then
		LD_LIBRARY_PATH=$kev_lib EVENT_NOEPOLL=1 EVENT_NOPOLL=1 EVENT_NOSELECT=1 \
			memcached -u root -l 127.0.0.1 -p 11211 -U 0 -t 1 -c 4096 &
	else
		memcached -u root -l 127.0.0.1 -p 11211 -U 0 -t 1 -c 4096 &
	fi
	pid=$!
	# Listening on 127.0.0.1:11211 (0x2BCB) once /proc/net/tcp says so.
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		grep -q ':2BCB 00000000:0000 0A' /proc/net/tcp && break
		sleep 0.25
	done
	# Which event mechanism the server really uses: its descriptors say.
	fds=$(ls -l /proc/$pid/fd 2>/dev/null)
	case "$1" in
	kevent) echo "$fds" | grep -q 'kevent' || fail "the kevent server has no kevent queue open" ;;
	epoll) echo "$fds" | grep -q 'eventpoll' || fail "the epoll server has no epoll instance open" ;;
	esac
}

stop_server() {
	kill "$pid"
	wait "$pid" 2>/dev/null
}

# One memaslap run against the server; prints the BENCH lines.
load() {
	mech=$1
	out=/tmp/memaslap.$mech
	EVENT_NOKEVENT=1 memcaslap -s 127.0.0.1:11211 -T 1 -c "$conns" -t "${secs}s" \
		-S "${secs}s" --verify=1.0 > "$out" 2>&1 || fail "memaslap failed on $mech: $(tail -3 "$out")"
	awk -v mech="$mech" -v conns="$conns" '
		/^verify_failed:/ { vfail = $2 }
		/^Run time:/ { for (i = 1; i < NF; i++) if ($i == "TPS:") tps = $(i + 1) }
		/^Total Statistics \(/ { total = 1; next }
		total && /Avg:/ { avg = $2 }
		total && /^ *[0-9]+:/ && NF >= 2 {
			sub(":", "", $1)
			for (i = 2; i <= NF; i++) { b[$1 + i - 2] = $i; n += $i }
		}
		total && /^$/ { total = 0 }
		END {
			if (vfail == "" || tps == "" || n == 0) { print "unparsable"; exit 1 }
			if (vfail != 0) { print "verify_failed " vfail; exit 1 }
			for (k = 0; k < 64; k++) { c += b[k]; if (c >= 0.99 * n) break }
			# 2^k without pow(): busybox awk may have no math library.
			for (p99 = 1; k > 0; k--) p99 *= 2
			printf "BENCH memcached c%d %s ops_per_s %s\n", conns, mech, tps
			printf "BENCH memcached c%d %s avg_us %s\n", conns, mech, avg
			printf "BENCH memcached c%d %s p99_us %d\n", conns, mech, p99
		}' "$out" || fail "$mech: $(awk 'END { print }' "$out") (full output: $(cat "$out"))"
}

echo "memcached $(memcached -V | cut -d' ' -f2), memaslap: $rounds rounds of ${secs} s, $conns connections, every reply verified"
# One unreported round of each first: the first runs after boot are slower
# (the emulator translates code it has not run yet), and that must not fall
# on whichever mechanism happens to go first.
for mech in kevent epoll; do
	start_server $mech
	load $mech > /dev/null
	stop_server
done
# The order alternates from round to round, so neither mechanism always
# runs right after the other.
r=1
while [ "$r" -le "$rounds" ]; do
	order="kevent epoll"
	[ $((r % 2)) -eq 0 ] && order="epoll kevent"
	for mech in $order; do
		start_server $mech
		load $mech
		stop_server
	done
	r=$((r + 1))
done
