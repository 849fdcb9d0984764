"""A seccomp filter for sandboxed runs (bubblewrap's `--seccomp FD`): file-system watches and io_uring refused.

A run could otherwise watch the harness walk its folders (inotify reports each folder opened and closed,
fanotify likewise, and dnotify — fcntl F_NOTIFY — signals when another process lists a folder) and move its bytes
into a folder the walk has passed, to be measured small (core.tree_usage). inotify and fanotify answer ENOSYS,
as on a kernel built without them, and F_NOTIFY EINVAL, as with dnotify turned off: libraries that watch files
(watchdog and the like) fall back to polling. io_uring answers ENOSYS too, as on a kernel built without it: a
file registered with a ring stays open where /proc does not show it, so a run could hold a deleted file's bytes
out of the harness's sight (runtime.open_files); code that uses io_uring falls back to ordinary calls (as under
docker's newer default profile). Where the run has no control group (the kernel would not count what it holds),
SysV IPC's makers answer ENOSYS as well (shmget, semget, msgget: as on a kernel built without SysV IPC): an
unmapped SysV segment, a queue's messages and a semaphore array are memory the run holds that no process of it
shows (runtime.memory_use); POSIX shared memory and semaphores (/dev/shm, what multiprocessing and torch use)
are counted and stay. Every other call is allowed; the filter is a classic BPF program
built here, for x86_64 (and 32-bit x86 programs on it) and aarch64 — on another machine the run goes without it.
"""
from __future__ import annotations

import errno
import os
import platform
import struct
from dataclasses import dataclass
from functools import lru_cache

_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_X32_BIT = 0x40000000
_ARG1_LOW = 24  # offsetof(struct seccomp_data, args[1]), its low word (little-endian machines only)
F_NOTIFY = 1026  # fcntl's dnotify: a signal when another process lists the folder


@dataclass(frozen=True)
class _Arch:
    audit: int
    watches: tuple[int, ...]  # inotify_init, inotify_init1, fanotify_init (those it has), io_uring_setup, _enter,
    #                           _register (425-427 on every architecture)
    fcntls: tuple[int, ...]  # fcntl (and fcntl64)
    sysv: tuple[int, ...]  # shmget, semget, msgget (and 32-bit x86's ipc(), through which it makes them too)


_IO_URING = (425, 426, 427)
_X86_64 = _Arch(0xC000003E, (253, 294, 300, *_IO_URING), (72,), (29, 64, 68))  # (and every x32 call)
_I386 = _Arch(0x40000003, (291, 332, 338, *_IO_URING), (55, 221), (395, 393, 399, 117))  # 32-bit x86 programs
_AARCH64 = _Arch(0xC00000B7, (26, 262, *_IO_URING), (25,), (194, 190, 186))
_MACHINES = {"x86_64": (_X86_64, _I386), "amd64": (_X86_64, _I386), "aarch64": (_AARCH64,), "arm64": (_AARCH64,)}


@lru_cache(maxsize=None)
def program(machine: str | None = None, sysv: bool = True) -> bytes | None:
    """The filter as bytes of `struct sock_filter`, or None on a machine it has no numbers for. A call of an
    architecture the machine's table does not name (32-bit ARM on aarch64, say) is refused whole. SYSV: whether
    SysV IPC may be made (a run in a control group of its own)."""
    arches = _MACHINES.get((machine or platform.machine()).lower())
    if not arches:
        return None
    code: list[tuple] = [(_LD_W_ABS, 0, 0, 4)]  # the call's arch
    for n, arch in enumerate(arches):
        code.append((_JEQ_K, 0, f"arch{n + 1}", arch.audit))  # another arch: on to the next block
        code.append((_LD_W_ABS, 0, 0, 0))  # the call's number
        if arch is _X86_64:
            code.append((_JGE_K, "nosys", 0, _X32_BIT))
        code += [(_JEQ_K, "nosys", 0, nr) for nr in (*arch.watches, *(() if sysv else arch.sysv))]
        code += [(_JEQ_K, f"fcntl{n}", 0, nr) for nr in arch.fcntls]
        code.append((_RET_K, 0, 0, _ALLOW))
        code.append(f"fcntl{n}")
        code.append((_LD_W_ABS, 0, 0, _ARG1_LOW))
        code.append((_JEQ_K, "inval", 0, F_NOTIFY))
        code.append((_RET_K, 0, 0, _ALLOW))
        code.append(f"arch{n + 1}")
    code.append("nosys")  # (also where an architecture not in the table falls through)
    code.append((_RET_K, 0, 0, _ERRNO | errno.ENOSYS))
    code.append("inval")  # as a kernel with dnotify turned off answers
    code.append((_RET_K, 0, 0, _ERRNO | errno.EINVAL))
    return _assemble(code)


def _assemble(code: list) -> bytes:
    """Instructions and label names → bytes, each jump to a label made relative."""
    labels, at = {}, 0
    for item in code:
        if isinstance(item, str):
            labels[item] = at
        else:
            at += 1
    out, i = b"", 0
    for item in code:
        if isinstance(item, str):
            continue
        op, jt, jf, k = item
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        assert 0 <= jt < 256 and 0 <= jf < 256
        out += struct.pack("=HBBI", op, jt, jf, k)
        i += 1
    return out


def filter_fd(sysv: bool = True) -> int | None:
    """A pipe's read end holding the filter (SYSV: see `program`), for bwrap to read (the caller passes it and
    closes it after); None where there is no filter for this machine."""
    prog = program(None, sysv)
    if prog is None:
        return None
    r, w = os.pipe()
    try:
        os.write(w, prog)  # (a few hundred bytes: within a pipe's buffer)
    finally:
        os.close(w)
    return r
