"""Container images, resolved the way NSML did it, and built with the docker SDK.

1. The base image: the line ``#nsml: IMAGE`` that opens ``setup.py`` or ``requirements.txt``; else the task
   manifest's ``image``; else the project's default session image (``harness image build``, from ./Dockerfile).
   ``#nsml:`` runs an image as it is only when it is on this machine and the organizers allow it: it matches a
   pattern of ``[docker] images`` in harness.toml, or is the task's or the default image (``usable``) — an image
   an organizer keeps on the machine for something else (with data or weights in it) is not the participants'
   to open. Any other name resolves to an era (harness.runtime.eras), in the same words whether the image is
   here or not.
2. The session's environment: ``requirements.txt``, ``setup.py``'s ``install_requires`` and ``nsml_package.txt``
   (apt packages) are installed into a derived image tagged by a hash of the base image's id and those files,
   so a second session with the same requirements starts without installing anything.

Requirement lines are package names with version specifiers only (no URL, VCS, path, index or pip option) and
install as wheels only unless the task manifest sets ``source_builds = true``: no participant-written code runs
at build time.  A session's install runs in a container with no network but the harness's gate to the package
index (runtime.image_builds), bounded in time, bytes, memory and processes; participant code itself runs with no
network.  Nothing is pulled: a missing base image is an error that names it and says how to provide it.
"""
from __future__ import annotations

import ast
import fnmatch
import hashlib
import re
import shutil
import threading
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from harness import resources
from harness.core.errors import UserError

from . import image_builds

SDK = resources.SESSION_SDK
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ENV_REPO = "nsml-harness/env"
SETUP_REQUIREMENTS = "setup-requirements.txt"  # setup.py's install_requires, as a file of the build context
ERA_REQUIREMENTS = "era-requirements.txt"  # an era's packages over the default image (harness.runtime.eras)
_build_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class ImageError(Exception):
    """The session's image cannot be had (missing base, failed build): the run fails to launch."""


IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,255}")  # registry/name:tag@digest, bounded
MAX_REQUIREMENT_BYTES = 256 * 1024  # requirements.txt, or setup.py read for install_requires
MAX_REQUIREMENTS = 500


NSML_LINE = re.compile(r"#\s*nsml\s*:(.*)", re.IGNORECASE)  # `#nsml: IMAGE`, also written `# nsml: IMAGE`
LEADING_LINES = 10  # the comment lines read at the top of a file for it


def environment_file(code: Path, name: str) -> Path | None:
    """CODE's NAME (requirements.txt, setup.py, nsml_package.txt) when it has one; a link is one line: `run` reads
    the folder, the launch its snapshot, whose copy of a link may point nowhere (its target left out)."""
    path = code / name
    if path.is_symlink():
        raise UserError(f"{name}: a symbolic link; the run needs the file itself in its folder")
    return path if path.is_file() else None


def nsml_image_line(code: Path) -> str | None:
    """`#nsml: IMAGE` at the top of setup.py or requirements.txt: on its first line as NSML documented it, or on a
    later line of the comments that open the file (an entry that kept an old line commented out above it). At most
    LEADING_LINES lines of 1 KiB are read, and none past the first that is not a comment: the rest of a hostile file
    is never scanned here. A name that is not an image name is one line."""
    for name in ("setup.py", "requirements.txt"):
        path = environment_file(code, name)
        if path is None:
            continue
        with open(path, "rb") as fh:
            for number in range(1, LEADING_LINES + 1):
                raw = fh.readline(1024)
                line = raw.decode("utf-8", errors="replace").strip()
                found = NSML_LINE.fullmatch(line)
                if found:
                    image = found.group(1).strip()
                    if image and not IMAGE_NAME.fullmatch(image):
                        raise UserError(f"{name}:{number}: #nsml: {image[:60]!r} is not an image name "
                                        f"(letters, digits and ._/:@+-, at most 256)")
                    if image:
                        return image
                if not raw.endswith(b"\n") or line and not line.startswith("#"):
                    break  # the end of the file, a line over 1 KiB, or the first line that is not a comment
    return None


def _read_bounded(path: Path) -> str:
    if path.stat().st_size > MAX_REQUIREMENT_BYTES:
        raise ImageError(f"{path.name}: over {MAX_REQUIREMENT_BYTES // 1024} KiB: not a requirements file the harness "
                         f"reads")
    return path.read_text(encoding="utf-8", errors="replace")


