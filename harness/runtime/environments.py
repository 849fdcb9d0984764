"""Per-session Python environments for the process runtime: a virtualenv per requirements hash, made with uv.

A session whose code has ``requirements.txt`` or a literal ``install_requires`` in ``setup.py`` runs with its own
interpreter environment, layered over the harness's: a venv made by ``uv venv`` from the harness's interpreter,
with a ``.pth`` file that puts the harness environment's site-packages after its own (its packages win).

The resolver sees what the harness has: each harness distribution's metadata is copied into the new venv (a
``.dist-info`` with METADATA and a RECORD that names only its own three files), so a requirement the harness
already satisfies (``torch>=1.11``, the torch a ``torchvision`` or ``timm`` needs) is not installed again and its
code comes from the harness; a requirement that wants another version (``numpy<2``) replaces only that copy and
installs its own, which wins on the path. The harness's torch is pinned (``PINNED``): a requirement it cannot
satisfy (``torch==1.5.0``) is one line naming the file, the line and the era environments that have one.

Requirement lines follow the same rules as the docker runtime's (names with version specifiers, wheels only
unless the task allows source builds). Environments are built once per hash (under a file lock: two sessions
with the same requirements share one), reused, and removed when unused for 14 days; each build is bounded in time
and bytes and charged to the user whose run built it (``runtime.env_store``).
``nsml_package.txt`` (apt) and ``#nsml: IMAGE`` apply to the docker runtime only.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
import site
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from harness.core.errors import UserError
from harness.core.safefs import remove_tree

from . import env_builds, env_store, sandbox
from .images import SETUP_REQUIREMENTS, ImageError, code_era, install_requires, requirements, with_era_packages

PINNED = ("torch", "tensorflow", "tensorflow-cpu")  # frameworks a session uses but never reinstalls: its
#                                                      environment's build (the harness's, or its era's) is kept


def uv_path(what: str = "requirements.txt") -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise UserError(f"{what}: installing a session's requirements needs uv (pip install uv)")
    return found


def shown(files) -> str:
    """The files requirements came from, as their author knows them (setup.py, not our build-context name)."""
    return ", ".join("setup.py (install_requires)" if name == SETUP_REQUIREMENTS else name for name in sorted(files))


def _pins(era=None) -> str:
    """The constraints file that keeps the environment's PINNED builds (pins_of)."""
    return "".join(f"{name}=={version}\n" for name, version in pins_of(era).items())


def wanted(code: Path, era=None) -> dict[str, str]:
    """The pip requirement files of a session's code (checked and normalised), without the apt list. A pin that
    the environment's own build cannot satisfy (PINNED: the harness's, or ERA's) is refused here, naming its file
    and line."""
    try:
        files = requirements(code)
    except ImageError as exc:
        raise UserError(str(exc)) from None
    pins = pins_of(era)
    for where, line in _source_lines(code):
        _check_pinned(where, line, pins, era)
    return {k: v for k, v in files.items() if k != "nsml_package.txt"}


