"""The wheel folder the GPU check carries to a GPU machine (no package registry there), and its installer.

A GPU machine of this workplace has Python 3.12 with a CUDA torch and the scientific stack, but not SQLAlchemy,
Alembic, FastAPI, the docker SDK or uv. The folder holds the harness's own wheel and every wheel its requirements
need, for CPython 3.12 on x86-64 Linux, at the versions this checkout's environment runs (the tested set) — except
the heavy packages such a machine provides (PROVIDED), which are never carried.

    python bench/gpu_wheels.py build  DIR   # here, with the registry: the harness wheel + the closure (pip download)
    python bench/gpu_wheels.py verify DIR   # here: the folder is complete for the GPU machine's Python
    python bench/gpu_wheels.py install DIR TARGET   # there: what this interpreter lacks, into TARGET (pip --target)

One resolver serves all three: it walks the harness's requirements (markers evaluated for the target), stops at
a package the target already has at a fitting version, and otherwise takes the folder's wheel for it."""
from __future__ import annotations

import argparse
import importlib.metadata as md
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags, sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

HARNESS = "nsml-harness"
SOURCE_STAMP = "harness-source.sha256"  # beside the wheels: what the harness wheel was built from
# On the GPU machine already (its image's package list); large, so never carried. Their own needs are theirs.
PROVIDED = {"numpy", "pandas", "scikit-learn", "matplotlib", "pillow", "torch"}
TARGET_PYTHON = (3, 12)
TARGET_PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)] + \
    ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
TARGET_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "platform_machine": "x86_64", "sys_platform": "linux",
                  "platform_system": "Linux", "os_name": "posix", "implementation_version": "3.12.3", "extra": ""}


class Incomplete(Exception):
    """The folder lacks a wheel the target needs (one line: which package, required by what)."""


def target_tags() -> set[Tag]:
    return set(cpython_tags(TARGET_PYTHON, platforms=TARGET_PLATFORMS)) | \
        set(compatible_tags(TARGET_PYTHON, "cp312", platforms=TARGET_PLATFORMS))


def wheel_requires(path: Path) -> list[Requirement]:
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(z.read(meta).decode())
    return [Requirement(line) for line in headers.get_all("Requires-Dist") or []]


def folder_wheels(folder: Path, tags: set[Tag]) -> dict[str, tuple[Version, Path]]:
    """The folder's wheels that fit TAGS, by canonical name (two versions of one package: an error)."""
    found: dict[str, tuple[Version, Path]] = {}
    for path in sorted(folder.glob("*.whl")):
        name, version, _build, wheel_tags = parse_wheel_filename(path.name)
        if not wheel_tags & tags:
            continue
        if name in found and found[name][0] != version:
            raise Incomplete(f"{folder}: two versions of {name} ({found[name][0]}, {version}): keep one")
        found[name] = (version, path)
    return found


def needed(req: Requirement, markers: dict) -> bool:
    return req.marker is None or req.marker.evaluate(markers)


def resolve(folder: Path, tags: set[Tag], markers: dict, has, missing: dict | None = None) -> list[Path]:
    """The folder's wheels to install: the harness and, walking requirements (extras included), each package
    HAS(name, specifier) says the target lacks. Every requirement met by a chosen wheel is checked against its
    version, whoever asks. Raises Incomplete naming the first one the folder cannot meet — or, given MISSING,
    collects there (name → requirement) each one the folder has no wheel for, and walks on (building)."""
    wheels = folder_wheels(folder, tags)
    root = canonicalize_name(HARNESS)
    if root not in wheels:
        raise Incomplete(f"{folder}: no {HARNESS} wheel (build the folder with: bash scripts/gpu-wheels.sh)")
    check_source(folder)
    chosen: dict[str, Path] = {}
    extras_done: dict[str, set[str]] = {}
    todo: list[tuple[Requirement, str]] = [(Requirement(HARNESS), "the check")]
    while todo:
        req, wanted_by = todo.pop()
        name = canonicalize_name(req.name)
        if name not in chosen and name != root and has(name, req.specifier):
            continue
        if name not in wheels:
            if missing is not None:
                missing.setdefault(name, req)
                continue
            raise Incomplete(f"{folder}: no wheel for {req} (required by {wanted_by}) that fits Python "
                             f"{markers['python_version']} on {markers['platform_machine']}")
        version, path = wheels[name]
        if not req.specifier.contains(version, prereleases=True):
            raise Incomplete(f"{folder}: {path.name} does not satisfy {req} (required by {wanted_by})")
        new_extras = {canonicalize_name(e) for e in req.extras} - extras_done.get(name, set())
        if name in chosen and not new_extras:
            continue
        first = name not in chosen
        chosen[name] = path
        extras_done.setdefault(name, set()).update(new_extras)
        for r in wheel_requires(path):
            wanted = [e for e in ([""] if first else []) + sorted(new_extras) if needed(r, {**markers, "extra": e})]
            if wanted:
                todo.append((r, name + (f"[{wanted[-1]}]" if wanted[-1] else "")))
    return sorted(chosen.values())


