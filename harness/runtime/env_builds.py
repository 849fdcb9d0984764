"""One step of building an environment for a participant's requirements, bounded (see runtime.env_store).

A step (``uv venv``, ``uv pip install``) runs in a process group of its own and is stopped, and its whole group
killed, past its ``Bounds``:

- **time**: ``limits.env_build_seconds``;
- **bytes**: ``limits.env_bytes`` for the environment, the installer's download cache, the step's temporary
  folder and its output together, measured every ``MEASURE_EVERY`` seconds while it runs and once at its end;
  each file and folder counts at least ``ENTRY_BYTES`` (what the filesystem spends on an inode: a million empty
  files are not free), and no file may pass the limit by itself (RLIMIT_FSIZE);
- **confined**: a session's step runs under bubblewrap where it works here: the system and the interpreter
  read-only (/dev too), the network, and only the build's own folders writable (its temporary folder as /tmp),
  in a pid namespace that dies with it, so a double-forked child cannot outlive the kill; in a control group
  of ``BUILD_MEMORY`` and ``BUILD_PIDS`` where the harness may make one; with only the environment variables
  an installer needs (``PASSED``: never the harness's database URL, tokens or cloud credentials). A source
  build (task.toml ``source_builds = true``) runs a package's own code: it never sees the task's labels or
  other users' sessions. It has a network namespace of its own, with only its own loopback: it reaches the
  package index through the harness's gate (runtime.egress), and nothing else of the machine or its networks.

The installer's cache is the build's own (``cache_of``), so a participant's downloads are never kept after it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import UserError
from harness.core.names import check_name
from harness.core.safefs import remove_tree
from harness.core.settings import inherited_environment
from harness.core.tree_usage import usage

from . import cgroups, egress, package_indexes, sandbox
from .base import kill_group

MEASURE_EVERY = 3.0  # seconds between two measures of a build's folders
MEASURE_ENTRIES, MEASURE_SECONDS = 200_000, 5.0  # bounds of one measure (past them: over the limit)
ENTRY_BYTES = 16 << 10  # what one file or folder costs at least (the usual bytes per inode of a filesystem)
OUTPUT_TAIL = 64 << 10  # what is read back of a step's output (its last lines make the error)
OUTPUT = "build-output.txt"
BUILD_MEMORY, BUILD_PIDS = 4 << 30, 512  # a confined step's control group
PASSED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
          "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")  # and UV_* (the index)
UV_USER_CONFIG = Path.home() / ".config" / "uv"  # the operator's uv settings (an index, a mirror), read-only


@dataclass(frozen=True)
class Bounds:
    """What one build may take, and who uses what it leaves (None: no bound, nobody)."""

    bytes: int | None = None
    seconds: float | None = None
    owner: str | None = None
    confined: bool = False  # run under bubblewrap (a session's build: see the module's text)
    reach: tuple[str, ...] = ()  # "host:port" a confined build may reach besides its index (limits.env_index_hosts)

    @classmethod
    def of(cls, settings, owner: str | None) -> "Bounds":
        return cls(settings.env_bytes, settings.env_build_seconds, check_name(owner) if owner else None, True,
                   tuple(settings.env_index_hosts))


def cache_of(env: Path) -> Path:
    """The installer's download cache for the build of ENV (removed when the build ends)."""
    return env.with_name(env.name + ".cache")


def tmp_of(env: Path) -> Path:
    """The build of ENV's temporary folder (its /tmp, TMPDIR and output): measured with it, removed after it."""
    return env.with_name(env.name + ".tmp")


def measured(folders) -> tuple[int, str]:
    """Bytes the FOLDERS hold together (each entry at least ENTRY_BYTES), and why that is only a lower bound
    ("" when it is exact)."""
    held, why = 0, ""
    for folder in folders:
        used = usage(Path(folder), MEASURE_ENTRIES, MEASURE_SECONDS)
        held += max(used.size, used.allocated, used.entries * ENTRY_BYTES)
        if not used.complete and not used.retry:
            why = why or used.why
    return held, why


def _over(label: str, what: str, bounds: Bounds, held: int, why: str) -> UserError:
    said = f"more than can be measured ({why})" if why else f"{held} bytes"
    return UserError(f"{label}: {what} stopped: the environment and its downloads took {said}, over "
                     f"limits.env_bytes = {bounds.bytes}; ask for fewer or smaller packages")


