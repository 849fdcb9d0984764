"""The process runtime: participant code as a local process group — inside bubblewrap where it is installed.

The run gets its own copy of the code, a data view without test labels, and its own process group; the
harness enforces the wall-clock limit and cancelling kills the whole group and any child that left it. Where the
machine lets the harness make control groups (runtime.cgroups), the kernel enforces more: a pids limit
(limits.pids), the memory limit counting tmpfs, shm and memfd (an OOM kill is named `oom`), and a CPU quota of
`-c` CPUs; isolation then reads `+cgroup`. Without one, the harness measures the memory limit itself
(runtime.memory_use: the process tree's memory with its shared memory, tmpfs and memfds).

Sandboxed (``process.sandbox = "auto"`` with bwrap installed, or ``"bwrap"``): see harness.runtime.sandbox —
no network, its own mounts only, read-only binds of the task, as nobody.  Not sandboxed (no bwrap, or
``"none"``): the data view is a read-only copy of the task's folders, but the code can read any file of the
account that runs the harness and use the network; such runs are marked ``isolation: none`` in ps and submit.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from harness import resources
from harness.core.enums import FailureReason, RunStatus
from harness.core.errors import UserError
from harness.core.settings import inherited_environment

from . import base, cgroups, env_builds, environments, memory_use, run_log, sandbox, seccomp
from .base import Handle, Outcome, RunSpec, Runtime, gpu_env, target_env, thread_env, wait_by_polling

SDK_PATH = resources.SESSION_SDK
# A run's environment in words (Handle.environment) names what is its own: scoring.loader_probe reads these marks
ERA_MARK, SESSION_ENV_MARK = " + era ", " + session environment "
log = logging.getLogger("harness.runtime.process")
_CHECK_EVERY = 0.25  # seconds between memory/log checks


def build_env(spec: RunSpec, base: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(("NSML_", "HARNESS_", "RAY_"))}
    env.update(spec.env)
    env.update(thread_env(spec.cpus))
    env.update(gpu_env(spec.gpu_ids))
    env["PYTHONPATH"] = os.pathsep.join([str(SDK_PATH)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


KEPT_IN_SANDBOX = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")


def sandbox_env(spec: RunSpec, base: dict[str, str], tmp: Path) -> dict[str, str]:
    """A small environment: locale and PATH from the harness's, NSML's variables at the sandbox's paths."""
    env = {k: base[k] for k in KEPT_IN_SANDBOX if k in base}
    env.update(target_env(spec, sandbox.all_mounts(spec, tmp, SDK_PATH)))
    env.update(thread_env(spec.cpus))
    env.update(gpu_env(sandbox.visible_gpus(spec.gpu_ids)))
    env.update(PYTHONPATH=sandbox.SDK_TARGET, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", HOME="/tmp",
               TMPDIR="/tmp", USER="nobody")
    return env


