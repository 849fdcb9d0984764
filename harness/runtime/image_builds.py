"""A derived image (a session's requirements installed over its base image), built in a container the harness
watches (runtime.images decides what goes in it and whether it is needed).

The install runs as root in a container of the base image with no network (``network_mode="none"``) but the
harness's gate (runtime.egress): the gate's socket folder is bound at ``egress.INSIDE``, and ``egress.RELAY``,
run by the image's ``python3``, gives the installer a proxy on the container's own loopback. pip reaches the
package index, apt the image's own sources (read from its /etc/apt); nothing else — not this machine, its
networks or a cloud's metadata address, not even through Docker's bridge.

The container is bounded: ``limits.env_build_seconds`` (killed past it), ``limits.env_bytes`` for what it writes
(its writable layer, measured every ``MEASURE_EVERY`` seconds while it runs, and once it ended with each file or
folder at least ``ENTRY_BYTES``), ``env_builds.BUILD_MEMORY`` and ``BUILD_PIDS``, ``BUILD_CPUS``, its log capped,
a few capabilities dropped. It is then committed, and a build of metadata only gives the result its base's
entrypoint, command, working folder and user back (a commit keeps the install's) and labels it with its base's
id. The container always goes; the committed layer goes with the image it is the parent of.
"""
from __future__ import annotations

import calendar
import contextlib
import io
import json
import re
import tarfile
import time
import uuid

from harness.core.settings import inherited_environment

from . import egress, package_indexes
from .env_builds import BUILD_MEMORY, BUILD_PIDS, ENTRY_BYTES

MEASURE_EVERY = 3.0  # seconds between two measures of the container's writable layer
APT_SOURCES_BYTES = 1 << 20  # of the base image's /etc/apt read for its sources
LOG_TAIL = 5  # last lines of a failed install kept for its error
BUILD_CPUS = 2  # CPUs an install may use
DROPPED = ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SYS_CHROOT"]  # capabilities root needs not for pip or apt
COMMIT_SECONDS = 3600  # a commit of a layer within limits.env_bytes
CHANGES_SECONDS = 120  # the engine's list of what a container changed, read as it streams
VOLUME_BYTES = 64 << 20  # a tmpfs over each VOLUME of the base image (a volume is outside the measured layer)
BUILDING, UNTIL = "nsml-harness.building", "nsml-harness.until"  # a build container's labels: its tag, and when
# A run's container (runtime.docker_runtime labels it with its instance) is never a build's leftover: Docker's commit
# passes a build container's labels on to the image it makes, so each container run from it carries them too.
LABEL_INSTANCE = "nsml-harness.instance"
LEFTOVER_SECONDS = COMMIT_SECONDS + 600  # its builder would have removed it, past its build and its commit (sweep)
BYTES_LABEL = "nsml-harness.bytes"  # what the build was measured to hold (added_bytes)
WORK = "/tmp/nsml-env"  # where the build's files are put in the container (removed when the install ends)
SETTINGS = {"PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "DEBIAN_FRONTEND": "noninteractive"}  # the install's, never the image's
_APT_URL = re.compile(r"^[ \t]*(?:deb(?:-src)?[ \t]+(?:\[[^\]\n]*\][ \t]+)?(\S+)|URIs:[ \t]*(.+)$)", re.M)


def building_tag(tag: str) -> str:
    """An install's own tag over TAG (an environment's, ``...:16 hex``) while it builds: another build of the same
    environment never untags it, and `sweep` finds it by _BUILDING_TAG."""
    return f"{tag}-building-{uuid.uuid4().hex[:12]}"


_BUILDING_TAG = re.compile(r".+:[0-9a-f]{16}-building-[0-9a-f]{12}")  # (what building_tag makes)


class BuildFailed(Exception):
    """The install failed or passed a bound: one line (runtime.images words it for the run)."""


def build(client, base, files: dict[str, bytes | str], tag: str, bounds) -> None:
    """FILES (with install.sh) installed over BASE in a bounded, gated container, the result tagged TAG."""
    from docker.types import LogConfig, Mount

    environ = inherited_environment()
    building = building_tag(tag)
    volumes = [Mount(path, "", type="tmpfs", tmpfs_size=VOLUME_BYTES)  # (its base's VOLUMEs: measured as memory)
               for path in sorted((base.attrs.get("Config") or {}).get("Volumes") or {}) if path != egress.INSIDE]
    with egress.Gate(package_indexes.index_hosts(environ, getattr(bounds, "reach", ())), environ) as gate:
        settings = {**egress.proxy_environment(), **package_indexes.pip_indexes(environ), **SETTINGS}
        container = client.containers.create(
            base.id, entrypoint=["python3", "-I", "-S", "-c", egress.RELAY],
            command=[gate.socket_inside(), str(egress.PORT), "env", *(f"{k}={v}" for k, v in settings.items()),
                     "sh", "-c", f"cd {WORK} && sh -e install.sh; rc=$?; cd / && rm -rf {WORK}; exit $rc"],
            user="root", network_mode="none", detach=True, labels={BUILDING: building, UNTIL: _until(bounds)},
            mounts=[Mount(egress.INSIDE, str(gate.folder), type="bind", read_only=True), *volumes],
            pids_limit=BUILD_PIDS, mem_limit=BUILD_MEMORY, memswap_limit=BUILD_MEMORY,
            nano_cpus=min(BUILD_CPUS, int(client.info().get("NCPU") or 1)) * 10**9,
            cap_drop=DROPPED, security_opt=["no-new-privileges"],
            log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}))
        try:
            if "nsml_package.txt" in files:
                gate.allowed = gate.allowed | apt_hosts(container)
            container.put_archive("/tmp", _tar(files))
            container.start()
            held = _watch(client, container, bounds, gate)
            layer = _commit(client, container, building)
        except BaseException:
            with contextlib.suppress(Exception):
                client.images.remove(building, force=True)  # (a commit the engine finished after all)
            raise
        finally:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
    try:
        _restore_config(client, base, layer, tag, held)
    finally:
        with contextlib.suppress(Exception):
            client.images.remove(building)  # (a tag of the final image's parent: only the name goes)