def install_requires(setup_py: Path) -> list[str]:
    """The literal ``install_requires=[...]`` of a setup.py, read without running it."""
    try:
        tree = ast.parse(_read_bounded(setup_py))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    except SyntaxError as exc:
        raise ImageError(f"{setup_py.name}: cannot parse: {exc}") from None
    except (RecursionError, MemoryError, ValueError):  # (nested past the parser's depth: `1+1+...`, `----1`)
        raise ImageError(f"{setup_py.name}: cannot parse: nested too deeply to read") from None
    for node in calls:
        if getattr(node.func, "id", getattr(node.func, "attr", "")) == "setup":
            for kw in node.keywords:
                if kw.arg == "install_requires":
                    try:
                        items = [str(r) for r in ast.literal_eval(kw.value)]
                    except (ValueError, TypeError, RecursionError, MemoryError):
                        raise ImageError(f"{setup_py.name}: install_requires must be a literal list") from None
                    if len(items) > MAX_REQUIREMENTS:
                        raise ImageError(f"{setup_py.name}: install_requires: over {MAX_REQUIREMENTS} requirements")
                    return items
    return []


ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")
APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")


def requirement_line(text: str, where: str) -> str | None:
    """One requirement as a package name with version specifiers (extras and markers allowed), normalised; None
    for a blank or comment line. Anything that fetches from a URL, a VCS, a path or another index, or passes
    pip an option, is refused: such lines make the build run code that is not a wheel from the registry."""
    line = text.split(" #", 1)[0].strip() if not text.lstrip().startswith("#") else ""
    if not line:
        return None
    refuse = f"{where}: {line[:80]!r}: only package names with version specifiers are allowed"
    if line.startswith("-"):
        raise ImageError(f"{refuse} (no pip options such as -e, -r, --index-url, --find-links)")
    try:
        req = Requirement(line)
    except InvalidRequirement:
        raise ImageError(f"{refuse} (not a requirement, or a URL or path)") from None
    if req.url or any(c in req.name for c in "/\\:") or req.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise ImageError(f"{refuse} (no URLs, VCS links, local paths or archives)")
    if any(spec.operator == "===" for spec in req.specifier):  # (its "version" is any string: a URL, a path)
        raise ImageError(f"{refuse} (no arbitrary equality '===': pin a version with ==)")
    return str(req)


def _clean(lines: list[str], where: str) -> str:
    kept = [r for i, text in enumerate(lines, 1) if (r := requirement_line(text, f"{where}:{i}")) is not None]
    if len(kept) > MAX_REQUIREMENTS:
        raise ImageError(f"{where}: over {MAX_REQUIREMENTS} requirements")
    return "".join(f"{r}\n" for r in kept)


def apt_packages(text: str, where: str) -> str:
    """nsml_package.txt: Debian package names (optionally =version), nothing else."""
    names = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0]
        for token in line.split():
            if not APT_NAME.match(token):
                raise ImageError(f"{where}:{i}: {token[:60]!r} is not a Debian package name")
            names.append(token)
    return "".join(f"{n}\n" for n in names)


def requirements(code: Path) -> dict[str, str]:
    """The files that define a session's environment, checked and normalised, as build-context name → content."""
    files = {}
    req = environment_file(code, "requirements.txt")
    if req is not None:
        files["requirements.txt"] = _clean(_read_bounded(req).splitlines(), "requirements.txt")
    setup = environment_file(code, "setup.py")
    if setup is not None:
        reqs = install_requires(setup)
        if reqs:
            files[SETUP_REQUIREMENTS] = _clean(reqs, "setup.py: install_requires")
    apt = environment_file(code, "nsml_package.txt")
    if apt is not None:
        files["nsml_package.txt"] = apt_packages(apt.read_text(encoding="utf-8", errors="replace"),
                                                 "nsml_package.txt")
    return {name: content for name, content in files.items() if content}


INSTALL_SCRIPT = """\
if [ -f ca-certificates.crt ]; then export PIP_CERT="$PWD/ca-certificates.crt"; fi
if [ -f nsml_package.txt ]; then apt-get update && \\
    grep -v '^#' nsml_package.txt | xargs -r apt-get install -y --no-install-recommends && \\
    rm -rf /var/lib/apt/lists/*; fi
for f in era-requirements.txt requirements.txt setup-requirements.txt; do
    if [ -f $f ]; then python3 -m pip install {binary} -r $f; fi
done
"""


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _build_locks.setdefault(key, threading.Lock())


def _build_error(exc) -> str:
    log = getattr(exc, "build_log", None) or []
    lines = [str(chunk.get("stream") or chunk.get("error") or "").strip() for chunk in log if isinstance(chunk, dict)]
    lines = [ln for ln in lines if ln]
    return (lines[-1] if lines else str(exc))[:500]


