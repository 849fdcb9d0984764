"""Era environments: NSML code runs in an environment of its time, whatever became of the image it named.

The catalogue is data (eras.toml beside this module, with an organizer's `[eras.NAME]` tables in harness.toml
over it; see that file for the keys and the order of resolution). An `#nsml: IMAGE` line resolves to a `Choice`:
the image itself where the docker runtime has it, else an era chosen by the image's name or by the versions its
tags name, with the reason in words (`run` prints it).

An era's base is the harness's own environment plus pinned packages (installed the way a session's
requirements are), or a Debian suite: a root filesystem made once with debootstrap from the machine's Debian
mirror, with the packages installed for its Python from the registry as wheels (`uv pip install --target`, for
the suite's Python version and glibc). Both runtimes use that one folder: the process runtime as the root of
the run's bubblewrap sandbox, the docker runtime as an image imported from it. Built eras live in
`core.settings.era_dir()`, shared by every state root of the machine, each in a folder named by the hash of
its base and packages, so an edited era is a new build and an old one is never changed under a running session.
"""
from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from harness.core import schema
from harness.core.errors import UserError
from harness.core.settings import SETTINGS_FILE, era_dir, read_toml

CATALOGUE = Path(__file__).with_name("eras.toml")
HARNESS = "harness"  # the era that is the harness's own environment
SUITES = {"bullseye": ("3.9", "2_31"), "bookworm": ("3.11", "2_36")}  # Debian suite: its Python, its glibc
READY = ".ready"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
DOTTED = re.compile(r"[A-Za-z_]\w{0,63}(?:\.[A-Za-z_]\w{0,63}){1,8}", re.ASCII)  # one of an era's `imports`
SITE = "/opt/era/site"  # where an era's packages are, inside its root filesystem
PTH = "usr/lib/python3/dist-packages/nsml_era.pth"  # puts SITE on the suite's Python's path
ROOTFS_PACKAGES = "python3,python3-pip,ca-certificates"