def pins_of(era) -> dict[str, str]:
    """PINNED packages → the version a run's environment has: ERA's (a root filesystem), else the harness's."""
    if era is not None and era.has_rootfs:
        return {k: v for k, v in era.pins().items() if k in PINNED}
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PINNED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _source_lines(code: Path):
    """(FILE:LINE, requirement text) of requirements.txt and setup.py's install_requires, as written."""
    req = code / "requirements.txt"  # (both read after images.requirements checked their size and count)
    if req.is_file():
        for i, text in enumerate(req.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            yield f"requirements.txt:{i}", text.split(" #", 1)[0].strip()
    setup = code / "setup.py"
    if setup.is_file():
        items = install_requires(setup)
        wanted_at = {item: None for item in items}
        for i, text in enumerate(setup.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for quoted in re.findall(r"""["']([^"']*)["']""", text):  # each literal once: linear in the file
                if quoted in wanted_at and wanted_at[quoted] is None:
                    wanted_at[quoted] = i
        for item in items:
            yield f"setup.py:{wanted_at[item]}" if wanted_at[item] else "setup.py: install_requires", item


def _check_pinned(where: str, text: str, pins: dict[str, str], era) -> None:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return  # not a requirement line (blank, comment): the gate in images has said what it must
    name = req.name.lower()
    if name not in pins or (req.marker is not None and not req.marker.evaluate()):
        return
    have = pins[name]
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        from .eras import suggest  # the catalogue: which era has such a build
        own = f"era {era.name}'s" if era is not None and era.has_rootfs else "the harness's"
        raise UserError(f"{where}: {text}: the environment's {name} is {own} {have}, never reinstalled; "
                        f"{suggest(name, req)}")


def notices(code: Path, root: Path | None = None) -> list[str]:
    """What `run` says of the process runtime's environment for CODE: the era it chose and why, and what it
    does not apply."""
    out = []
    choice = choose_era(code, root)
    if not choice.is_default:
        out.append(f"environment: era {choice.era.name}: {choice.why}")
    if (code / "nsml_package.txt").is_file():
        out.append("nsml_package.txt (apt packages) applies in the docker runtime only")
    return out


def env_hash(files: dict[str, str], source_builds: bool) -> str:
    digest = hashlib.sha256(f"{sys.version}\0{sys.executable}\0{source_builds}\0{_pins()}".encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class RunEnvironment:
    """What a process-runtime run of some code starts in (see `for_code`)."""
    python: str  # the interpreter (inside ROOTFS when there is one)
    key: str | None  # the session environment's hash (None: none was needed)
    folders: tuple[Path, ...] = ()  # host folders the run needs, read-only at their own paths
    path: tuple[str, ...] = ()  # more PYTHONPATH entries, after the SDK
    rootfs: Path | None = None  # an era's root filesystem: the run's system
    era: str = ""
    why: str = ""
    held: object = field(default=None, compare=False)  # a run's hold on its environment (env_store.hold)

    def release(self) -> None:
        """The run that held this environment is over: it may be removed again (env_store.remove_unused)."""
        if self.held is not None:
            self.held.close()


def choose_era(code: Path, root: Path | None):
    """The era of CODE's environment for the process runtime (images.code_era), else the harness's own."""
    from . import eras
    return code_era(code, root) or eras.resolve(None, eras.catalogue(root))


@dataclass(frozen=True)
class Use:
    """Whom an environment is for and what its caller may do. BOUNDS: the build's limits and user (runtime.
    env_builds.Bounds; the user is charged, runtime.env_store). HOLD: a run's, held until it `release`s. BUILD:
    False for a launch in the scheduler's loop, which never waits on a build: a missing environment is one line."""
    bounds: env_builds.Bounds = env_builds.Bounds()
    hold: bool = False
    build: bool = True
    before_build: Callable[[], None] | None = None  # (a check of the caller's, right before a build: not a reuse)


def for_code(envs_dir: Path, code: Path, root: Path | None, source_builds: bool = False, log=None,
             use: Use = Use()) -> RunEnvironment:
    """The environment a process-runtime run of CODE gets: its era (by its `#nsml:` line), with the code's own
    requirements over it (built when missing, as USE allows)."""
    from . import eras
    choice = choose_era(code, root)
    era = choice.era
    files = wanted(code, era)
    if era.has_rootfs:
        rootfs = eras.require_built(era)
        python = eras.python_of(era)
        if not files:
            return RunEnvironment(python, None, rootfs=rootfs, era=era.name, why=choice.why)
        site, key, held = ensure_era_site(envs_dir, files, era, source_builds, log, use)
        return RunEnvironment(python, key, (site,), (str(site),), rootfs, era.name, choice.why, held)
    found = ensure_files(envs_dir, with_era_packages(files, era.packages), source_builds, log, use)
    if found is None:
        return RunEnvironment(sys.executable, None, era=era.name, why=choice.why)
    env_dir, key, held = found
    return RunEnvironment(str(env_dir / "bin" / "python"), key, (env_dir,), era=era.name, why=choice.why, held=held)


def ensure_era_site(envs_dir: Path, files: dict[str, str], era, source_builds: bool = False, log=None,
                    use: Use = Use()):
    """A session's requirements over an era's root filesystem: a folder of packages for the era's Python and
    glibc (uv pip install --target), put on PYTHONPATH before the era's own. The era's packages are shown to
    the resolver as installed (their metadata), so only what the era lacks is installed. (folder, key, hold)"""
    from . import eras
    digest = hashlib.sha256(f"{era.key}\0{source_builds}".encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    key = "era-" + digest.hexdigest()[:16]

    def build(env: Path) -> None:
        site = env / "site"
        site.mkdir(parents=True)
        _show_harness_packages(site, [str(era.rootfs / eras.SITE.lstrip("/"))])
        (env / "constraints.txt").write_text(_pins(era))
        _install([uv_path(shown(files)), "pip", "install", "-q", "--target", str(site), "--python-version",
                  era.python, "--python-platform", f"x86_64-manylinux_{eras.SUITES[era.base][1]}",
                  "-c", str(env / "constraints.txt")], files, env, env, source_builds, f"over era {era.name}", log,
                 use.bounds)
    env, held = _built_once(envs_dir, key, build, use, shown(files))
    return env / "site", key, held


def _built_once(envs_dir: Path, key: str, build, use: Use, label: str):
    """ENVS_DIR/KEY, made by BUILD(folder) once: under a file lock (two sessions with the same requirements
    share one build: another waits up to LOCK_WAIT, then is refused in one line), again where a build died
    half-way, its stamp touched on every use (env_store.collect_garbage reads it), charged to its user. (folder,
    the run's hold or None: taken under the lock, so it cannot be removed between its build and its run.)"""
    env = envs_dir / key
    envs_dir.mkdir(parents=True, exist_ok=True)
    if not use.build:  # (a launch: never waits on a build nor on a removal; its hold first, then whether it is there)
        try:
            held = env_store.hold(envs_dir, key, nowait=True)
        except BlockingIOError:
            held = None
        if held is None or env_store.used_at(envs_dir, key) is None:
            if held is not None:
                held.close()
            raise UserError(f"{label}: the environment for these requirements is not on this machine now (removed "
                            f"to make room, or being built again): run again")
        env_store.touch(envs_dir, key)
        env_store.charge(envs_dir, key, use.bounds.owner)
        if not use.hold:
            held.close()
        return env, held if use.hold else None
    with _key_lock(envs_dir, key, label, use.bounds.owner):
        if env_store.used_at(envs_dir, key) is not None:
            env_store.touch(envs_dir, key)
        else:
            if use.before_build is not None:
                use.before_build()
            with env_store.building(envs_dir, use.bounds.owner, label):
                for folder in (env, env_builds.cache_of(env), env_builds.tmp_of(env)):  # (a build that died)
                    remove_tree(folder)
                try:
                    build(env)
                except BaseException:
                    remove_tree(env)
                    raise
                finally:
                    remove_tree(env_builds.cache_of(env))
                    remove_tree(env_builds.tmp_of(env))
                env_store.stamp(envs_dir, key, env_builds.measured([env])[0])
        env_store.charge(envs_dir, key, use.bounds.owner)
        return env, env_store.hold(envs_dir, key) if use.hold else None


LOCK_WAIT = 5.0  # seconds a request waits for another's build of the same environment before it is refused


@contextlib.contextmanager
def _key_lock(envs_dir: Path, key: str, label: str, owner: str | None):
    """KEY.lock, waited on for LOCK_WAIT at most by a user's request (a build holds it for minutes, and a waiting
    request holds a server thread); as long as it takes by the harness's own (an evaluator's environment)."""
    if owner is None:
        with env_store.locked(envs_dir / f"{key}.lock", fcntl.LOCK_EX):
            yield
        return
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fh = env_store.locked(envs_dir / f"{key}.lock", fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline or env_store.builder_busy(envs_dir, owner):  # (likely theirs: at once)
                raise UserError(f"{label}: the environment for these requirements is being built for another run "
                                f"now: run again when it is done") from None
            time.sleep(0.2)
    with fh:
        yield


def ensure_files(envs_dir: Path, files: dict[str, str], source_builds: bool = False, log=None, use: Use = Use(),
                 kind: str = ""):
    """The environment for these (checked) requirement files, built when missing: (folder, key, the run's hold);
    None when there are none. KIND: a prefix of the key for environments that are not sessions' (an evaluator's
    is never one a participant built, is charged for or may evict)."""
    if not files:
        return None
    key = kind + env_hash(files, source_builds)
    env, held = _built_once(envs_dir, key, lambda env: _build(env, files, source_builds, log, use.bounds), use,
                            shown(files))
    return env, key, held


def _build(env: Path, files: dict[str, str], source_builds: bool, log, bounds: env_builds.Bounds) -> None:
    uv = uv_path(shown(files))
    staging = env.with_name(env.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        env_builds.bounded_step([uv, "venv", "-q", "--python", sys.executable, str(env)], "creating the environment",
                               shown(files), bounds, [env], env)
        purelib = subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                  "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
        below = [p for p in site.getsitepackages() if Path(p).is_dir()]  # the harness's, after its own
        Path(purelib, "_harness_base.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n"
                                                              for p in below))
        _show_harness_packages(Path(purelib), below)
        (staging / "constraints.txt").write_text(_pins())
        _install([uv, "pip", "install", "-q", "--python", str(env / "bin" / "python"),
                  "-c", str(staging / "constraints.txt")], files, env, staging, source_builds,
                 "into a session environment", log, bounds)
    finally:  # (a failed build's folder is removed by _built_once)
        shutil.rmtree(staging, ignore_errors=True)


def _install(args: list[str], files: dict[str, str], env: Path, folder: Path, source_builds: bool, where: str, log,
             bounds: env_builds.Bounds) -> None:
    """uv ARGS with the requirement FILES (written into FOLDER: ENV or beside it), wheels only unless the task
    allows builds; within BOUNDS, ENV and FOLDER measured (env_builds.bounded_step)."""
    if not source_builds:
        args = [*args, "--only-binary", ":all:"]
    for name, content in files.items():
        (folder / name).write_text(content)
        args += ["-r", str(folder / name)]
    if log:
        log(f"installing {shown(files)} {where} (once per requirements)")
    if source_builds and bounds.confined and not sandbox.works():
        raise UserError(f"{shown(files)}: this task lets requirements build from source, which runs each package's "
                        f"own code: on this machine that needs bubblewrap (apt-get install bubblewrap), or the "
                        f"docker runtime")
    env_builds.bounded_step(args, f"installing the session's requirements {where}", shown(files), bounds,
                           sorted({env, folder}), env)


SHIM_INSTALLER = "nsml-harness (metadata only: the code is the harness's)\n"


def _show_harness_packages(purelib: Path, harness_dirs: list[str]) -> None:
    """A copy of each harness distribution's metadata in the new venv, for the resolver (see the module's text).
    Its RECORD names only these files, so replacing it never touches the harness's own files."""
    from importlib.metadata import distributions

    for dist in distributions(path=harness_dirs):
        src = Path(getattr(dist, "_path", ""))
        target = purelib / src.name
        if not src.name.endswith(".dist-info") or not (src / "METADATA").is_file() or target.exists():
            continue
        target.mkdir()
        (target / "METADATA").write_bytes((src / "METADATA").read_bytes())
        (target / "INSTALLER").write_text(SHIM_INSTALLER)
        (target / "RECORD").write_text("".join(f"{src.name}/{f},,\n" for f in ("METADATA", "INSTALLER", "RECORD")))
