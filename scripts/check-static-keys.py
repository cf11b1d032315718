#!/usr/bin/env python3
"""Prove that every kevent hook site is a static-key jump (a NOP while no
module is registered): read the kernel's __jump_table, keep the entries whose
key is kevent_hooks_key, and name the function around each site.

usage: check-static-keys.py VMLINUX
Prints one line per hook site; exits 1 if a hook site is missing."""
import bisect
import re
import struct
import subprocess
import sys

# A site per hook call in patches/ (the compiler may inline a static function
# into its caller, so some sites are named after the caller).
EXPECTED_SITES = 13
MUST_CONTAIN = ["sock_def_readable", "sock_def_wakeup", "sock_def_error_report",
                "sk_stream_write_space", "unix_write_space", "sock_wfree",
                "tcp_data_ready", "__sk_destruct", "__fput", "do_exit"]


def main(vmlinux):
    syms = []
    syms_all = []
    key = None
    out = subprocess.run(["llvm-nm", "--defined-only", vmlinux], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        addr, kind, name = int(parts[0], 16), parts[1], parts[2]
        syms_all.append((addr, name))
        if name == "kevent_hooks_key":
            key = addr
        if kind in "tT":
            syms.append((addr, name))
    if key is None:
        print("kevent_hooks_key not found: is CONFIG_KEVENT set?")
        return 1
    syms.sort()
    addrs = [a for a, _ in syms]

    # The table lies inside .data, between __start___jump_table and __stop___jump_table.
    start = next(a for a, n in syms_all if n == "__start___jump_table")
    stop = next(a for a, n in syms_all if n == "__stop___jump_table")
    hdr = subprocess.run(["llvm-readelf", "-SW", vmlinux], check=True,
                         capture_output=True, text=True).stdout
    for line in hdr.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m:
            addr, off, size = (int(x, 16) for x in m.groups()[1:])
            if addr <= start and stop <= addr + size:
                break
    else:
        print("no section holds the jump table")
        return 1
    with open(vmlinux, "rb") as f:
        f.seek(off + start - addr)
        data = f.read(stop - start)
    vma = start

    sites = []
    for off in range(0, len(data) - 15, 16):
        code, _target, keyrel = struct.unpack_from("<iiq", data, off)
        entry = vma + off
        if ((entry + 8 + keyrel) & ~3) != key:
            continue
        pc = entry + code
        i = bisect.bisect_right(addrs, pc) - 1
        sites.append(syms[i][1] if i >= 0 else hex(pc))

    for s in sorted(sites):
        print(f"  static-key hook site in {s}")
    missing = [f for f in MUST_CONTAIN if f not in sites]
    if len(sites) < EXPECTED_SITES or missing:
        print(f"{len(sites)} sites (want {EXPECTED_SITES}); missing: {missing}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
