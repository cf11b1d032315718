#!/usr/bin/env bash
# The part of the guest that dynamically linked programs need, assembled
# from the host's Debian packages into out/guest-dyn (scripts/vm-run.sh
# --overlay copies it into the initramfs):
#   - the programs (memcached, memaslap), with every shared library ldd
#     finds for them and the loader, at their host paths;
#   - /etc files for users, groups and name resolution (files only:
#     localhost, nameserver 127.0.0.1);
#   - /opt/libevent-kevent: the rebuilt libevent with the kevent backend
#     (scripts/build-libevent.sh), for LD_LIBRARY_PATH.
#
#   scripts/build-guest-dyn.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
out=$KEVENT_TOP/out/guest-dyn
progs=(/usr/bin/memcached /usr/bin/memcaslap)
for p in "${progs[@]}"; do
	[ -x "$p" ] || die "$p is missing (Debian packages memcached, libmemcached-tools: scripts/setup.sh installs them)"
done
rm -rf "$out"
mkdir -p "$out/etc" "$out/lib/x86_64-linux-gnu" "$out/lib64" "$out/usr/bin" "$out/usr/lib" \
	"$out/opt/libevent-kevent"
# One library directory: /usr/lib/x86_64-linux-gnu (where memaslap's
# RUNPATH $ORIGIN/../lib/x86_64-linux-gnu points) is the same as
# /lib/x86_64-linux-gnu, as on a merged-/usr Debian.
ln -s ../../lib/x86_64-linux-gnu "$out/usr/lib/x86_64-linux-gnu"
libs=()
for p in "${progs[@]}"; do
	cp "$p" "$out/usr/bin/"
	while read -r lib; do
		libs+=("$lib")
	done < <(ldd "$p" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p')
done
for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
	case "$lib" in
	*/ld-linux-x86-64.so.2) cp -L "$lib" "$out/lib64/" ;;
	*) cp -L "$lib" "$out/lib/x86_64-linux-gnu/" ;;
	esac
done
cat > "$out/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$out/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\nservices: files\nprotocols: files\n' \
	> "$out/etc/nsswitch.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' > "$out/etc/hosts"
echo 'nameserver 127.0.0.1' > "$out/etc/resolv.conf"
cp /etc/services /etc/protocols "$out/etc/"
ev=$KEVENT_TOP/out/libevent/shared
if compgen -G "$ev/lib/libevent-2.1.so.7*" >/dev/null; then
	cp -L "$ev"/lib/libevent-2.1.so.7 "$out/opt/libevent-kevent/"
	cp -L "$ev"/lib/libevent_core-2.1.so.7 "$out/opt/libevent-kevent/" 2>/dev/null || true
fi
log "guest dynamic programs: ${#progs[@]} programs, $(ls "$out/lib/x86_64-linux-gnu" | wc -l) libraries ($(du -sh "$out" | cut -f1))"
exit 0