def base_image(client, name: str):
    import docker.errors

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        raise ImageError(f"image {name!r} is not on this machine and is never pulled: build it with "
                         f"'harness image build' (the default session image), or 'docker load' / 'docker pull "
                         f"{name}' where a registry is reachable") from None


def with_era_packages(files: dict[str, str], packages) -> dict[str, str]:
    """The requirement files of a session on an era of the harness's own environment: the era's packages first
    (ERA_REQUIREMENTS), the code's own over them; FILES as they are when there are none."""
    return {ERA_REQUIREMENTS: "".join(f"{line}\n" for line in packages), **files} if packages else files


def _present(client, name: str) -> bool:
    import docker.errors
    try:
        client.images.get(name)
        return True
    except (docker.errors.ImageNotFound, docker.errors.APIError):
        return False


def _parts(name: str, untagged: str = "latest") -> tuple[list[str], str]:
    """An image name as its repository's path segments and its tag (UNTAGGED when none; `@DIGEST` for a digest)."""
    name, _, digest = name.partition("@")
    head, _, last = name.rpartition("/")
    repository, _, tag = last.partition(":")
    return (head.split("/") if head else []) + [repository], "@" + digest if digest else tag or untagged


def usable(image: str, allowed: tuple[str, ...]) -> bool:
    """Whether `#nsml: IMAGE` may run as it is: it matches one of ALLOWED (`[docker] images` patterns, the task's
    and the default image). Shell globs per part, as Docker reads a name: each path segment of the repository
    alone (`*` never crosses a `/`: `myorg/public-*` is not `myorg/public-x/private`), then the tag (an image
    `name` is `name:latest`; a pattern without a tag allows every tag; a digest `name@sha256:...` is allowed by a
    tag pattern `*` only). Case matters, as in Docker."""
    segments, tag = _parts(image)
    for pattern in allowed:
        if not pattern:
            continue
        want, want_tag = _parts(pattern, untagged="*")
        if len(want) == len(segments) and all(fnmatch.fnmatchcase(s, w) for s, w in zip(segments, want)) \
                and fnmatch.fnmatchcase(tag, want_tag):
            return True
    return False


def resolve_base(client, code: Path, manifest_image: str | None, default_image: str,
                 root: Path | None = None, allowed: tuple[str, ...] = ()) -> tuple[str, tuple[str, ...]]:
    """The base image of CODE's sessions and the packages an era adds to it: a usable `#nsml:` image on this
    machine as it is; any other resolves to an era (harness.runtime.eras), its own image or the default one plus
    its packages. ALLOWED: the `[docker] images` patterns."""
    choice = _choice(client, code, root, (*allowed, manifest_image or "", default_image), manifest_image)
    if choice is None or choice.era is None:
        return (choice and choice.image) or manifest_image or default_image, ()
    era = choice.era
    if era.has_rootfs:
        from .eras import docker_image
        try:
            return docker_image(era, client), ()
        except UserError as exc:
            raise ImageError(str(exc)) from None
    return manifest_image or default_image, era.packages


def code_era(code: Path, root: Path | None, present=None, by_imports: bool = True):
    """The one order of what chooses CODE's environment (an eras.Choice, or None: nothing does): its `#nsml:` line
    (PRESENT(image): the docker runtime has it, as harness.runtime.eras.resolve), else, BY_IMPORTS, the era its
    imports call for (harness.runtime.era_imports)."""
    from . import era_imports, eras
    line = nsml_image_line(code)
    if line:
        return eras.resolve(line, eras.catalogue(root), present)
    return era_imports.choose(code, eras.catalogue(root)) if by_imports else None


def _choice(client, code: Path, root: Path | None, allowed: tuple[str, ...], task_image: str | None):
    """`code_era` for the docker runtime (CLIENT None: no engine answers, so no image is here; an image that is not
    usable is never looked up). Imports choose an era on the default image only, which is the harness's
    environment: a task's own image is the organizer's choice, used as it is."""
    return code_era(code, root, lambda image: client is not None and usable(image, allowed) and _present(client, image),
                    by_imports=not task_image)


