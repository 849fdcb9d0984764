"""A seccomp filter for sandboxed runs (bubblewrap's `--seccomp FD`): file-system watches refused.

A run could otherwise watch the harness walk its folders (inotify reports each folder opened and closed; fanotify
likewise) and move its bytes into a folder the walk has passed, to be measured small (core.tree_usage). Both
calls answer ENOSYS, as on a kernel built without them: libraries that watch files (watchdog and the like) fall
back to polling. Every other call is allowed; the filter is a classic BPF program built here, for x86_64 (and
32-bit x86 programs on it) and aarch64 — on another machine the run goes without it.
"""
from __future__ import annotations

import errno
import os
import platform
import struct

_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_X32_BIT = 0x40000000
# audit arch → the numbers of inotify_init, inotify_init1 and fanotify_init there
_REFUSED = {
    0xC000003E: (253, 294, 300),  # x86_64 (and every x32 call: nr | 0x40000000)
    0x40000003: (291, 332, 338),  # i386 programs on x86_64
    0xC00000B7: (26, 262),  # aarch64 (no inotify_init)
}
_MACHINES = {"x86_64": (0xC000003E, 0x40000003), "amd64": (0xC000003E, 0x40000003), "aarch64": (0xC00000B7,),
             "arm64": (0xC00000B7,)}


def program(machine: str | None = None) -> bytes | None:
    """The filter as bytes of `struct sock_filter`, or None on a machine it has no numbers for."""
    arches = _MACHINES.get((machine or platform.machine()).lower())
    if not arches:
        return None
    code: list[tuple[int, int, int, int | str]] = [(_LD_W_ABS, 0, 0, 4)]  # the call's arch
    for arch in arches:
        block: list[tuple[int, int, int, int | str]] = [(_LD_W_ABS, 0, 0, 0)]  # the call's number
        if arch == 0xC000003E:
            block.append((_JGE_K, "deny", 0, _X32_BIT))
        block += [(_JEQ_K, "deny", 0, nr) for nr in _REFUSED[arch]]
        block.append((_RET_K, 0, 0, _ALLOW))
        code.append((_JEQ_K, 0, len(block), arch))  # another arch: skip the block
        code += block
    code.append((_RET_K, 0, 0, _ALLOW))
    deny = len(code)
    code.append((_RET_K, 0, 0, _ERRNO | errno.ENOSYS))
    out = b""
    for i, (op, jt, jf, k) in enumerate(code):
        jt = deny - i - 1 if jt == "deny" else jt
        out += struct.pack("=HBBI", op, jt, jf, k)
    return out


def filter_fd() -> int | None:
    """A pipe's read end holding the filter, for bwrap to read (the caller passes it and closes it after);
    None where there is no filter for this machine."""
    prog = program()
    if prog is None:
        return None
    r, w = os.pipe()
    try:
        os.write(w, prog)  # (a few hundred bytes: within a pipe's buffer)
    finally:
        os.close(w)
    return r
