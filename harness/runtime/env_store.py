"""Environments built for sessions' requirements: who uses each, what it costs them, when it may go.

The harness installs what a session's ``requirements.txt`` (or ``setup.py``) names on its own disk, in its own
processes (``runtime.environments``; each build step bounded by ``runtime.env_builds``). Participants choose
the packages, so environments are a user's storage like their sessions:

- **charged to every user who uses one**: an environment a user's ``run`` builds or reuses is charged to them
  (``ENVS/.users/USER/KEY`` holds its bytes, measured when it was built and kept in its stamp ``ENVS/KEY.ready``,
  outside the folders a build may write) and counts
  toward ``limits.user_storage_bytes`` with their sessions (``runs.create.check_storage``). Another user's run
  reusing it is charged too, so nobody pays for what others keep using;
- **evicted to make room**: a user at the limit first has their own least recently used charges dropped
  (``evict``); an environment nobody is charged for any more, and no run holds, is removed (built again if
  used again);
- **held while a run uses it**: a run holds ``KEY.use`` shared for its life (``hold``), and removal
  (``remove_unused``: eviction and the 14-day collection) takes ``KEY.lock`` and then ``KEY.use`` exclusively
  without waiting: an environment is never removed from under a run, nor mid-build. A lock file is removed with
  its environment, and every lock taken here checks that its file is still the one at its path;
- **docker too**: a derived image (``runtime.images``) a user's run uses is charged the same way, by what it
  adds to its base, under the key ``image-HASH`` (a stamp folder holds its size and last use); removing it
  removes the image, which Docker refuses while a container uses it;
- **one build per user at a time** (``building``): a user's second concurrent build is refused in one line, so
  what one user has in flight is at most one ``limits.env_bytes``; and at most ``MAX_BUILDS`` users' builds at
  once per process (a build holds the request's thread: a crowd of builders must not hold all of a server's).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import threading
import time
from pathlib import Path

from harness.core.errors import UserError
from harness.core.safefs import remove_tree, write_whole

from .env_builds import cache_of, tmp_of

USERS = ".users"
BUILDERS = ".builders"  # ENVS/.builders/USER: the lock of USER's one build (apart from .users: any name is a user's)
MAX_AGE_DAYS = 14  # an environment no run used this long is removed by the scheduler (`collect_garbage`)
COLLECT_EVERY = 3600.0  # seconds between two collections by a scheduler that never stops (`collection_due`)
_collected: dict[Path, float] = {}
_collected_lock = threading.Lock()
KEY_RE = re.compile(r"(era-|image-)?[0-9a-f]{16}")  # a session's environment (an evaluator's is never charged)
IMAGE = "image-"  # the key of a docker runtime's derived image: IMAGE + its tag's hash
MAX_BUILDS = 4  # users' builds at once in one process (the server's request threads are 40)
_builds = threading.BoundedSemaphore(MAX_BUILDS)


def locked(path: Path, operation: int):
    """PATH (created if missing) open and flock-ed with OPERATION, checked to still be the file at PATH once
    locked (a remover unlinks lock files while it holds them); BlockingIOError with LOCK_NB when taken."""
    while True:
        fh = open(path, "a")
        try:
            fcntl.flock(fh, operation)
            if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
                return fh
        except FileNotFoundError:
            pass
        except BaseException:
            fh.close()
            raise
        fh.close()


def hold(envs_dir: Path, key: str, nowait: bool = False):
    """A run's hold on the environment KEY (a file whose close releases it): never removed while it is held.
    Taken while KEY.lock is held (environments._built_once), or before `used_at` is asked; NOWAIT (a launch):
    BlockingIOError while it is being removed."""
    return locked(envs_dir / f"{key}.use", fcntl.LOCK_SH | (fcntl.LOCK_NB if nowait else 0))


@contextlib.contextmanager
def building(envs_dir: Path, user: str | None, label: str):
    """USER's one build at a time: a second one, while the first runs, is refused in one line."""
    if user is None:
        yield
        return
    (envs_dir / BUILDERS).mkdir(parents=True, exist_ok=True)
    try:
        fh = locked(envs_dir / BUILDERS / user, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"{label}: another environment of yours is being built now (one at a time): run again "
                        f"when it is done") from None
    with fh:
        if not _builds.acquire(blocking=False):
            raise UserError(f"{label}: {MAX_BUILDS} environments are being built now, the most at once: run again "
                            f"in a minute")
        try:
            yield
        finally:
            _builds.release()


