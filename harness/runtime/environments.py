"""Per-session Python environments for the process runtime: a virtualenv per requirements hash, made with uv.

A session whose code has ``requirements.txt`` or a literal ``install_requires`` in ``setup.py`` runs with its own
interpreter environment, layered over the harness's: a venv made by ``uv venv`` from the harness's interpreter,
with a ``.pth`` file that puts the harness environment's site-packages after its own (its packages win; torch and
the rest still come from the harness).  Requirement lines follow the same rules as the docker runtime's (names
with version specifiers, wheels only unless the task allows source builds), and every install is constrained to
the harness's torch so that no requirement pulls another build of it.  Environments are built once per hash
(under a file lock: two sessions with the same requirements share one), reused, and removed when unused for
``ENV_MAX_AGE_DAYS``.  ``nsml_package.txt`` (apt) and ``#nsml: IMAGE`` apply to the docker runtime only.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

from harness.core.errors import UserError

from .images import ImageError, nsml_image_line, requirements

ENV_MAX_AGE_DAYS = 14
READY = ".ready"
PINNED = ("torch",)  # packages a session may use but never reinstall: the harness's build is kept


def uv_path() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise UserError("requirements.txt: installing a session's requirements needs uv (pip install uv)")
    return found


def _pins() -> str:
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for name in PINNED:
        try:
            lines.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return "".join(f"{ln}\n" for ln in lines)


def wanted(code: Path) -> dict[str, str]:
    """The pip requirement files of a session's code (checked and normalised), without the apt list."""
    try:
        files = requirements(code)
    except ImageError as exc:
        raise UserError(str(exc)) from None
    return {k: v for k, v in files.items() if k != "nsml_package.txt"}


def notices(code: Path) -> list[str]:
    """What the process runtime does not apply, said once at `run`."""
    out = []
    image = nsml_image_line(code)
    if image:
        out.append(f"#nsml: {image} applies in the docker runtime only (the process runtime uses this machine's "
                   f"Python)")
    if (code / "nsml_package.txt").is_file():
        out.append("nsml_package.txt (apt packages) applies in the docker runtime only")
    return out


def env_hash(files: dict[str, str], source_builds: bool) -> str:
    digest = hashlib.sha256(f"{sys.version}\0{sys.executable}\0{source_builds}\0{_pins()}".encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()[:16]


def ensure(envs_dir: Path, code: Path, source_builds: bool = False, log=None) -> tuple[Path, str] | None:
    """The environment for CODE's requirements (built when missing), and its hash; None when it has none."""
    return ensure_files(envs_dir, wanted(code), source_builds, log)


def ensure_files(envs_dir: Path, files: dict[str, str], source_builds: bool = False,
                 log=None) -> tuple[Path, str] | None:
    """The environment for these (checked) requirement files, built when missing; None when there are none."""
    if not files:
        return None
    key = env_hash(files, source_builds)
    env = envs_dir / key
    envs_dir.mkdir(parents=True, exist_ok=True)
    with open(envs_dir / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per hash; the others wait and reuse it
        if (env / READY).exists():
            os.utime(env / READY)
            return env, key
        shutil.rmtree(env, ignore_errors=True)  # a build that died half-way
        _build(env, files, source_builds, log)
        (env / READY).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    return env, key


def _build(env: Path, files: dict[str, str], source_builds: bool, log) -> None:
    uv = uv_path()
    staging = env.with_name(env.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _run([uv, "venv", "-q", "--python", sys.executable, str(env)], "creating the environment")
        purelib = subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                  "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
        below = [p for p in site.getsitepackages() if Path(p).is_dir()]  # the harness's, after its own
        Path(purelib, "_harness_base.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n"
                                                              for p in below))
        (staging / "constraints.txt").write_text(_pins())
        args = [uv, "pip", "install", "-q", "--python", str(env / "bin" / "python"),
                "-c", str(staging / "constraints.txt")]
        if not source_builds:
            args += ["--only-binary", ":all:"]
        for name, content in files.items():
            (staging / name).write_text(content)
            args += ["-r", str(staging / name)]
        if log:
            log(f"installing {', '.join(sorted(files))} into a session environment (once per requirements)")
        _run(args, "installing the session's requirements")
    except BaseException:
        shutil.rmtree(env, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise UserError(f"requirements.txt: {what} failed: {' '.join(lines[-3:])[:400]}")


def collect_garbage(envs_dir: Path, max_age_days: float = ENV_MAX_AGE_DAYS) -> list[str]:
    """Remove environments no session used for MAX_AGE_DAYS (their READY stamp is touched on every use)."""
    removed = []
    if not envs_dir.is_dir():
        return removed
    limit = time.time() - max_age_days * 86400
    for ready in envs_dir.glob(f"*/{READY}"):
        if ready.stat().st_mtime < limit:
            shutil.rmtree(ready.parent, ignore_errors=True)
            removed.append(ready.parent.name)
    return removed
