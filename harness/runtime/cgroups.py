"""Kernel limits for a process-runtime run: a control group of its own with a pids limit, a memory limit that
counts everything the run's processes charge (resident memory, tmpfs — the sandbox's own `/` and `/tmp` — shm
and memfd, page tables), and a CPU quota of its `-c` CPUs.

cgroup v2 (the unified hierarchy at /sys/fs/cgroup, with the pids, memory and cpu controllers delegated to the
harness's folder) is used where it is; otherwise the v1 hierarchies of those controllers (pids, memory, cpu).
Each run gets `nsml-harness/run-<hash of its run folder>` in each (run ids repeat across state roots), under a
parent whose CPU weight is a quarter of the default (RUNS_WEIGHT: the runs yield to the harness itself); the run's
first process puts itself there before it execs anything (a `sh` trampoline), so nothing it starts is outside.
Where no hierarchy can be written (an ordinary user without delegation), runs go without one and say so in their
isolation (`runtime.process` then limits processes with RLIMIT_NPROC — effective only for a non-root harness).
"""
from __future__ import annotations

import hashlib
import os
import resource  # (here, not in the child: an import between fork and exec can wait forever on a lock)
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "nsml-harness"
CFS_PERIOD = 100_000
RUNS_WEIGHT = 256  # the CPU weight of all runs together (v1 cpu.shares; the default, 1024, is the harness's): on a
#                    machine the runs keep busy, the scheduler and the server get four parts of five when they want it
MIN_QUOTA = 1_000


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _try_write(path: Path, value: str) -> None:
    """A setting the run's limits do not depend on: where it cannot be written, the groups go without it."""
    try:
        _write(path, value)
    except OSError:
        pass


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _own_v2_base() -> Path | None:
    if not (ROOT / "cgroup.controllers").exists():
        return None
    line = next((ln for ln in _read(Path("/proc/self/cgroup")).splitlines() if ln.startswith("0::")), "0::/")
    return ROOT / line[3:].lstrip("/")


def _v1_base(controller: str) -> Path | None:
    base = ROOT / controller
    return base if (base / "cgroup.procs").exists() else None


@dataclass
class RunGroup:
    """The run's control groups (one folder in v2; one per controller in v1)."""

    version: int
    folders: dict[str, Path] = field(default_factory=dict)  # controller → folder ("all" in v2)

    @property
    def procs_files(self) -> list[Path]:
        return sorted({f / "cgroup.procs" for f in self.folders.values()})

    def pids(self) -> list[int]:
        """The ids of every process in the run's groups."""
        return sorted({int(p) for f in self.procs_files for p in _read(f).split() if p.isdigit()})

    def trampoline(self, argv: list[str]) -> list[str]:
        """ARGV started so that its first process joins the groups before anything else runs."""
        files = [str(p) for p in self.procs_files]  # (as arguments: never pasted into the script)
        script = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 126; shift; n=$((n-1)); done; exec "$@"'
        return ["/bin/sh", "-c", script, "nsml-run", str(len(files)), *files, *argv]

    def memory_used(self) -> int | None:
        folder = self.folders.get("all") or self.folders.get("memory")
        if folder is None:
            return None
        text = _read(folder / ("memory.current" if self.version == 2 else "memory.usage_in_bytes")).strip()
        return int(text) if text.isdigit() else None

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the run for going over its memory limit."""
        folder = self.folders.get("all") or self.folders.get("memory")
        if folder is None:
            return False
        text = _read(folder / ("memory.events" if self.version == 2 else "memory.oom_control"))
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
        return False

    def pids_refused(self) -> bool:
        """Whether a fork was refused for the pids limit."""
        folder = self.folders.get("all") or self.folders.get("pids")
        text = _read(folder / "pids.events") if folder else ""
        return any(ln.startswith("max ") and ln.split()[1] != "0" for ln in text.splitlines())

    def remove(self, timeout: float = 5.0) -> None:
        """Kill whatever is left in the groups and remove them (a run's folders never outlive it)."""
        deadline = time.monotonic() + timeout
        self._freeze(False, timeout)  # (a process frozen by a v1 freezer would not die of its kill)
        for folder in self.folders.values():
            while folder.exists():
                for pid in _read(folder / "cgroup.procs").split():
                    try:
                        os.kill(int(pid), 9)
                    except (ProcessLookupError, PermissionError, ValueError):
                        pass
                try:
                    folder.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)

    def describe(self) -> str:
        return f"cgroup v{self.version}"

    def _freeze(self, frozen: bool, timeout: float) -> bool:
        """Freeze (or thaw) the run's processes; whether they are so within TIMEOUT seconds."""
        if self.version == 2:
            folder, state, want = self.folders.get("all"), "cgroup.freeze", "1" if frozen else "0"
        else:
            folder, state, want = self.folders.get("freezer"), "freezer.state", "FROZEN" if frozen else "THAWED"
        if folder is None:
            return False
        try:
            _write(folder / state, want)
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        while True:
            now = (f"frozen {want}" in _read(folder / "cgroup.events").splitlines()) if self.version == 2 \
                else _read(folder / state).strip() == want
            if now or not frozen:
                return now
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    @contextmanager
    def still(self, timeout: float = 0.25):
        """Hold the run's processes frozen for the block (yields whether they are: a process in a driver's call
        may not freeze within TIMEOUT, and the block then goes on without); thawed after, always."""
        try:
            yield self._freeze(True, timeout)
        finally:
            self._freeze(False, timeout)


