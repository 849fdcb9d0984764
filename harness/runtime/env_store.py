"""Environments built for sessions' requirements: each build bounded, each environment charged to a user.

The harness installs what a session's ``requirements.txt`` (or ``setup.py``) names on its own disk, in its own
processes, before the run is queued (``runtime.environments``). The participant chooses the packages, so:

- **time**: a build step past ``limits.env_build_seconds`` is stopped (its whole process group) and removed;
- **bytes**: the environment and the installer's download cache together, measured every ``MEASURE_EVERY``
  seconds while it builds and once at its end, may not pass ``limits.env_bytes``; past it the build is stopped
  and removed. The cache is the build's own (``UV_CACHE_DIR`` beside the environment, removed at its end): what
  a participant's packages download is never kept on the machine after the build;
- **per user**: what an environment holds once built is charged to the user whose run built it
  (``ENVS/.users/USER/KEY`` holds its bytes) and counts toward ``limits.user_storage_bytes`` with that user's
  sessions (``runs.create.check_storage``). A user over it first has their own least recently used environments
  that no run is using removed (``evict``: built again when used again), and is refused only past that.
  Another user's run reusing an environment (same requirements, same hash) is not charged again.

In use: a run holds ``KEY.use`` shared for its whole life (``hold``, taken while ``KEY.lock`` is held by the
build or reuse), and removal (``remove_unused``: eviction and the 14-day collection) takes ``KEY.lock`` and then
``KEY.use`` exclusively without waiting: an environment is never removed from under a run, nor mid-build.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import UserError
from harness.core.names import check_name
from harness.core.safefs import remove_tree
from harness.core.settings import inherited_environment
from harness.core.tree_usage import usage

READY = ".ready"
USERS = ".users"
MEASURE_EVERY = 3.0  # seconds between two measures of a build's folders
MEASURE_ENTRIES, MEASURE_SECONDS = 500_000, 5.0  # bounds of one measure (an environment past them: over the limit)
MAX_AGE_DAYS = 14  # an environment no run used this long is removed by the scheduler (`collect_garbage`)


@dataclass(frozen=True)
class Bounds:
    """What one build may take, and who is charged for what it leaves (None: no bound, nobody)."""

    bytes: int | None = None
    seconds: float | None = None
    owner: str | None = None

    @classmethod
    def of(cls, settings, owner: str | None) -> "Bounds":
        return cls(settings.env_bytes, settings.env_build_seconds, check_name(owner) if owner else None)


def cache_of(env: Path) -> Path:
    """The installer's download cache for the build of ENV (removed when the build ends)."""
    return env.with_name(env.name + ".cache")


def measured(folders) -> tuple[int, str]:
    """Bytes the FOLDERS hold together, and why that is only a lower bound ("" when it is exact)."""
    held, why = 0, ""
    for folder in folders:
        used = usage(Path(folder), MEASURE_ENTRIES, MEASURE_SECONDS)
        held += max(used.size, used.allocated)
        if not used.complete and not used.retry:
            why = why or used.why
    return held, why


def _over(label: str, what: str, bounds: Bounds, held: int, why: str) -> UserError:
    said = f"more than can be measured ({why})" if why else f"{held} bytes"
    return UserError(f"{label}: {what} stopped: the environment and its downloads took {said}, over "
                     f"limits.env_bytes = {bounds.bytes}; ask for fewer or smaller packages")