def builder_busy(envs_dir: Path, user: str | None) -> bool:
    """Whether USER's one build is going on now."""
    if user is None:
        return False
    try:
        locked(envs_dir / BUILDERS / user, fcntl.LOCK_EX | fcntl.LOCK_NB).close()
    except BlockingIOError:
        return True
    except FileNotFoundError:  # (no .builders folder yet: nobody has built)
        return False
    return False


def ready_of(envs_dir: Path, key: str) -> Path:
    """KEY's stamp: there once it is built, holding what it takes, touched on every use (outside ENVS/KEY, which
    its build may write: a link or a folder planted there is never the harness's to follow)."""
    return envs_dir / f"{key}.ready"


def used_at(envs_dir: Path, key: str) -> float | None:
    """When KEY was last used, if it is built (its stamp a regular file); None otherwise."""
    try:
        st = os.lstat(ready_of(envs_dir, key))
    except FileNotFoundError:
        return None
    return st.st_mtime if stat.S_ISREG(st.st_mode) else None


def touch(envs_dir: Path, key: str) -> None:
    os.utime(ready_of(envs_dir, key), follow_symlinks=False)


def stamp(envs_dir: Path, key: str, size: int) -> None:
    """KEY is built and takes SIZE bytes (what each user using it is charged)."""
    write_whole(ready_of(envs_dir, key), str(size))


def charge(envs_dir: Path, key: str, user: str | None) -> None:
    """USER's run uses the environment KEY (just built or reused): it is theirs to pay for, until evicted."""
    if user is None or not KEY_RE.fullmatch(key):
        return
    size = _number(ready_of(envs_dir, key))
    folder = envs_dir / USERS / user
    folder.mkdir(parents=True, exist_ok=True)
    write_whole(folder / key, str(size or 0), 0o600)


def use_image(envs_dir: Path, tag: str, size: int, user: str | None) -> str:
    """USER's run uses the derived image TAG, which adds SIZE bytes to its base: stamped (last use) and charged.
    Its key."""
    key = IMAGE + tag.rpartition(":")[2]
    if not KEY_RE.fullmatch(key):
        raise ValueError(f"not a derived image: {tag}")
    envs_dir.mkdir(parents=True, exist_ok=True)
    with locked(envs_dir / f"{key}.lock", fcntl.LOCK_EX):  # (runs launching at once; a removal meanwhile)
        if used_at(envs_dir, key) is None:
            stamp(envs_dir, key, size)
        else:
            touch(envs_dir, key)
        charge(envs_dir, key, user)
    return key


def _remove_image(key: str) -> bool:
    """The derived image of KEY gone (True), or kept because a container uses it (False)."""
    import docker.errors

    from .docker_runtime import client
    from .images import ENV_REPO
    try:
        client().images.remove(f"{ENV_REPO}:{key[len(IMAGE):]}")
    except docker.errors.ImageNotFound:
        pass
    except Exception:  # noqa: BLE001 - in use by a container, or no engine answers: kept for now
        return False
    return True


def _sweep_builds() -> None:
    """What docker builds left behind when their harness died (runtime.image_builds.sweep), where an engine answers."""
    from .docker_runtime import client, engine_answers
    from .image_builds import sweep
    from .images import ENV_REPO
    try:
        if engine_answers():
            sweep(client(), ENV_REPO)
    except Exception:  # noqa: BLE001 - the engine went away: the next collection sweeps
        pass


