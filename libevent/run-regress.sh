#!/bin/sh
# Guest side of the libevent comparison (busybox sh): runs libevent's own
# tests once on the kevent backend and once on epoll, in the same guest.
#
#   ./run-regress.sh [BINDIR]        (default: ./bin, as vm-run.sh copies it)
#
# LIBEVENT_BACKENDS (default "kevent epoll") picks the runs; LIBEVENT_ENV adds
# variables to each (e.g. "EVENT_DEBUG_MODE=1" or "EVENT_PRECISE_TIMER=1").
#
# The kevent module must be loaded (vm-run.sh --module rust/kevent.ko --load).
# Per backend the output is framed by
#   LIBEVENT-RUN-BEGIN <backend>   ...   LIBEVENT-RUN-END <backend> regress=<status>
# and holds:
#   LIBEVENT-METHOD <backend> <the method libevent chose>
#   LIBEVENT-PROG <backend> <test-program> OK|FAILED
#   regress's own output (one "group/test: OK|SKIPPED|DISABLED" line per test,
#   "  [test FAILED]" after a failure)
#   LIBEVENT-RETRY <backend> <group/test> OK|FAILED   (every failed test, run again alone)
# libevent/compare-regress.py reads it. Exits 0 unless a backend could not
# be selected.
bin=${1:-./bin}
cd "$(dirname "$0")" || exit 1

# What the DNS and getaddrinfo tests need (../shared/third_party/README.md).
mkdir -p /etc
cat > /etc/hosts <<EOF
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
echo "nameserver 127.0.0.1" > /etc/resolv.conf
cat > /etc/services <<EOF
ftp		21/tcp
ssh		22/tcp
telnet		23/tcp
domain		53/tcp
domain		53/udp
http		80/tcp		www
http		80/udp
https		443/tcp
https		443/udp
EOF
cat > /etc/protocols <<EOF
ip	0	IP
icmp	1	ICMP
tcp	6	TCP
udp	17	UDP
ipv6	41	IPv6
ipv6-icmp	58	IPv6-ICMP
EOF
cat > /etc/nsswitch.conf <<EOF
hosts:		files dns
networks:	files
protocols:	files
services:	files
EOF

# The test programs upstream's test/test.sh runs; test-dumpevents's output
# is not checked (that needs Python).
PROGS="test-eof test-closed test-weof test-time test-changelist test-fdleak test-dumpevents"
# The project's test of the backend's corners (libevent/test-backend.c).
PROGS="$PROGS test-backend"

run_backend() {
	name=$1
	shift
	# shellcheck disable=SC2086
	set -- "$@" ${LIBEVENT_ENV:-}
	echo "LIBEVENT-RUN-BEGIN $name"
	# $@: the environment that selects the backend.
	method=$(env "$@" EVENT_SHOW_METHOD=1 "$bin/test-init" 2>&1 |
		sed -n 's/.*libevent using: //p' | head -n1)
	echo "LIBEVENT-METHOD $name $method"
	if [ "$method" != "$name" ]; then
		echo "LIBEVENT-RUN-END $name regress=none (wanted $name, got '$method')"
		return 1
	fi
	for p in $PROGS; do
		if env "$@" timeout 60 "$bin/$p" > /tmp/prog.out 2>&1; then
			echo "LIBEVENT-PROG $name $p OK"
		else
			echo "LIBEVENT-PROG $name $p FAILED"
			sed 's/^/#   /' /tmp/prog.out | tail -n 20
		fi
	done
	start=$(date +%s)
	env "$@" timeout 900 "$bin/regress" > /tmp/regress.out 2>&1
	rc=$?
	cat /tmp/regress.out
	echo "LIBEVENT-REGRESS-TIME $name $(( $(date +%s) - start ))"
	# Every failed test once more, alone (flaky tests; fork-sensitive ones).
	awk '/^[A-Za-z0-9_]+\/[^ :]+: / { cur = $1; sub(/:$/, "", cur) }
	     /^  \[.* FAILED\]$/ && cur != "" { print cur; cur = "" }' /tmp/regress.out |
		sort -u > /tmp/failed.list
	for t in $(cat /tmp/failed.list); do
		if env "$@" timeout 120 "$bin/regress" "$t" > /tmp/retry.out 2>&1; then
			echo "LIBEVENT-RETRY $name $t OK"
		else
			echo "LIBEVENT-RETRY $name $t FAILED"
			sed 's/^/#   /' /tmp/retry.out | tail -n 20
		fi
	done
	echo "LIBEVENT-RUN-END $name regress=$rc"
}

status=0
for b in ${LIBEVENT_BACKENDS:-kevent epoll}; do
	case $b in
	# kevent: every other backend disabled (kevent is first in eventops[] anyway).
	kevent) run_backend kevent EVENT_NOEPOLL=1 EVENT_NOPOLL=1 EVENT_NOSELECT=1 || status=1 ;;
	# epoll: kevent disabled.
	epoll) run_backend epoll EVENT_NOKEVENT=1 || status=1 ;;
	*) echo "run-regress.sh: unknown backend $b"; status=1 ;;
	esac
done
exit $status