def bounded_step(cmd: list[str], what: str, label: str, bounds: Bounds, folders=(), cache: Path | None = None,
                 limit: int = 400) -> None:
    """Run one build step in a process group of its own, stopped past BOUNDS (time; bytes of FOLDERS, measured
    while it runs); the installer's cache is CACHE. A failure is one line: LABEL, WHAT, and the tool's last lines."""
    env = inherited_environment()
    if cache is not None:
        env.update(UV_CACHE_DIR=str(cache), UV_LINK_MODE="copy")  # (copied, not linked: each counted once, as held)
    deadline = time.monotonic() + bounds.seconds if bounds.seconds else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
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
                    held, why = measured([*folders, *([cache] if cache else [])])
                    if held > bounds.bytes or why:
                        raise _over(label, what, bounds, held, why)
                    next_measure = time.monotonic() + MEASURE_EVERY
        finally:
            _kill_group(proc)
        if proc.returncode != 0:
            text = b"".join(f.seek(0) or f.read() for f in (err, out)).decode(errors="replace")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            raise UserError(f"{label}: {what} failed: {' '.join(lines[-3:])[:limit]}")
    if bounds.bytes:
        held, why = measured([*folders, *([cache] if cache else [])])
        if held > bounds.bytes or why:
            raise _over(label, what, bounds, held, why)


def _kill_group(proc: subprocess.Popen) -> None:
    """The step's whole process group (what a build backend left running too), then the step itself reaped."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def charge(envs_dir: Path, key: str, bounds: Bounds) -> None:
    """The environment KEY was just built for BOUNDS.owner: what it holds is theirs (see the module's text)."""
    if bounds.owner is None:
        return
    held, _ = measured([envs_dir / key])
    folder = envs_dir / USERS / bounds.owner
    folder.mkdir(parents=True, exist_ok=True)
    (folder / key).write_text(str(held))


def charged(envs_dir: Path, user: str) -> list[tuple[float, str, int]]:
    """(last used, key, bytes) of each environment charged to USER that is still there, least recently used first.
    A charge whose environment is gone (collected, evicted) is forgotten."""
    folder = envs_dir / USERS / user
    out = []
    for marker in (folder.iterdir() if folder.is_dir() else ()):
        try:
            out.append(((envs_dir / marker.name / READY).stat().st_mtime, marker.name, int(marker.read_text())))
        except FileNotFoundError:
            marker.unlink(missing_ok=True)
        except (OSError, ValueError):
            continue
    return sorted(out)


def hold(envs_dir: Path, key: str):
    """A run's hold on the environment KEY (a file whose close releases it): never removed while it is held.
    Taken while KEY.lock is held (environments._built_once)."""
    fh = open(envs_dir / f"{key}.use", "a")
    fcntl.flock(fh, fcntl.LOCK_SH)
    return fh


def remove_unused(envs_dir: Path, key: str) -> bool:
    """Remove the environment KEY unless it is being built, reused or run: True when it was removed."""
    with open(envs_dir / f"{key}.lock", "a") as lock, open(envs_dir / f"{key}.use", "a") as use:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(use, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        remove_tree(envs_dir / key)
        remove_tree(cache_of(envs_dir / key))
        return True


def evict(envs_dir: Path, user: str, wanted: int) -> int:
    """Remove USER's least recently used environments that no run holds until WANTED bytes are freed; the bytes
    freed."""
    freed = 0
    for _, key, held in charged(envs_dir, user):
        if freed >= wanted:
            break
        if remove_unused(envs_dir, key):
            (envs_dir / USERS / user / key).unlink(missing_ok=True)
            freed += held
    return freed


def collect_garbage(envs_dir: Path, max_age_days: float = MAX_AGE_DAYS) -> list[str]:
    """Remove environments no run used for MAX_AGE_DAYS (their READY stamp is touched on every use), and the
    leftovers of builds that died (a cache, a folder never made ready) once nobody builds them."""
    removed: list[str] = []
    if not envs_dir.is_dir():
        return removed
    limit = time.time() - max_age_days * 86400
    for lock in envs_dir.glob("*.lock"):
        key = lock.name[:-len(".lock")]
        try:
            stale = (envs_dir / key / READY).stat().st_mtime < limit
        except FileNotFoundError:
            stale = (envs_dir / key).exists() or cache_of(envs_dir / key).exists()
        if stale and remove_unused(envs_dir, key):
            removed.append(key)
    return removed