def describe_base(code: Path, settings, manifest_image: str | None = None) -> str | None:
    """What `run` says of a docker session's `#nsml:` line (the image as it is, or the era it resolves to), or of
    the era its imports call for; None: neither."""
    line, engine = nsml_image_line(code), None
    if line:  # (an image line is looked up on the engine; imports choose an era without it)
        from .docker_runtime import client, engine_answers
        engine = client() if engine_answers() else None
    allowed = (*settings.docker_images, manifest_image or "", settings.docker_image)
    choice = _choice(engine, code, settings.root, allowed, manifest_image)
    if choice is None:
        return None
    return f"environment: {'image ' + line if choice.era is None else 'era ' + choice.era.name}: {choice.why}"


def session_image(client, code: Path, manifest_image: str | None, default_image: str, source_builds: bool = False,
                  root: Path | None = None, allowed: tuple[str, ...] = (), bounds=None) -> str:
    """The image a session runs in: its base, plus its requirements (built once per distinct hash). Wheels only
    unless the task allows source builds; the install reaches the package index only (runtime.image_builds).
    BOUNDS (runtime.env_builds.Bounds): the install stopped past its seconds or bytes, an image that adds more
    than its bytes removed; either is one line naming the setting."""
    import docker.errors
    import requests

    base_name, era_packages = resolve_base(client, code, manifest_image, default_image, root, allowed)
    base = base_image(client, base_name)
    files = with_era_packages(requirements(code), era_packages)
    if not files:
        return base_name
    binary = "" if source_builds else "--only-binary :all:"
    digest = hashlib.sha256(base.id.encode() + binary.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    tag = f"{ENV_REPO}:{digest.hexdigest()[:16]}"
    with _lock(tag):
        try:
            client.images.get(tag)
            return tag  # cached: same base, same requirements
        except docker.errors.ImageNotFound:
            pass
        context = dict(files, **{"install.sh": INSTALL_SCRIPT.format(binary=binary)})
        if CA_BUNDLE.is_file():
            context["ca-certificates.crt"] = CA_BUNDLE.read_bytes()
        try:
            image_builds.build(client, base, context, tag, bounds)  # (labelled with its base's id: what it adds
            #                                                          is measured against the image it was built on)
        except image_builds.BuildFailed as exc:
            raise ImageError(f"installing the session's requirements into {base_name} {exc}") from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise ImageError(f"installing the session's requirements into {base_name} failed: "
                             f"{image_builds.one_line(str(getattr(exc, 'explanation', None) or exc))}"[:600]) from None
        added = image_builds.added_bytes(client.images.get(tag), base)
        if getattr(bounds, "bytes", None) and added > bounds.bytes:
            client.images.remove(tag, force=True)
            raise ImageError(f"installing the session's requirements into {base_name} stopped: they add {added} "
                             f"bytes to the image, over limits.env_bytes = {bounds.bytes}; ask for fewer or smaller "
                             f"packages")
    return tag


def dockerfile_digest() -> str:
    """Labels the default image, so that setup can tell an image built from an older Dockerfile."""
    return hashlib.sha256(resources.DOCKERFILE.read_bytes()).hexdigest()[:16]


def build_default_image(client, tag: str, base: str | None, wheels: list[Path], log=print) -> str:
    """`harness image build`: the top-level Dockerfile, with local wheels and the host's CA bundle."""
    import tempfile

    import docker.errors

    with tempfile.TemporaryDirectory(prefix="harness-image-") as tmp:
        ctx = Path(tmp)
        shutil.copy2(resources.DOCKERFILE, ctx / "Dockerfile")
        shutil.copytree(SDK, ctx / "harness" / "session_sdk", ignore=shutil.ignore_patterns("__pycache__"))
        (ctx / "docker" / "wheels").mkdir(parents=True)
        for wheel in wheels:
            if not wheel.is_file():
                raise UserError(f"--wheel: {wheel} is not a file")
            shutil.copy2(wheel, ctx / "docker" / "wheels" / wheel.name)
        if CA_BUNDLE.is_file():
            shutil.copy2(CA_BUNDLE, ctx / "docker" / "ca-certificates.crt")
        buildargs = {"BASE_IMAGE": base} if base else {}
        try:
            _image, chunks = client.images.build(path=str(ctx), tag=tag, buildargs=buildargs, rm=True,
                                                 forcerm=True, network_mode="host",
                                                 labels={"nsml-harness.dockerfile": dockerfile_digest()})
            for chunk in chunks:
                text = str(chunk.get("stream", "")).rstrip()
                if text:
                    log(text)
        except docker.errors.BuildError as exc:
            raise UserError(f"Dockerfile: build failed: {_build_error(exc)}") from None
        except docker.errors.APIError as exc:
            raise UserError(f"Dockerfile: build failed: {exc.explanation or exc}") from None
    return tag