def _number(path: Path) -> int | None:
    """A small regular file's integer (a marker, a stamp), read without following links or blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as fh:
        text = fh.read(32)
    return int(text) if text.isdigit() else None


def charged(envs_dir: Path, user: str) -> list[tuple[float, str, int]]:
    """(last used, key, bytes) of each environment USER is charged for, least recently used first. A charge
    whose environment is gone (collected, evicted) is forgotten."""
    folder = envs_dir / USERS / user
    out = []
    for marker in (folder.iterdir() if folder.is_dir() else ()):
        if not KEY_RE.fullmatch(marker.name):
            continue
        used = used_at(envs_dir, marker.name)
        if used is None:
            marker.unlink(missing_ok=True)
            continue
        out.append((used, marker.name, _number(marker) or 0))
    return sorted(out)


def remove_unused(envs_dir: Path, key: str, older_than: float | None = None) -> bool:
    """Remove the environment KEY, its build's leftovers, every charge for it and its lock files, unless it is
    being built, reused or run (or, with OLDER_THAN, was used since): True when it was removed."""
    env = envs_dir / key
    try:
        with locked(envs_dir / f"{key}.lock", fcntl.LOCK_EX | fcntl.LOCK_NB), \
                locked(envs_dir / f"{key}.use", fcntl.LOCK_EX | fcntl.LOCK_NB):
            if older_than is not None and (used_at(envs_dir, key) or 0) >= older_than:
                return False
            if key.startswith(IMAGE) and not _remove_image(key):
                return False
            remove_tree(ready_of(envs_dir, key))  # (first: never a stamp without its environment)
            for folder in (env, cache_of(env), tmp_of(env), env.with_name(key + ".building")):
                remove_tree(folder)
            for marker in (envs_dir / USERS).glob(f"*/{key}"):
                marker.unlink(missing_ok=True)
            for name in (f"{key}.use", f"{key}.lock"):  # (while held: `locked` sees the file change)
                (envs_dir / name).unlink(missing_ok=True)
            return True
    except BlockingIOError:
        return False


def evict(envs_dir: Path, user: str, wanted: int) -> int:
    """Drop USER's least recently used charges until WANTED bytes are freed; an environment nobody else is charged
    for is removed with the charge, and one a run holds is left charged. The bytes freed."""
    freed = 0
    for _, key, size in charged(envs_dir, user):
        if freed >= wanted:
            break
        others = [m for m in (envs_dir / USERS).glob(f"*/{key}") if m.parent.name != user]
        if others or remove_unused(envs_dir, key):
            (envs_dir / USERS / user / key).unlink(missing_ok=True)
            freed += size
    return freed


def collection_due(envs_dir: Path) -> bool:
    """Whether this process last collected ENVS_DIR over COLLECT_EVERY seconds ago (then: now it has)."""
    now = time.monotonic()
    with _collected_lock:
        if now - _collected.get(envs_dir, -COLLECT_EVERY) < COLLECT_EVERY:
            return False
        _collected[envs_dir] = now
    return True


def collect_garbage(envs_dir: Path, max_age_days: float = MAX_AGE_DAYS) -> list[str]:
    """Remove environments no run used for MAX_AGE_DAYS (their READY stamp is touched on every use: looked at
    again under the locks), and the leftovers of builds that died once nobody builds them (docker's too)."""
    _sweep_builds()
    removed: list[str] = []
    if not envs_dir.is_dir():
        return removed
    limit = time.time() - max_age_days * 86400
    keys = {p.name.rpartition(".")[0] for pattern in ("*.lock", "*.use", "*.ready") for p in envs_dir.glob(pattern)}
    for key in sorted(keys):
        stale = (used_at(envs_dir, key) or 0) < limit  # (or a build that died, or only lock files left)
        if stale and remove_unused(envs_dir, key, older_than=limit):
            removed.append(key)
    return removed