def materialize_data_view(spec: RunSpec) -> None:
    """Without a sandbox: the task's folders are copied (reflinks where the filesystem has them) into the data
    view and made read-only, so that nothing the run does reaches the organizer's files."""
    for m, view, target in spec.data_mounts():
        dest = view / m.target[len(target) + 1:]
        if dest.is_dir() and not dest.is_symlink():
            dest.rmdir()  # the empty mount point
        else:
            dest.unlink(missing_ok=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["cp", "-R", "--reflink=auto", "--no-preserve=ownership", str(m.host), str(dest)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise OSError(f"copying {m.host} into the data view failed: {proc.stderr.strip()[:300]}")
        for dirpath, _dirs, files in os.walk(dest):
            for name in files:
                os.chmod(os.path.join(dirpath, name), 0o444)


def resolve_sandbox(setting: str, confine: bool = False) -> bool:
    """Whether runs go into bwrap: `auto` when it works here, `bwrap` demands it, `none` never. A run that must
    be CONFINED (RunSpec.confine) is refused where `auto` would run it unconfined."""
    if setting == "none":
        return False
    if sandbox.works():
        return True
    if setting == "bwrap":
        raise UserError("process.sandbox = 'bwrap': bubblewrap is not installed or cannot create namespaces here "
                        "(apt-get install bubblewrap)")
    if confine:
        raise base.LaunchRefused("this machine cannot confine participants' code (bubblewrap does not work here): "
                                 "an organizer installs it, uses the docker runtime, or sets [process] sandbox = "
                                 "\"none\" to run it unconfined")
    return False


def process_environment() -> str:
    """What the process runtime runs participant code with."""
    return f"python {platform.python_version()} ({sys.executable})"

PIDS_LIMIT = 512  # limits.pids, when there are no settings
RUN_NICE = 10  # where a run has no control groups (whose CPU weight is cgroups.RUNS_WEIGHT), it yields the CPU
#                to the harness itself by its nice value: its processes' and its session's (the kernel's autogroup).
#                A session the run starts gets a fresh autogroup at nice 0: it is niced at the next check (2 s). A
#                courtesy, not a gate: a run may set its own autogroup's nice back to 0 (contests want cgroups).

RUN_FILES = 65_536  # descriptors one process of a run may hold open (bounds what runtime.open_files looks at)


def niced(argv: list[str]) -> list[str]:
    """ARGV started at nice RUN_NICE and with at most RUN_FILES open descriptors (or this harness's own hard limit,
    if lower), where this machine has `nice` and `prlimit` (coreutils, util-linux)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    files = RUN_FILES if hard == resource.RLIM_INFINITY else min(RUN_FILES, hard)
    limit = [found, f"--nofile={files}:{files}", "--"] if (found := shutil.which("prlimit")) else []
    nice = [found, "-n", str(RUN_NICE)] if (found := shutil.which("nice")) else []
    return [*limit, *nice, *argv]


def _nice_sessions(pids) -> None:
    """The autogroups of the sessions of PIDS at nice RUN_NICE (on a kernel that groups processes by session, a
    process's own nice value weighs only within its session; a run's sandbox starts sessions of its own)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/autogroup", "r+") as fh:
                if fh.read().split()[-1:] != [str(RUN_NICE)]:
                    fh.seek(0)
                    fh.write(str(RUN_NICE))
        except (OSError, ValueError):
            pass


class ProcessHandle(Handle):
    def __init__(self, spec: RunSpec, proc: subprocess.Popen, isolation: str, group: cgroups.RunGroup | None = None):
        self.spec = spec
        self.group = group
        self.proc = proc
        self.pid = proc.pid
        self.isolation = isolation
        self.environment = process_environment()
        self.started = time.monotonic()
        self._cancel: tuple[FailureReason, str] | None = None
        self._kill_at, self._doomed = None, []  # (a cancel: when what is left gets SIGKILL, and what it signalled)
        self._outcome: Outcome | None = None
        self._last_check = self._next_measure = self._next_nice = 0.0
        self._places: list[tuple[str, bool]] | None = None  # (set by the runtime that started it)
        self.environment_held: environments.RunEnvironment | None = None  # (set by it too: released at close)
        self.log_relay: run_log.LogRelay | None = None  # (its too: what writes the run's output into its log)
        try:
            self._pidfd: int | None = os.pidfd_open(proc.pid)  # readable once the process has exited
        except (AttributeError, OSError):  # not Linux 5.3+: the scheduler polls on its tick
            self._pidfd = None

    def exit_fd(self) -> int | None:
        return self._pidfd

    def held_still(self):
        return self.group.still() if self.group is not None else super().held_still()

    def places(self) -> list[tuple[str, bool]] | None:
        return self._places

    def pids(self) -> list[int]:
        if self.group is not None:  # (every process of the run, whichever parent it left)
            return self.group.pids()
        return [p.pid for p in self._tree()]

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self.environment_held is not None:
            self.environment_held.release()
        base.remove_scratch(self.spec.paths.run)

    def status(self) -> RunStatus:
        return self._outcome.status if self._outcome else RunStatus.RUNNING

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root] + root.children(recursive=True)
        except psutil.Error:
            return []

    def _memory_used(self) -> int:
        """What the run holds (runtime.memory_use: its shared memory and its sandbox's tmpfs included); resident
        memory alone should that measurement fail in a way its own guards did not foresee."""
        tree = {p.pid: p for p in self._tree()}

        def rss_of(pid):
            try:
                return tree[pid].memory_info().rss
            except psutil.Error:
                return 0
        try:
            return memory_use.used(list(tree), rss_of)
        except Exception:  # noqa: BLE001 - the run's own shapes must never stop the scheduler that watches it
            log.exception("measuring run %s's memory failed; counting resident memory", self.spec.run_id)
            return sum(rss_of(pid) for pid in tree)

    def _over_memory(self, now: float) -> bool:
        """Whether the run holds more than its memory limit (no cgroup: the harness measures). A run that makes
        measuring slow is measured less often, never the scheduler held: at most a twentieth of its time."""
        used = self._memory_used()
        self._next_measure = now + 20 * (time.monotonic() - now)
        return used > self.spec.memory

    def _enforce_limits(self) -> None:
        spec = self.spec
        if spec.time_limit is not None and time.monotonic() - self.started > spec.time_limit:
            self.cancel(FailureReason.TIMEOUT, f"wall-clock limit of {spec.time_limit:g} s reached")
            return
        now = time.monotonic()
        if now - self._last_check < _CHECK_EVERY:
            return
        self._last_check = now
        if self.group is None and now >= self._next_nice:  # (again and again: a run may start new sessions)
            self._next_nice = now + 2.0
            _nice_sessions(self.pids())
        if spec.memory and self.group is None and now >= self._next_measure and self._over_memory(now):
            self.cancel(FailureReason.OOM, f"memory limit of {spec.memory} bytes exceeded (counting shared memory and "
                                           f"its tmpfs)")
            return

    def poll(self) -> Outcome | None:
        if self._outcome is not None:
            return self._outcome
        code = self.proc.poll()
        if code is None:
            if self._kill_at is None:
                self._enforce_limits()
            elif time.monotonic() >= self._kill_at:  # (cancelled, and its grace is over)
                self._signal_all(self._doomed + self._tree(), signal.SIGKILL)
            return None
        oom = self.group is not None and self.group.oom_killed()
        forks_refused = self.group is not None and self.group.pids_refused()
        self._reap_group()
        for p in self._doomed:  # (a cancelled run's children that left its group: psutil knows each by its start)
            with contextlib.suppress(psutil.Error):
                p.kill()
        if self.log_relay is not None:
            self.log_relay.finish()  # (every process of the run is gone: the rest of its output is in the pipe)
        if self._cancel is not None:
            reason, message = self._cancel
            status = RunStatus.STOPPED if reason is FailureReason.STOPPED else RunStatus.FAILED
            self._outcome = Outcome(status, reason, code, message)
        elif oom:
            self._outcome = Outcome(RunStatus.FAILED, FailureReason.OOM, code,
                                    f"memory limit of {self.spec.memory} bytes exceeded (counting tmpfs, shm and "
                                    f"memfd)")
        elif code == 0:
            self._outcome = Outcome(RunStatus.SUCCEEDED, None, 0, "")
        else:
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            if forks_refused:
                how += f" (it reached its limit of {self.pids_limit} processes and threads)"
            self._outcome = Outcome(RunStatus.FAILED, FailureReason.EXIT_CODE, code, f"process {how}")
        return self._outcome

    def wait(self, timeout: float | None = None) -> Outcome | None:
        return wait_by_polling(self, timeout)

    def _signal_all(self, procs: list[psutil.Process], sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass

    def cancel(self, reason: FailureReason = FailureReason.STOPPED, message: str = "") -> None:
        """SIGTERM to the whole process group (and children that left it) now; what is left gets SIGKILL at the
        first poll past kill_grace. It never waits: the scheduler's thread may stop many runs at once."""
        if self._outcome is not None or self._cancel is not None:
            return
        self._cancel = (reason, message or reason.value)
        self._kill_at, self._doomed = time.monotonic() + self.spec.kill_grace, self._tree()
        self._signal_all(self._doomed, signal.SIGTERM)

    pids_limit = 0

    def _reap_group(self) -> None:
        """The entry has exited: nothing it started may outlive the run (in its process group or its cgroup)."""
        base.kill_group(self.pid)
        if self.group is not None:
            self.group.remove()


class ProcessRuntime(Runtime):
    name = "process"
    handle_class = ProcessHandle  # what start() returns (a subclass may watch its runs differently)
    launch_builds = False  # the scheduler's loop never waits on an environment's build (a Ray node's task may)

    def _environment(self, spec: RunSpec) -> environments.RunEnvironment:
        """The interpreter and folders for this run: its era (by the code's `#nsml:` line) with the code's own
        requirements over it (built once per hash, see harness.runtime.environments), else the harness's own."""
        if self.settings is None:
            return environments.RunEnvironment(sys.executable, None)
        use = environments.Use(env_builds.Bounds.of(self.settings, spec.owner), True, self.launch_builds)
        return environments.for_code(self.settings.envs_dir, spec.workdir, self.settings.root, spec.source_builds,
                                     use=use)

    def start(self, spec: RunSpec) -> ProcessHandle:
        found = self._environment(spec)  # (held while the run lives: env_store.remove_unused leaves it alone)
        try:
            handle = self._start(spec, found)
        except BaseException:
            found.release()
            raise
        handle.environment_held = found
        return handle

    def _start(self, spec: RunSpec, found: environments.RunEnvironment) -> ProcessHandle:
        sandboxed = resolve_sandbox(self.settings.process_sandbox if self.settings else "auto", spec.confine)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv, cwd = [found.python, *spec.argv], spec.workdir
        if found.rootfs is not None and not sandboxed:
            raise UserError(f"era {found.era} runs under bubblewrap only (its root filesystem is the run's "
                            f"system): install bubblewrap, or set [process] sandbox = \"auto\"")
        if sandboxed:
            tmp = spec.paths.run / "tmp"
            tmp.mkdir(exist_ok=True)
            env, cwd = sandbox_env(spec, inherited_environment(), tmp), spec.paths.run
        else:
            materialize_data_view(spec)
            env = build_env(spec, inherited_environment())
        if found.path:
            env["PYTHONPATH"] = os.pathsep.join([env.get("PYTHONPATH", ""), *found.path]).strip(os.pathsep)
        if found.rootfs is not None and spec.gpu_ids:
            env["LD_LIBRARY_PATH"] = sandbox.DRIVER_TARGET  # this machine's driver, inside the era's system
        pids = self.settings.pids_limit if self.settings else PIDS_LIMIT
        group = cgroups.create(spec.paths.run, spec.memory, pids, spec.cpus)
        seccomp_fd = seccomp.filter_fd(sysv=group is not None) if sandboxed else None  # (no group: no SysV IPC)
        try:  # (the filter's descriptor is closed here whatever happens: bwrap has read it, or never will)
            if sandboxed:
                argv = sandbox.command(spec, tmp, SDK_PATH, argv, list(found.folders), found.rootfs, seccomp_fd)
            argv = niced(argv)
            if group is not None:
                argv = group.trampoline(argv)
            relay = run_log.LogRelay(spec.log_path, spec.max_log_bytes)  # (the run never holds the log file)
            try:
                proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=relay.write_end,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        pass_fds=() if seccomp_fd is None else (seccomp_fd,),
                                        preexec_fn=None if group is not None else cgroups.nproc_limit(pids))
            finally:
                relay.started()
        except BaseException:
            if group is not None:
                group.remove()
            raise
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        (spec.paths.run / "pid").write_text(str(proc.pid))  # for recovery, should the scheduler die
        isolation = ("bwrap" if sandboxed else "none") + ("+cgroup" if group is not None else "")
        handle = self.handle_class(spec, proc, isolation, group)
        handle.log_relay = relay
        handle.pids_limit = pids
        handle._places = sandbox.places(spec, tmp, SDK_PATH, list(found.folders)) if sandboxed \
            else [(str(spec.paths.run / "tmp"), True), *base.mount_places(spec.mounts, host_view=True)]
        if found.rootfs is not None:
            handle.environment += f"{ERA_MARK}{found.era}"
        if found.key:
            handle.environment += f"{SESSION_ENV_MARK}{found.key}"
        return handle

    def cleanup(self, run) -> bool:
        """After a scheduler died: kill what the run left. True when its participant code had started."""
        pidfile = Path(run.run_dir) / "pid"
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return False
        base.kill_group(pid)
        group = cgroups.leftover(Path(run.run_dir))
        if group is not None:
            group.remove()
        return True