def _until(bounds) -> str:
    seconds = getattr(bounds, "seconds", None) or 86400
    return str(int(time.time() + seconds + LEFTOVER_SECONDS))


def sweep(client, repository: str, now: float | None = None) -> list[str]:
    """What builds left behind when the harness that watched them died (the relay ended each install then): their
    containers once past their UNTIL, and the install's tags in REPOSITORY made over LEFTOVER_SECONDS ago."""
    now = time.time() if now is None else now
    removed = []
    for container in client.containers.list(all=True, ignore_removed=True, filters={"label": BUILDING}):
        if LABEL_INSTANCE in container.labels:
            continue  # (a run's, in an image its build labelled: the harness that started it removes it)
        until = container.labels.get(UNTIL, "")
        if not (until.isascii() and until.isdigit()) or int(until) < now:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                removed.append(container.labels.get(BUILDING, container.name))
    for image in client.images.list(name=repository):
        try:
            made = calendar.timegm(time.strptime(str(image.attrs.get("Created"))[:19], "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            made = 0
        for tag in image.tags:
            if _BUILDING_TAG.fullmatch(tag) and made < now - LEFTOVER_SECONDS:
                with contextlib.suppress(Exception):
                    client.images.remove(tag)
                    removed.append(tag)
    return removed


def _watch(client, container, bounds, gate: egress.Gate) -> int:
    """Wait for the install, stopped past BOUNDS; what its layer holds once it ended (BuildFailed past them)."""
    import requests

    seconds, limit = getattr(bounds, "seconds", None), getattr(bounds, "bytes", None)
    deadline = time.monotonic() + seconds if seconds else None
    while True:
        try:
            code = container.wait(timeout=MEASURE_EVERY).get("StatusCode", -1)
            break
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            pass
        if deadline is not None and time.monotonic() > deadline:
            raise BuildFailed(f"stopped: still running after limits.env_build_seconds = {seconds:g} s")
        if limit and (held := _held(client, container.id, limit)) > limit:
            raise _over(held, limit)
    if code != 0:
        text = container.logs(tail=LOG_TAIL).decode(errors="replace")
        raise BuildFailed(f"failed (exit code {code}): {one_line(text)[-400:]}{gate.refusal_note()}")
    held = _held(client, container.id, limit)  # (its last seconds too)
    if limit and held > limit:
        raise _over(held, limit)
    return held


def _over(held: int, limit: int) -> BuildFailed:
    return BuildFailed(f"stopped: it wrote {held} bytes (each file or folder at least {ENTRY_BYTES}), over "
                       f"limits.env_bytes = {limit}; ask for fewer or smaller packages")


def _held(client, container_id: str, limit: int | None) -> int:
    """What the container's writable layer holds: Docker's bytes, and each entry it changed at least ENTRY_BYTES
    (counted as the engine streams the list, and no further than past LIMIT: a million entries are never held
    here at once)."""
    found = client.api.containers(all=True, filters={"id": container_id}, size=True)
    written = int(found[0].get("SizeRw") or 0) if found else 0
    url = f"{client.api.base_url}/v{client.api.api_version}/containers/{container_id}/changes"
    entries, tail = 0, b""
    with client.api.get(url, stream=True, timeout=CHANGES_SECONDS) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_content(1 << 16):
            entries += (tail + chunk).count(b'"Path":') - tail.count(b'"Path":')
            tail = (tail + chunk)[-8:]
            if limit and entries * ENTRY_BYTES > limit:
                break
    return max(written, entries * ENTRY_BYTES)


def one_line(text: str) -> str:
    """TEXT (a tool's last lines, an engine's words) as one line of printable characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _commit(client, container, building: str) -> str:
    """The ended install's layer committed as BUILDING (its size is within the bounds by now: the commit is given
    its time; the caller removes that tag, whatever happens)."""
    import docker

    api = docker.from_env(timeout=COMMIT_SECONDS)  # (as runtime.docker_runtime.client reaches the engine)
    try:
        repository, _, name = building.rpartition(":")
        return api.api.commit(container.id, repository=repository, tag=name)["Id"]
    except Exception as exc:
        raise BuildFailed(f"failed: committing the install: {one_line(str(exc))[:300]}") from None
    finally:
        api.close()


def added_bytes(image, base) -> int:
    """What a derived IMAGE adds to its BASE: Docker's measure, and at least what its build was measured to hold
    (its label; each file or folder ENTRY_BYTES)."""
    label = (image.labels or {}).get(BYTES_LABEL, "")
    counted = int(label) if label.isascii() and label.isdigit() else 0
    return max(0, image.attrs.get("Size", 0) - base.attrs.get("Size", 0), counted)


def apt_hosts(container) -> frozenset[tuple[str, int]]:
    """The hosts of the apt sources of the image CONTAINER was made from (/etc/apt: sources.list, *.list and
    deb822 *.sources), its first APT_SOURCES_BYTES."""
    import docker.errors

    try:
        stream, _ = container.get_archive("/etc/apt")
    except docker.errors.NotFound:
        return frozenset()
    data = b""
    for chunk in stream:
        data += chunk
        if len(data) > APT_SOURCES_BYTES:
            break
    hosts = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(data[:APT_SOURCES_BYTES]), mode="r|") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith((".list", ".sources")) and member.size < (64 << 10):
                    text = tar.extractfile(member).read().decode(errors="replace")
                    for m in _APT_URL.finditer(text):
                        hosts.update(a for url in (m[1] or m[2]).split() if (a := package_indexes.address(url)))
    except (tarfile.TarError, OSError):
        pass  # (cut at the limit: the sources read so far)
    return frozenset(hosts)


def _tar(files: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folder = tarfile.TarInfo(WORK.rsplit("/", 1)[1])
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{folder.name}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _restore_config(client, base, layer: str, tag: str, held: int) -> None:
    """LAYER (the committed install) tagged TAG with BASE's entrypoint, command, folder and user, its id and the
    bytes its build HELD (labels); the install's own tag on LAYER dropped."""
    import docker.errors

    config = base.attrs.get("Config") or {}
    dockerfile = "\n".join([
        f"FROM {layer}",
        f"ENTRYPOINT {json.dumps(config.get('Entrypoint') or [])}",
        f"CMD {json.dumps(config.get('Cmd') or [])}",
        f"WORKDIR {_plain(config.get('WorkingDir'), '/')}",
        f"USER {_plain(config.get('User'), 'root')}",
        f"LABEL nsml-harness.base={base.id} {BYTES_LABEL}={held}", ""]).encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    try:
        for chunk in client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                                      network_mode="none", decode=True):
            if isinstance(chunk, dict) and chunk.get("error"):
                raise docker.errors.BuildError(str(chunk["error"])[:500], [])
    except docker.errors.DockerException:
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(layer, force=True)  # (the install's layer, with no image to be the parent of)
        raise


def _plain(value, default: str) -> str:
    """VALUE as one Dockerfile word (a folder, a user), DEFAULT where it is empty or not one."""
    return value if isinstance(value, str) and re.fullmatch(r"[\x21-\x7e]{1,4096}", value) else default
