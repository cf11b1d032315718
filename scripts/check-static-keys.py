#!/usr/bin/env python3
"""Prove that every kevent hook site is a static-key jump (a NOP while no
module is registered): read the kernel's __jump_table, keep the entries whose
key is kevent_hooks_key, name the function around each site and the hook it
guards (the __kevent_* function its out-of-line branch calls), and match
them against the hook call sites of patches/0001-*.patch.

usage: check-static-keys.py VMLINUX
Prints one line per hook call site of the patch and one per static-key site
found; exits 1 if a call site of the patch has no static-key site, or if a
site is not a NOP in the image."""
import bisect
import collections
import fnmatch
import re
import struct
import subprocess
import sys

# Every hook call in patches/0001-*.patch: (hook, file, function that calls
# it, functions the site may be found in). The compiler may inline a static
# function into its callers (a function of the same file, or a system call's
# wrappers), so for those the callers are named too; a function whose
# address is taken or that is not static always keeps its own copy. A site
# inlined into several callers gives several sites: only one is needed.
MUST_CONTAIN = [
    ("kevent_task_exec", "fs/exec.c", "begin_new_exec", ["begin_new_exec"]),
    ("kevent_file_release", "fs/file_table.c", "__fput",
     ["__fput", "____fput", "__fput_sync", "delayed_fput"]),
    ("kevent_task_exit", "kernel/exit.c", "do_exit", ["do_exit"]),
    ("kevent_signal", "kernel/signal.c", "__send_signal_locked",
     ["__send_signal_locked", "send_signal_locked", "kill_pid_usb_asyncio",
      "do_notify_parent"]),
    ("kevent_posix_timer_fire", "kernel/time/posix-timers.c",
     "posix_timer_queue_signal", ["posix_timer_queue_signal"]),
    ("kevent_posix_timer_free", "kernel/time/posix-timers.c", "posix_timer_free",
     ["posix_timer_free", "posix_timer_unhash_and_free", "do_timer_create",
      "*sys_timer_create", "*sys_timer_delete", "itimer_delete", "exit_itimers"]),
    ("kevent_posix_timer_create", "kernel/time/posix-timers.c", "do_timer_create",
     ["do_timer_create", "*sys_timer_create"]),
    ("kevent_sock_event", "net/core/sock.c", "sock_def_wakeup", ["sock_def_wakeup"]),
    ("kevent_sock_event", "net/core/sock.c", "sock_def_error_report",
     ["sock_def_error_report"]),
    ("kevent_sock_event", "net/core/sock.c", "sock_def_readable", ["sock_def_readable"]),
    ("kevent_sock_event", "net/core/sock.c", "sock_def_write_space",
     ["sock_def_write_space"]),
    ("kevent_sock_event", "net/core/sock.c", "sock_def_write_space_wfree",
     ["sock_def_write_space_wfree", "sock_wfree"]),
    ("kevent_sock_event", "net/core/stream.c", "sk_stream_write_space",
     ["sk_stream_write_space"]),
    ("kevent_tcp_data_ready", "net/ipv4/tcp_input.c", "tcp_data_ready", ["tcp_data_ready"]),
    ("kevent_sock_event", "net/unix/af_unix.c", "unix_write_space", ["unix_write_space"]),
]
# At least one static-key site per hook call of the patch.
EXPECTED_SITES = len(MUST_CONTAIN)

# The x86 NOPs a static-key site is in the image: 2 bytes or 5 bytes.
NOP2 = bytes.fromhex("6690")
NOP5 = bytes.fromhex("0f1f440000")

# How far past a site's branch target to look for the call of the hook.
SLOW_PATH_BYTES = 512


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def hook_called_at(vmlinux, target):
    """The __kevent_* function that the branch target's code calls first."""
    out = run("llvm-objdump", "-d", "--no-show-raw-insn",
              f"--start-address={target:#x}",
              f"--stop-address={target + SLOW_PATH_BYTES:#x}", vmlinux)
    for line in out.splitlines():
        m = re.search(r"\b(?:call|jmp)\w*\s+\S+\s+<(__kevent_\w+)>", line)
        if m:
            return m.group(1)[2:]
    return None


def main(vmlinux):
    syms = []
    syms_all = []
    key = None
    for line in run("llvm-nm", "--defined-only", vmlinux).splitlines():
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
    sections = []
    for line in run("llvm-readelf", "-SW", vmlinux).splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m:
            sections.append(tuple(int(x, 16) for x in m.groups()[1:]))
    image = open(vmlinux, "rb")

    def read(vma, size):
        for addr, off, length in sections:
            if addr and addr <= vma and vma + size <= addr + length:
                image.seek(off + vma - addr)
                return image.read(size)
        return None

    data = read(start, stop - start)
    if data is None:
        print("no section holds the jump table")
        return 1
    vma = start

    # struct jump_entry on x86-64: s32 code, s32 target, s64 key, each
    # relative to its own address; the key's low bits are flags.
    sites = []  # (function, hook)
    not_nop = []
    for off in range(0, len(data) - 15, 16):
        code, target, keyrel = struct.unpack_from("<iiq", data, off)
        entry = vma + off
        if ((entry + 8 + keyrel) & ~3) != key:
            continue
        pc = entry + code
        i = bisect.bisect_right(addrs, pc) - 1
        func = syms[i][1] if i >= 0 else hex(pc)
        sites.append((func, hook_called_at(vmlinux, entry + 4 + target)))
        # objtool has made the jump of a default-false key a NOP in the image.
        insn = read(pc, 5) or b""
        if not (insn.startswith(NOP2) or insn.startswith(NOP5)):
            not_nop.append(f"{func} at {pc:#x}: {insn.hex()}")

    # Match each hook call of the patch with one site of that hook in one of
    # the functions it may be found in.
    left = collections.Counter(sites)
    missing = []
    print("hook call sites of the patch:")
    for hook, path, caller, where in MUST_CONTAIN:
        found = next((s for w in where for s in sorted(left) if left[s] and
                      s[1] == hook and fnmatch.fnmatchcase(s[0], w)), None)
        if found:
            left[found] -= 1
            inlined = "" if found[0] == caller else f" (inlined into {found[0]})"
            print(f"  ok       {hook} in {caller} ({path}): static-key site{inlined}")
        else:
            missing.append(f"{hook} in {caller}")
            print(f"  MISSING  {hook} in {caller} ({path}): no static-key site in "
                  f"{', '.join(where)}")
    extra = sorted(left.elements())
    if extra:
        print("more static-key sites (copies of an inlined hook call):")
        for func, hook in extra:
            print(f"  {hook or 'an unknown hook'} in {func}")
    print(f"{len(sites)} static-key sites of kevent_hooks_key, "
          f"{len(MUST_CONTAIN) - len(missing)} of {EXPECTED_SITES} hook calls of the patch found")
    for site in not_nop:
        print(f"  NOT A NOP: {site}")
    if len(sites) < EXPECTED_SITES or missing or not_nop:
        print(f"FAILED: missing: {', '.join(missing) or '(none)'}; "
              f"{len(not_nop)} sites are not a NOP")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