def bounded_step(cmd: list[str], what: str, label: str, bounds: Bounds, folders=(), built: Path | None = None,
                 limit: int = 400) -> None:
    """Run one build step stopped past BOUNDS (time; bytes of FOLDERS, measured while it runs), confined where
    they say so. BUILT: the environment being built, whose cache and temporary folder (`cache_of`, `tmp_of`:
    the caller removes them) are measured with it and hold the step's output. A failure is one line: LABEL,
    WHAT, and the tool's last lines."""
    env = inherited_environment()
    folders = list(folders)
    with contextlib.ExitStack() as stack:
        gate = None
        if built is not None:
            folders += [cache_of(built), tmp_of(built)]
            for folder in folders:
                Path(folder).mkdir(parents=True, exist_ok=True)
            env.update(UV_CACHE_DIR=str(cache_of(built)), UV_LINK_MODE="copy",  # (copied: each counted once, held)
                       TMPDIR=str(tmp_of(built)))
            if bounds.confined and sandbox.works():
                gate = stack.enter_context(egress.Gate(package_indexes.index_hosts(env, bounds.reach), env))
                cmd = confined(cmd, folders, env.get("SSL_CERT_FILE", ""), gate, package_indexes.index_paths(env))
                env = {k: v for k, v in env.items() if _passed(k) and "PROXY" not in k.upper()}
                env.update(HOME="/tmp", TMPDIR="/tmp", **egress.proxy_environment())
                if UV_USER_CONFIG.is_dir():
                    env["XDG_CONFIG_HOME"] = str(UV_USER_CONFIG.parent)
        if bounds.confined and gate is None:
            env = {k: v for k, v in env.items() if _passed(k)}
        if bounds.bytes and (prlimit := shutil.which("prlimit")):
            cmd = [prlimit, f"--fsize={bounds.bytes}", "--", *cmd]  # (no one file past the limit between measures)
        try:
            _grouped(cmd, env, what, label, bounds, folders, built, limit)
        except UserError as error:
            if gate is None or not gate.refused:
                raise
            raise UserError(f"{error}{gate.refusal_note()}") from None


def _passed(name: str) -> bool:
    """Whether a confined step gets the harness's variable NAME: PASSED, and uv's own but those that publish
    (an index's login does reach it: uv needs it, and a source build's code can read it too)."""
    return name in PASSED or (name.startswith("UV_") and not name.startswith("UV_PUBLISH"))


def _grouped(cmd: list[str], env: dict, what: str, label: str, bounds: Bounds, folders, built: Path | None,
             limit: int) -> None:
    """The step in a control group of its own where it is a confined build's, its output kept with the build."""
    group = cgroups.create(built, BUILD_MEMORY, BUILD_PIDS, None) if built is not None and bounds.confined else None
    if group is not None:
        cmd = group.trampoline(cmd)
    try:
        if built is not None:
            remove_tree(tmp_of(built) / OUTPUT)  # (the step before's, or whatever the build left there)
            fd = os.open(tmp_of(built) / OUTPUT, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            with os.fdopen(fd, "w+b") as out:
                _bounded(cmd, env, what, label, bounds, folders, limit, out)
        else:
            with tempfile.TemporaryFile() as out:
                _bounded(cmd, env, what, label, bounds, folders, limit, out)
    finally:
        if group is not None:
            group.remove()


def confined(cmd: list[str], writable: list[Path], cert_file: str = "", gate: egress.Gate | None = None,
             readable: list[str] = ()) -> list[str]:
    """CMD under bubblewrap: the system and the interpreter read-only, only the WRITABLE folders of the host (each
    at its own path), the last of them as /tmp too; CERT_FILE (the CA bundle) and READABLE (local indexes)
    read-only; no network but GATE's (CMD started by egress.RELAY, its proxy variables egress.proxy_environment)."""
    wrapped = sandbox.base_command(False, Path(writable[-1]))
    for folder in writable:
        wrapped += ["--bind", str(folder), str(folder)]
    inside = (*sandbox.SYSTEM_DIRS, *sandbox.python_roots(), "/etc/ssl")
    for path in (cmd[0], cert_file, str(UV_USER_CONFIG), "/etc/uv", *readable):
        if os.path.isabs(path) and os.path.exists(path) and not any(Path(path).is_relative_to(d) for d in inside):
            wrapped += ["--ro-bind", path, path]  # (an installer, a CA bundle, uv's settings, where they lie)
    if gate is not None:
        wrapped += ["--ro-bind", str(gate.folder), egress.INSIDE]  # (a socket connects read-only; no file is made)
        cmd = [sys.executable, "-I", "-S", "-c", egress.RELAY, gate.socket_inside(), str(egress.PORT), *cmd]
    return [*wrapped, "--remount-ro", "/dev", "--remount-ro", "/", "--", *cmd]


def _bounded(cmd: list[str], env: dict, what: str, label: str, bounds: Bounds, folders, limit: int, out) -> None:
    deadline = time.monotonic() + bounds.seconds if bounds.seconds else None
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        next_measure = time.monotonic() + MEASURE_EVERY
        while proc.poll() is None:
            try:
                proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise UserError(f"{label}: {what} stopped: still running after limits.env_build_seconds = "
                                f"{bounds.seconds:g} s")
            if bounds.bytes and now >= next_measure:
                held, why = measured(folders)
                if held > bounds.bytes or why:
                    raise _over(label, what, bounds, held, why)
                next_measure = time.monotonic() + MEASURE_EVERY
    finally:
        _kill_group(proc)
    if bounds.bytes:
        held, why = measured(folders)
        if held > bounds.bytes or why:
            raise _over(label, what, bounds, held, why)
    if proc.returncode != 0:
        out.seek(max(0, out.seek(0, os.SEEK_END) - OUTPUT_TAIL))
        lines = [ln for ln in out.read().decode(errors="replace").splitlines() if ln.strip()]
        raise UserError(f"{label}: {what} failed: {' '.join(lines[-3:])[:limit]}")


def _kill_group(proc: subprocess.Popen) -> None:
    """The step's whole process group (what a build backend left running too), then the step itself reaped."""
    kill_group(proc.pid)
    proc.wait()