def source_hash() -> str:
    """A hash of what the harness wheel is built from: setup.cfg, pyproject.toml and every file under harness/,
    through its links (the task packs and baselines are links to tasks/ and submissions/), caches left out."""
    import hashlib
    import os
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    found = []
    for folder, dirs, names in os.walk(root / "harness", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [Path(folder) / n for n in names if not n.endswith(".pyc")]
    for path in [root / "setup.cfg", root / "pyproject.toml"] + sorted(found):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def check_source(folder: Path) -> None:
    """The folder's harness wheel was built from this checkout's harness/ as it is now (else the check would
    measure older code than bench/gpu.py and the docs describe)."""
    try:
        stamped = (folder / SOURCE_STAMP).read_text().strip()
    except OSError:
        stamped = None
    if stamped != source_hash():
        raise Incomplete(f"{folder}: its {HARNESS} wheel was built from another state of harness/ than this "
                         "checkout's: rebuild it with: bash scripts/gpu-wheels.sh")


def target_has(name: str, specifier) -> bool:
    """On the GPU machine as planned from here: the heavy packages are there (at whatever version it has)."""
    return name in PROVIDED


def installed_has(name: str, specifier) -> bool:
    """On this interpreter: installed at a version the specifier accepts."""
    try:
        return specifier.contains(md.version(name), prereleases=True)
    except md.PackageNotFoundError:
        return False


def here_markers() -> dict:
    from packaging.markers import default_environment
    return {**default_environment(), "extra": ""}


def build(folder: Path) -> None:
    """The harness wheel, then, level by level, the wheels its requirements need on the target, pinned to the
    versions this environment runs where it has them (pip download --no-deps, binary wheels only)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):  # from scratch: no wheel of an older environment stays behind
        old.unlink()
    (folder / SOURCE_STAMP).unlink(missing_ok=True)
    root = Path(__file__).resolve().parents[1]
    stamp = source_hash()
    import shutil
    shutil.rmtree(root / "build", ignore_errors=True)  # setuptools' leftovers (a deleted module) stay out
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(folder), str(root)], check=True)
    (folder / SOURCE_STAMP).write_text(stamp + "\n")
    tags = target_tags()
    for _round in range(20):
        missing: dict[str, Requirement] = {}
        resolve(folder, tags, TARGET_MARKERS, target_has, missing)
        if not missing:
            break
        pins = [f"{name}=={version}" if (version := _local_version(name)) else str(req)
                for name, req in sorted(missing.items())]
        platform_args = [a for p in TARGET_PLATFORMS[:-1] for a in ("--platform", p)]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3",
                        "--abi", "none", *platform_args, "-d", str(folder), *pins], check=True)
    resolve(folder, tags, TARGET_MARKERS, target_has)  # complete, or Incomplete saying what is not


def _local_version(name: str) -> str | None:
    """The version this environment runs of NAME (the tested one), or None."""
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build", "verify", "install"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("target", type=Path, nargs="?", help="install: where the wheels go (pip --target)")
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            build(args.folder)
        if args.action in ("build", "verify"):
            wheels = resolve(args.folder, target_tags(), TARGET_MARKERS, target_has)
            size = sum(p.stat().st_size for p in wheels) / 2 ** 20
            print(f"wheel folder {args.folder}: {len(wheels)} wheels ({size:.1f} MiB), complete for Python 3.12 on "
                  f"x86-64 with {', '.join(sorted(PROVIDED))} provided by the machine")
            return 0
        if args.target is None:
            parser.error("install: give the TARGET folder")
        wheels = resolve(args.folder, set(sys_tags()), here_markers(), installed_has)
        if wheels:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                            "--disable-pip-version-check", "--no-cache-dir", "--upgrade", "--target",
                            str(args.target), *map(str, wheels)], check=True)
        print(f"installed {len(wheels)} wheels into {args.target}: "
              + ", ".join(parse_wheel_filename(p.name)[0] for p in wheels))
        return 0
    except Incomplete as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