@dataclass(frozen=True)
class Era:
    name: str
    description: str
    base: str
    python: str
    packages: tuple[str, ...]
    images: tuple[str, ...] = ()
    torch: str = ""
    tensorflow: str = ""
    python_tags: str = ""
    on_demand: bool = False
    source: str = ""
    imports: tuple[str, ...] = ()  # MODULE.NAME that choose it for code with no image line (runtime.era_imports)

    @property
    def has_rootfs(self) -> bool:
        return self.base != HARNESS

    @property
    def key(self) -> str:
        text = json.dumps([self.base, self.python, sorted(self.packages)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def folder(self) -> Path:
        return era_dir() / f"{self.name}-{self.key}"

    @property
    def rootfs(self) -> Path:
        return self.folder / "rootfs"

    @property
    def built(self) -> bool:
        return not self.has_rootfs or (self.folder / READY).is_file()

    @property
    def image_tag(self) -> str:
        return f"nsml-harness/era:{self.name}-{self.key}"

    def pins(self) -> dict[str, str]:
        """Package name → the version the era pins (what a session's requirement is checked against)."""
        out = {}
        for line in self.packages:
            req = Requirement(line)
            exact = [s.version for s in req.specifier if s.operator == "=="]
            if exact:
                out[req.name.lower()] = exact[0]
        return out


def _parse(name: str, table: dict, where: str) -> Era:
    if not NAME.fullmatch(name):  # it names a folder and an image tag
        raise UserError(f"{where}: [eras.{name[:40]}]: an era's name is 1-40 letters, digits, '_', '.', '-'")
    schema.check(table, schema.ERA, f"{where}: [eras.{name}]")
    base = str(table.get("base", HARNESS))
    if base != HARNESS and base not in SUITES:
        raise UserError(f"{where}: [eras.{name}] base: expected {HARNESS!r} or a Debian suite "
                        f"({', '.join(SUITES)}), got {base!r}")
    python = str(table.get("python", SUITES.get(base, ("3.11",))[0]))
    if base in SUITES and python != SUITES[base][0]:
        raise UserError(f"{where}: [eras.{name}] python: {base} has Python {SUITES[base][0]}, not {python}")
    packages = []
    for i, line in enumerate(table.get("packages", [])):
        try:
            req = Requirement(str(line))
        except InvalidRequirement:
            raise UserError(f"{where}: [eras.{name}] packages[{i}]: {line!r} is not a requirement") from None
        if req.url or not any(s.operator == "==" for s in req.specifier):
            raise UserError(f"{where}: [eras.{name}] packages[{i}]: {line!r}: pin it with == (an era is a fixed "
                            f"environment)")
        packages.append(str(req))
    for key in ("torch", "tensorflow", "python_tags"):
        try:
            SpecifierSet(str(table.get(key, "")))
        except InvalidSpecifier:
            raise UserError(f"{where}: [eras.{name}] {key}: {table[key]!r} is not a version range") from None
    imports = [str(d) for d in table.get("imports", [])]
    for i, dotted in enumerate(imports):
        if not DOTTED.fullmatch(dotted):
            raise UserError(f"{where}: [eras.{name}] imports[{i}]: {dotted[:80]!r}: expected MODULE.NAME, such as "
                            f"'transformers.AdamW'")
    return Era(name=name, description=str(table.get("description", "")), base=base, python=python,
               packages=tuple(packages), images=tuple(str(p) for p in table.get("images", [])),
               torch=str(table.get("torch", "")), tensorflow=str(table.get("tensorflow", "")),
               python_tags=str(table.get("python_tags", "")), on_demand=bool(table.get("on_demand", False)),
               source=where, imports=tuple(imports))


def catalogue(root: Path | None = None) -> dict[str, Era]:
    """The eras, in the order they are matched: the organizer's (ROOT's harness.toml) first, then the built-in
    ones they do not replace."""
    builtin = {name: _parse(name, table, "eras.toml") for name, table in read_toml(CATALOGUE)["eras"].items()}
    own: dict[str, Era] = {}
    path = Path(root) / SETTINGS_FILE if root is not None else None
    if path is not None and path.is_file():
        for name, table in (read_toml(path).get("eras") or {}).items():
            own[name] = _parse(name, table, str(path))
    return {**own, **{k: v for k, v in builtin.items() if k not in own}}


def named(name: str, root: Path | None = None) -> Era:
    eras = catalogue(root)
    if name not in eras:
        import difflib
        close = difflib.get_close_matches(name, eras, n=1)
        raise UserError(f"--era: no era {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                        + f" (eras: {', '.join(eras)})")
    return eras[name]


# -- resolving an image line -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    era: Era | None  # None: the image itself (the docker runtime has it)
    image: str | None
    why: str

    @property
    def is_default(self) -> bool:
        """Nothing chose it: no image line, no import that calls for an era (the harness's own; `run` is silent)."""
        return self.image is None and self.era is not None and self.era.name == HARNESS


TAGS = (("torch", re.compile(r"torch[:/_-]?v?(\d{1,3})\.(\d{1,3})(?!\d)")),
        ("tensorflow", re.compile(r"(?:tensorflow|tf)[:/_-]?v?(\d{1,3})\.(\d{1,3})(?!\d)")),
        ("python", re.compile(r"(?:python|py)[:/_-]?(\d)\.?(\d)(?!\d)")))


def tags(image: str) -> dict[str, str]:
    """The framework and Python versions an image's name states: `nsml/ml:cuda9.0-cudnn7-tf-1.11torch1.0` →
    {"torch": "1.0", "tensorflow": "1.11"}."""
    out = {}
    for kind, pattern in TAGS:
        found = pattern.search(image.lower())
        if found:
            out[kind] = f"{found[1]}.{found[2]}"
    return out


NOT_HERE = "is not an image this machine offers"  # (absent, or not in [docker] images: the same words either way)


def resolve(image: str | None, eras: dict[str, Era], present=None) -> Choice:
    """What `#nsml: IMAGE` runs in (see the module's text). PRESENT(image) → bool: the docker runtime has it."""
    if not image:
        return Choice(eras[HARNESS], None, "no #nsml: image line: the harness's own environment")
    if present is not None and present(image):
        return Choice(None, image, f"#nsml: {image} is on this machine: used as it is")
    for era in eras.values():
        for pattern in era.images:
            if fnmatch.fnmatchcase(image.lower(), pattern.lower()):
                return Choice(era, image, f"#nsml: {image} {NOT_HERE}; it matches {pattern!r} of era "
                                          f"{era.name} ({era.description})")
    stated = tags(image)
    for kind in ("torch", "tensorflow", "python"):
        if kind not in stated:
            continue
        for era in eras.values():
            spec = {"torch": era.torch, "tensorflow": era.tensorflow, "python": era.python_tags}[kind]
            if spec and SpecifierSet(spec).contains(stated[kind] + ".0", prereleases=True):
                return Choice(era, image, f"#nsml: {image} {NOT_HERE}; its tags name {kind} "
                                          f"{stated[kind]}: the nearest era is {era.name} ({era.description})")
    return Choice(eras[HARNESS], image, f"#nsml: {image} {NOT_HERE} and neither its name nor its tags match an "
                                        f"era: the harness's own environment")


def suggest(name: str, req: Requirement, root: Path | None = None) -> str:
    """For a refused pin of NAME: the eras that have a build of it, in words."""
    eras = catalogue(root)
    having = [(era, era.pins()[name]) for era in eras.values() if name in era.pins()]
    exact = [f"era {era.name} has {name} {v}" for era, v in having if req.specifier.contains(v, prereleases=True)]
    if exact:
        return "; ".join(exact) + " (name an image of its time on the first line: `harness image eras`)"
    if having:
        return ("no era has such a build; " + "; ".join(f"era {era.name} has {name} {v}" for era, v in having)
                + " (relax the pin, or add an era in harness.toml: `harness image eras`)")
    return f"no era has {name}: add one in harness.toml ([eras.NAME], see `harness image eras`)"


# -- building a root filesystem ------------------------------------------------------------------------------
def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (never a host name written into the project)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if uri.rstrip("/").endswith("/debian"):
                        return uri
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) > 1 and words[0] == "deb" and words[1].rstrip("/").endswith("/debian"):
                    return words[1]
    return "http://deb.debian.org/debian"


def _step(cmd: list[str], what: str, era: Era) -> None:
    from .env_builds import Bounds, bounded_step
    bounded_step(cmd, what, f"era {era.name}", Bounds(), limit=500)  # (an organizer's build: no bounds)


def build(era: Era, log=print) -> Path | None:
    """`harness image build --era NAME`: the era's root filesystem, once per hash (None for an era on the
    harness's own environment: its packages are installed as a session's requirements are)."""
    if not era.has_rootfs:
        return None
    folder = era.folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per era; a second caller waits and finds it built
        if (folder / READY).is_file():
            return folder
        if shutil.which("debootstrap") is None:
            raise UserError(f"era {era.name}: building it needs debootstrap (apt-get install debootstrap), as root")
        staging = folder.with_name(folder.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        rootfs = staging / "rootfs"
        try:
            started = time.monotonic()
            log(f"era {era.name}: debootstrap {era.base} (Python {era.python}) from {debian_mirror()}")
            _step(["debootstrap", "--variant=minbase", f"--include={ROOTFS_PACKAGES}", era.base, str(rootfs),
                   debian_mirror()], "debootstrap", era)
            if era.packages:
                from .environments import uv_path
                log(f"era {era.name}: installing {', '.join(era.packages)}")
                _step([uv_path(f"era {era.name}"), "pip", "install", "-q", "--target", str(rootfs / SITE.lstrip("/")),
                       "--python-version", era.python, "--python-platform", f"x86_64-manylinux_{SUITES[era.base][1]}",
                       "--only-binary", ":all:", *era.packages], "installing its packages", era)
            (rootfs / PTH).parent.mkdir(parents=True, exist_ok=True)
            (rootfs / PTH).write_text(SITE + "\n")
            shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
            staging.rename(folder)
            (folder / READY).write_text(json.dumps({"era": era.name, "base": era.base, "packages": era.packages,
                                                    "seconds": round(time.monotonic() - started, 1)}))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    log(f"era {era.name}: built in {folder}")
    return folder


def require_built(era: Era) -> Path:
    """The era's root filesystem, or one line saying how to build it (a run never builds one by surprise)."""
    if not era.built:
        raise UserError(f"era {era.name} ({era.description}) is not built on this machine: run 'harness image "
                        f"build --era {era.name}' once (as root; minutes)")
    return era.rootfs


def docker_image(era: Era, client) -> str:
    """The era as a docker image (imported from its root filesystem once per hash)."""
    import tempfile

    import docker.errors

    try:
        client.images.get(era.image_tag)
        return era.image_tag
    except docker.errors.ImageNotFound:
        pass
    rootfs = require_built(era)
    with tempfile.TemporaryDirectory(prefix="era-image-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        _step(["tar", "-C", str(rootfs), "-cf", str(tar), "."], "packing its root filesystem", era)
        repository, tag = era.image_tag.split(":")
        client.api.import_image_from_file(str(tar), repository=repository, tag=tag)
    return era.image_tag


def python_of(era: Era) -> str:
    """The interpreter a run of ERA starts (inside its root filesystem, or the harness's own)."""
    return "/usr/bin/python3" if era.has_rootfs else sys.executable