def _quota(cpus: float) -> int:
    """The CPU quota a period for CPUS, never under the kernel's 1 ms minimum (a smaller one is refused)."""
    return max(MIN_QUOTA, int(cpus * CFS_PERIOD))


def _prepare_v2(name: str, memory: int | None, pids: int, cpus: float | None) -> RunGroup | None:
    base = _own_v2_base()
    if base is None:
        return None
    wanted, folder = {"pids", "memory", "cpu"}, None
    try:
        available = set(_read(base / "cgroup.controllers").split())
        if not {"pids", "memory"} <= available:
            return None
        parent = base / PARENT
        parent.mkdir(exist_ok=True)
        _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted & available)))
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted & available)))
        if "cpu" in available:
            _try_write(parent / "cpu.weight", str(RUNS_WEIGHT * 100 // 1024))  # (v2's default weight is 100)
        folder = parent / name
        folder.mkdir(exist_ok=True)
        _write(folder / "pids.max", str(pids))
        if memory:
            _write(folder / "memory.max", str(memory))
            if (folder / "memory.swap.max").exists():
                _write(folder / "memory.swap.max", "0")
        if cpus and "cpu" in available:
            _write(folder / "cpu.max", f"{_quota(cpus)} {CFS_PERIOD}")
    except OSError:
        if folder is not None:
            RunGroup(2, {"all": folder}).remove()
        return None
    return RunGroup(2, {"all": folder})


def _prepare_v1(name: str, memory: int | None, pids: int, cpus: float | None) -> RunGroup | None:
    group = RunGroup(1)
    try:
        for controller in ("pids", "memory", "cpu", "freezer"):
            base = _v1_base(controller)
            if base is None:
                if controller in ("cpu", "freezer"):
                    continue
                return None
            folder = base / PARENT / name
            folder.mkdir(parents=True, exist_ok=True)
            group.folders[controller] = folder
            if controller == "cpu":
                _try_write(base / PARENT / "cpu.shares", str(RUNS_WEIGHT))
        _write(group.folders["pids"] / "pids.max", str(pids))
        if memory:
            _write(group.folders["memory"] / "memory.limit_in_bytes", str(memory))
            if (group.folders["memory"] / "memory.memsw.limit_in_bytes").exists():
                _try_write(group.folders["memory"] / "memory.memsw.limit_in_bytes", str(memory))
        if cpus and "cpu" in group.folders:
            _write(group.folders["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD))
            _write(group.folders["cpu"] / "cpu.cfs_quota_us", str(_quota(cpus)))
    except OSError:
        group.remove()
        return None
    return group


def group_name(run_dir: Path) -> str:
    """The groups' name for the run in RUN_DIR: unique across state roots on one machine (run ids are not)."""
    return "run-" + hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def create(run_dir: Path, memory: int | None, pids: int, cpus: float | None) -> RunGroup | None:
    """The run's control groups with its limits, or None where this machine lets the harness make none."""
    name = group_name(run_dir)
    return _prepare_v2(name, memory, pids, cpus) or _prepare_v1(name, memory, pids, cpus)


def _place(pid: int | str) -> tuple[Path, int] | None:
    """Where PID is for freezing: its cgroup v2 folder, or its v1 freezer folder (and which version)."""
    for line in _read(Path(f"/proc/{pid}/cgroup")).splitlines():
        _, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "" and (ROOT / "cgroup.controllers").exists():
            return ROOT / rel.lstrip("/"), 2
        if "freezer" in controllers.split(",") and (base := _v1_base("freezer")) is not None:
            return base / rel.lstrip("/"), 1
    return None


def holding(pid: int) -> RunGroup | None:
    """The group an engine made for PID (a container's), for freezing it while its folders are measured; None
    where there is none to freeze, or where it is a group this harness itself is in (never freeze oneself)."""
    theirs, mine = _place(pid), _place("self")
    if theirs is None or (mine is not None and mine[0].is_relative_to(theirs[0])):
        return None
    return RunGroup(2, {"all": theirs[0]}) if theirs[1] == 2 else RunGroup(1, {"freezer": theirs[0]})


def leftover(run_dir: Path) -> RunGroup | None:
    """The groups of a run whose scheduler died (for cleanup), if any are there."""
    name = group_name(run_dir)
    base = _own_v2_base()
    if base is not None and (base / PARENT / name).is_dir():
        return RunGroup(2, {"all": base / PARENT / name})
    folders = {c: b / PARENT / name for c in ("pids", "memory", "cpu", "freezer")
               if (b := _v1_base(c)) is not None and (b / PARENT / name).is_dir()}
    return RunGroup(1, folders) if folders else None


def nproc_limit(pids: int):
    """Without a cgroup: RLIMIT_NPROC in the child (counted per real uid, and not enforced for root)."""
    if os.geteuid() == 0:
        return None

    def apply() -> None:  # (in the forked child of a threaded process: nothing imported here, no lock taken)
        resource.setrlimit(resource.RLIMIT_NPROC, (pids, pids))
    return apply
