"""The memory a process-runtime run holds, measured from /proc where the kernel cannot count it for us (no control
group of its own: a harness without cgroup delegation). Resident memory alone misses what a run keeps in a
file system in memory (a run wrote 600 MiB into /dev/shm under `--memory 300M` and succeeded). Here a run's
memory is

    Σ (Pss − Pss_Shmem) over its processes          (private and file pages, shared ones split between sharers)
  + max(Σ Pss_Shmem, the used bytes of its sandbox's own tmpfs + its memfds)

where its sandbox's own tmpfs are the tmpfs file systems mounted in its mount namespace that this process's
namespace does not have (bubblewrap's /dev with its /dev/shm; never a tmpfs of this machine bound in), each file
system once, by its device number, and its memfds are those its processes hold open or mapped (runtime.open_files:
a memfd need not be mapped to hold memory). Mapped shared memory is counted once (the larger of what the mappings
show and what the file systems and memfds hold). The sandbox gives the run no way to mount more (bubblewrap's
--disable-userns) and a read-only root (runtime.sandbox), and no SysV IPC to make (runtime.seccomp: an unmapped
segment would show in no process). What this cannot see without a cgroup — an unsandboxed run's files in this
machine's /dev/shm — is why contests should run where the harness can make control groups
(docs/operator/runtimes.md).

Everything read here is the run's to shape (mount points, file names): it is parsed as bytes, and any failure to
read or parse counts as nothing read, never as an error of the scheduler that calls it.
"""
from __future__ import annotations

import os
import time

from harness.runtime import open_files


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 20)
    except OSError:
        return None


def _pss(pid: int) -> tuple[int, int] | None:
    """(Pss, Pss_Shmem) in bytes, from smaps_rollup; None when it cannot be read."""
    text = _read(f"/proc/{pid}/smaps_rollup")
    if text is None:
        return None
    values = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(b":")
        if key in (b"Pss", b"Pss_Shmem"):
            try:
                values[key] = int(rest.split()[0]) * 1024
            except (ValueError, IndexError):
                return None
    if b"Pss" not in values:
        return None
    return values[b"Pss"], values.get(b"Pss_Shmem", 0)


def _unescape(field: bytes) -> bytes:
    """A mountinfo path: the kernel writes space, tab, newline and backslash as \\ooo."""
    out, i = bytearray(), 0
    while i < len(field):
        if field[i:i + 1] == b"\\" and field[i + 1:i + 4].isdigit():
            out.append(int(field[i + 1:i + 4], 8) & 0xFF)
            i += 4
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


def tmpfs_mounts(pid: int | str) -> dict[bytes, bytes]:
    """The tmpfs file systems PID's namespace has mounted: device number (major:minor) → a mount point."""
    text = _read(f"/proc/{pid}/mountinfo") or b""
    found: dict[bytes, bytes] = {}
    for line in text.splitlines():
        head, sep, tail = line.partition(b" - ")
        parts = head.split()
        if sep and len(parts) >= 5 and tail.split(b" ", 1)[0] == b"tmpfs":
            found.setdefault(parts[2], _unescape(parts[4]))
    return found


def _used_bytes(pid: int, mount_point: bytes) -> int:
    try:
        st = os.statvfs(b"/proc/%d/root" % pid + mount_point)
    except (OSError, ValueError):
        return 0
    return max(0, (st.f_blocks - st.f_bfree) * st.f_frsize)


MEMFD_BUDGET = 0.5  # seconds of looking for memfds in one measure (in the scheduler's loop: a lower bound past it)


def used(pids: list[int], rss_of, budget: float = 0.2) -> int:
    """The memory the processes PIDS hold together (see the module's text); RSS_OF(pid) for a process whose
    smaps cannot be read, or once BUDGET seconds are spent (smaps walks every mapping: 60,000 mappings in each of
    hundreds of processes would hold the caller for seconds; resident memory is a cheap read)."""
    here = set(tmpfs_mounts("self"))
    private = shmem_mapped = 0
    own: dict[bytes, tuple[int, bytes]] = {}  # a tmpfs of the run's own: device → (a pid that sees it, where)
    namespaces = set()
    deadline = time.monotonic() + budget
    for pid in pids:
        pss = _pss(pid) if time.monotonic() < deadline else None
        if pss is None:
            private += rss_of(pid)
        else:
            private += pss[0] - pss[1]
            shmem_mapped += pss[1]
        try:
            namespace = os.readlink(f"/proc/{pid}/ns/mnt")
        except OSError:
            continue
        if namespace in namespaces:
            continue
        namespaces.add(namespace)
        for device, mount_point in tmpfs_mounts(pid).items():
            if device not in here:
                own.setdefault(device, (pid, mount_point))
    held = sum(_used_bytes(pid, mount_point) for pid, mount_point in own.values())
    memfds = open_files.held(pids, set(), budget=MEMFD_BUDGET).memory  # (the caller paces measures by their time)
    return private + max(shmem_mapped, held + memfds)
