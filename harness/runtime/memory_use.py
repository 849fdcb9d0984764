"""The memory a process-runtime run holds, measured from /proc where the kernel cannot count it for us (no control
group of its own: a harness without cgroup delegation). Resident memory alone misses what a run keeps in
shared memory: files in /dev/shm or in the sandbox's own tmpfs, and memfds (a run wrote 1 GiB into each with
`--memory 300M` and succeeded). Here a run's memory is

    Σ (Pss − Pss_Shmem) over its processes          (private and file pages, shared ones split between sharers)
  + max(Σ Pss_Shmem, the shared-memory bytes it holds)

where those bytes are the blocks of every memfd and /dev/shm file one of its processes has open (each file once)
plus the used blocks of each tmpfs its sandbox mounted for itself (bubblewrap's /dev with its /dev/shm, and any
other tmpfs whose mount is the sandbox's own, never a folder bound in from this machine). Shared memory that is
mapped is counted once (the larger of what the mappings show and what the files hold).
"""
from __future__ import annotations

import os
from pathlib import Path

_SHARED_PREFIXES = ("/memfd:", "/dev/shm/")


def _pss(pid: int) -> tuple[int, int] | None:
    """(Pss, Pss_Shmem) in bytes, from smaps_rollup; None when it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        if key in ("Pss", "Pss_Shmem", "Rss"):
            values[key] = int(rest.split()[0]) * 1024
    if "Pss" not in values:
        return None
    return values["Pss"], values.get("Pss_Shmem", 0)


def _namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _own_tmpfs_bytes(pid: int) -> int:
    """Used bytes of the tmpfs mounts made inside PID's mount namespace (their root is the file system's own)."""
    total = 0
    try:
        lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        fields = line.split(" - ", 1)
        if len(fields) != 2 or not fields[1].startswith("tmpfs "):
            continue
        parts = fields[0].split()
        if len(parts) < 5 or parts[3] != "/":  # a folder bound in (its root is a path below the file system's)
            continue
        try:
            st = os.statvfs(f"/proc/{pid}/root{parts[4]}")
        except OSError:
            continue
        total += (st.f_blocks - st.f_bfree) * st.f_frsize
    return total


def used(pids: list[int], rss_of) -> int:
    """The memory the processes PIDS hold together (see the module's text); RSS_OF(pid) for a process whose
    smaps cannot be read."""
    host = _namespace(os.getpid())
    private = shmem_mapped = 0
    files: dict[tuple[int, int], int] = {}
    namespaces: dict[str, int] = {}
    for pid in pids:
        pss = _pss(pid)
        if pss is None:
            private += rss_of(pid)
        else:
            private += pss[0] - pss[1]
            shmem_mapped += pss[1]
        ns = _namespace(pid)
        sandboxed = ns is not None and ns != host
        if sandboxed:
            namespaces.setdefault(ns, pid)
        try:
            entries = list(os.scandir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        for entry in entries:
            try:
                target = os.readlink(entry.path)
                if not target.startswith(_SHARED_PREFIXES) or (sandboxed and target.startswith("/dev/shm/")):
                    continue  # (a sandbox's /dev/shm is its own tmpfs, counted whole below)
                st = os.stat(entry.path)
            except OSError:
                continue
            files[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    shared = sum(files.values()) + sum(_own_tmpfs_bytes(pid) for pid in namespaces.values())
    return private + max(shmem_mapped, shared)
