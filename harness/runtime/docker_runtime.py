"""The docker runtime: each run in its own container, for untrusted NSML submissions.

Isolation: no network (unless the task allows it), a non-root user, all capabilities dropped,
no-new-privileges, a read-only root filesystem with a private /tmp, a pids limit, memory without swap, CPUs,
shm, a largest-file limit, and GPUs pinned to the allocated device IDs.  The container sees only its mounts:
the code at /app, the task view read-only at /data/TASK, the session's checkpoints (writable only when
training), the user's own sessions read-only (for cross-session `nsml.load`), the run's events folder, and for
a submit the prediction folder and the task's loader.  Test labels and the docker socket are never mounted.
"""
from __future__ import annotations

import os
import posixpath
import threading
import time
from pathlib import Path

import psutil

from harness import resources
from harness.core.enums import FailureReason, RunStatus
from harness.core.settings import Settings

from . import base, cgroups, env_builds, env_store, image_builds, run_log
from .base import Handle, Mount, Outcome, RunSpec, Runtime, gpu_env, target_env, thread_env, wait_by_polling
from .image_builds import LABEL_INSTANCE
from .images import ENV_REPO, ImageError, session_image

SDK = resources.SESSION_SDK
SDK_TARGET = "/opt/nsml-sdk"


def client(timeout: int = 60):
    import docker

    return docker.from_env(timeout=timeout)


def engine_answers() -> bool:
    try:
        return bool(client(timeout=3).ping())
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: not available
        return False


def _owner(settings: Settings) -> tuple[str, int | None, int | None]:
    """Who runs participant code: the harness's own user, or `docker.user` (nobody) when the harness is root."""
    if os.geteuid() != 0:
        return f"{os.getuid()}:{os.getgid()}", None, None
    uid, _, gid = settings.docker_user.partition(":")
    return settings.docker_user, int(uid), int(gid or uid)


def _hand_over(path: Path, uid: int | None, gid: int | None) -> None:
    """Make a writable mount writable for the container's user."""
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            if uid is not None:
                os.lchown(name, uid, gid)
            else:
                os.chmod(name, 0o777 if os.path.isdir(name) else 0o666)


def volume_mounts(settings: Settings, spec: RunSpec, declared, taken) -> list:
    """Each VOLUME the image declares, as a volume of this run's own, mounted read-only: Docker copies the image's
    files there, and the run still writes only to its measured folders (an anonymous volume would be writable and
    unmeasured, and Docker refuses to make one read-only). Paths the run's own mounts cover are left to them; one
    that holds some (`/data` over `/data/TASK`) is a small tmpfs only root may write, its mount points made."""
    from docker.types import Mount as VolumeMount

    labels = {LABEL_INSTANCE: settings.instance, "nsml-harness.run": str(spec.run_id)}
    targets = sorted({posixpath.normpath(t) for t in declared or () if t.startswith("/")} - set(taken) - {"/"})
    return [VolumeMount(target, "", type="tmpfs", tmpfs_size=1 << 20, tmpfs_mode=0o755)
            if any(t.startswith(target + "/") for t in taken) else
            VolumeMount(target, f"nsml-{settings.instance}-run{spec.run_id}-{i}", read_only=True, labels=labels)
            for i, target in enumerate(targets)]


def container_config(settings: Settings, spec: RunSpec, image: str, declared=()) -> dict:
    """Keyword arguments for containers.create(): everything that makes the container safe. DECLARED: the
    VOLUME paths of the image."""
    from docker.types import DeviceRequest, LogConfig, Ulimit

    user, uid, gid = _owner(settings)
    mounts = list(spec.mounts) + [Mount(SDK, SDK_TARGET)]
    for m in mounts:
        if not m.read_only:
            _hand_over(m.host, uid, gid)
    env = target_env(spec, mounts)
    env.update(PYTHONPATH=SDK_TARGET, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", HOME="/tmp")
    env.update(gpu_env(range(len(spec.gpu_ids))))  # the container sees its devices only, numbered from 0
    env.update(thread_env(spec.cpus))
    # docker's own file of the output, at most twice the budget, and never under 64 MiB: a reader that falls further
    # behind a flood than docker's file holds loses its place ("Error grabbing logs"), before the budget's cut
    log_bytes = max(64 << 20, (spec.max_log_bytes or (64 << 20)) * 2)
    config = dict(
        image=image, command=["python3", *spec.argv], working_dir="/app", user=user, environment=env,
        labels={LABEL_INSTANCE: settings.instance, **spec.labels},
        volumes={str(m.host.resolve()): {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in mounts},
        network_mode="bridge" if spec.network else "none",
        cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=settings.docker_pids_limit,
        read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
        ulimits=[Ulimit(name="fsize", soft=settings.docker_file_bytes, hard=settings.docker_file_bytes)],
        log_config=LogConfig(type="json-file", config={"max-size": str(log_bytes), "max-file": "1"}),
        detach=True, stdin_open=False, tty=False,
        mounts=volume_mounts(settings, spec, declared, {"/tmp", *(posixpath.normpath(m.target) for m in mounts)}),
    )
    if spec.memory:
        config.update(mem_limit=spec.memory, memswap_limit=spec.memory)
    if spec.cpus:
        config["nano_cpus"] = int(spec.cpus * 1e9)
    if spec.shm_size:
        config["shm_size"] = spec.shm_size
    if spec.gpu_ids:
        config["device_requests"] = [DeviceRequest(device_ids=[str(i) for i in spec.gpu_ids],
                                                   capabilities=[["gpu"]])]
    return config


class DockerHandle(Handle):
    """One container. A thread builds or finds the image, starts the container and blocks in container.wait();
    when the container has exited it writes to a pipe (exit_fd) so the scheduler wakes at once. The container
    is removed only after the scheduler has recorded the outcome (close)."""

    def __init__(self, runtime: "DockerRuntime", spec: RunSpec):
        self.runtime = runtime
        self.spec = spec
        self.pid = None
        self.environment: str | None = None
        self.isolation = "docker"
        self.container = None
        self._init: psutil.Process | None = None
        self._group: cgroups.RunGroup | None = None  # to freeze it while its folders are measured
        self.started: float | None = None
        self._prep_error: str | None = None
        self._cancel: tuple[FailureReason, str] | None = None
        self._outcome: Outcome | None = None
        self._state: dict = {}  # the container's State once it has exited
        self._log_thread: threading.Thread | None = None
        self._exit_r, self._exit_w = os.pipe2(os.O_CLOEXEC)
        self._done = threading.Event()
        self._life = threading.Thread(target=self._lifecycle, name=f"docker-run-{spec.run_id}", daemon=True)
        self._life.start()

    # -- in the thread: image, container, log streaming, the wait for its exit ------------------------------
    def _lifecycle(self) -> None:
        try:
            if self._prepare():
                self._await_exit()
        finally:  # this thread owns the write end: it never writes to a closed (or reused) descriptor
            self._done.set()
            try:
                os.write(self._exit_w, b"x")
            except OSError:
                pass
            os.close(self._exit_w)

    def _prepare(self) -> bool:
        import docker.errors

        try:
            api = self.runtime.client()
            settings = self.runtime.settings
            bounds = env_builds.Bounds.of(settings, self.spec.owner)
            image = session_image(api, self.spec.workdir, self.spec.image, settings.docker_image,
                                  self.spec.source_builds, settings.root, tuple(settings.docker_images), bounds)
            held = _charged(api, settings, image, bounds.owner)
            found = api.images.get(image)
            self.environment = f"{image} ({found.id})"
            if self._cancel is not None:
                return False
            try:  # (held until its container exists: from then on Docker keeps the image for it)
                declared = (found.attrs.get("Config") or {}).get("Volumes")
                self.container = api.containers.create(**container_config(settings, self.spec, image, declared))
            finally:
                if held is not None:
                    held.close()
            self.container.start()
            self.started = time.monotonic()
            self._init = _first_process(self.container)
            # the container's own group (named by its id), found once: its folder goes with it, never another's after
            group = cgroups.holding(self._init.pid) if self._init is not None else None
            self._group = group if group and all(self.container.id in str(f) for f in group.folders.values()) else None
            self._log_thread = threading.Thread(target=self._stream_logs, daemon=True,
                                                name=f"docker-logs-{self.spec.run_id}")
            self._log_thread.start()
            return True
        except ImageError as exc:
            self._prep_error = str(exc)
        except docker.errors.APIError as exc:
            self._prep_error = f"docker: {exc.explanation or exc}"
        except Exception as exc:  # noqa: BLE001 - reported as a launch error
            self._prep_error = f"{type(exc).__name__}: {exc}"
        return False

    def _await_exit(self) -> None:
        import requests

        while True:
            try:
                self.container.wait(timeout=24 * 3600)
                break
            except requests.exceptions.ReadTimeout:
                continue  # still running after a day: wait on
            except Exception as exc:  # noqa: BLE001 - the engine went away
                self._state = {"lost": f"container lost: {exc}"}
                return
        if self._log_thread is not None:
            self._log_thread.join(timeout=30)  # the log is complete before the run is reported ended
        try:
            self.container.reload()
            self._state = self.container.attrs.get("State", {})
        except Exception as exc:  # noqa: BLE001
            self._state = {"lost": f"container lost: {exc}"}

    def _stream_logs(self) -> None:
        """Copy the container's output to the log file as it comes (run_log: past the limit, the cut is noted and
        the rest dropped)."""
        log = run_log.CappedLog(self.spec.log_path, self.spec.max_log_bytes)
        try:
            for chunk in self.container.logs(stream=True, follow=True, stdout=True, stderr=True):
                log.write(chunk)
        except Exception:  # noqa: BLE001 - the container went away: the log ends here
            pass
        finally:
            log.close()

    # -- the handle interface --------------------------------------------------------------------------------
    def held_still(self):
        return self._group.still() if self._group is not None else super().held_still()

    def places(self) -> list[tuple[str, bool]] | None:
        return [("/", False), *base.mount_places([*self.spec.mounts, Mount(SDK, SDK_TARGET)])]

    def pids(self) -> list[int]:
        try:  # (is_running: the container's first process, not one that took its id after it ended)
            return [self._init.pid, *(p.pid for p in self._init.children(recursive=True))] \
                if self._init is not None and self._init.is_running() else []
        except psutil.Error:
            return []

    def status(self) -> RunStatus:
        return self._outcome.status if self._outcome else RunStatus.RUNNING

    def exit_fd(self) -> int | None:
        return self._exit_r if self._outcome is None else None  # set once: an ended run is not waited on

    def poll(self) -> Outcome | None:
        if self._outcome is not None:
            return self._outcome
        if not self._done.is_set():
            if self.started is not None and self.spec.time_limit is not None \
                    and time.monotonic() - self.started > self.spec.time_limit:
                self.cancel(FailureReason.TIMEOUT, f"wall-clock limit of {self.spec.time_limit:g} s reached")
            return None
        if self._prep_error is not None:
            return self._end(Outcome(RunStatus.FAILED, FailureReason.LAUNCH_ERROR, None, self._prep_error))
        if self.container is None:  # cancelled before the container existed
            reason, message = self._cancel or (FailureReason.HARNESS_ERROR, "no container")
            return self._end(Outcome(_status_for(reason), reason, None, message))
        state = self._state
        code = state.get("ExitCode")
        if "lost" in state:
            outcome = Outcome(RunStatus.FAILED, FailureReason.HARNESS_ERROR, None, state["lost"])
        elif self._cancel is not None:
            reason, message = self._cancel
            outcome = Outcome(_status_for(reason), reason, code, message)
        elif state.get("OOMKilled"):
            outcome = Outcome(RunStatus.FAILED, FailureReason.OOM, code,
                              f"memory limit of {self.spec.memory} bytes exceeded (killed by the kernel)")
        elif code == 0:
            outcome = Outcome(RunStatus.SUCCEEDED, None, 0, "")
        else:
            outcome = Outcome(RunStatus.FAILED, FailureReason.EXIT_CODE, code, f"process exited with code {code}")
        return self._end(outcome)

    def _end(self, outcome: Outcome) -> Outcome:
        self._outcome = outcome
        return outcome

    def wait(self, timeout: float | None = None) -> Outcome | None:
        return wait_by_polling(self, timeout)

    def cancel(self, reason: FailureReason = FailureReason.STOPPED, message: str = "") -> None:
        if self._outcome is not None:
            return
        if self._cancel is None:
            self._cancel = (reason, message or reason.value)
        if self.container is not None:
            try:
                self.container.kill()
            except Exception:  # noqa: BLE001 - it has already exited
                pass

    def close(self) -> None:
        """The outcome is recorded: remove the container (in the background; a leftover is reaped later)."""
        if self._exit_r is not None:
            os.close(self._exit_r)
            self._exit_r = None
        if self.container is not None:
            container, self.container = self.container, None
            threading.Thread(target=_remove, args=(container, _of_run(self.runtime.settings, self.spec.run_id)),
                             daemon=True,
                             name=f"docker-rm-{self.spec.run_id}").start()
        base.remove_scratch(self.spec.paths.run)


def _first_process(container) -> psutil.Process | None:
    """The container's first process as this machine sees it (its processes, for pids()); None once ended."""
    try:
        container.reload()
        pid = int(container.attrs.get("State", {}).get("Pid") or 0)
        return psutil.Process(pid) if pid > 0 else None
    except Exception:  # noqa: BLE001 - the container ended, or the engine did not say: its open files go unseen
        return None


def _charged(api, settings, image: str, user: str | None):
    """A derived image's use by USER's run, charged (runtime.env_store.use_image, by what it adds to its base) and
    held until the run's container exists; None for an image that is not derived."""
    if not image.startswith(ENV_REPO + ":"):
        return None
    found = api.images.get(image)
    base = api.images.get(found.labels.get("nsml-harness.base") or found.id)
    key = env_store.use_image(settings.envs_dir, image, image_builds.added_bytes(found, base), user)
    held = env_store.hold(settings.envs_dir, key)
    api.images.get(image)  # (still there once held: removed meanwhile to make room is ImageNotFound, a launch error)
    return held


def _of_run(settings: Settings, run_id) -> dict:
    """The filter that finds a run's container and volumes."""
    return {"label": [f"{LABEL_INSTANCE}={settings.instance}", f"nsml-harness.run={run_id}"]}


def _remove(container, volumes: dict | None = None) -> None:
    """Remove a container, then the volumes that VOLUMES (a volumes.list filter) finds."""
    try:
        container.remove(force=True, v=True)
    except Exception:  # noqa: BLE001 - already gone
        pass
    _remove_volumes(container.client, volumes)


def _remove_volumes(api, volumes: dict | None) -> None:
    try:
        found = api.volumes.list(filters=volumes) if volumes else []
    except Exception:  # noqa: BLE001 - no engine: a later reap removes them
        found = []
    for volume in found:
        try:
            volume.remove(force=True)
        except Exception:  # noqa: BLE001 - gone, or still used by a container that a later reap removes
            pass


def _status_for(reason: FailureReason) -> RunStatus:
    return RunStatus.STOPPED if reason is FailureReason.STOPPED else RunStatus.FAILED


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self._client = None

    def client(self):
        if self._client is None:
            self._client = client()
        return self._client

    def start(self, spec: RunSpec) -> DockerHandle:
        return DockerHandle(self, spec)

    def cleanup(self, run) -> bool:
        """After a scheduler died: remove the run's container. True when one had been created."""
        if not engine_answers():
            return False
        found = self.client().containers.list(all=True, ignore_removed=True, filters=_of_run(self.settings, run.id))
        for c in found:
            _remove(c)
        _remove_volumes(self.client(), _of_run(self.settings, run.id))
        return bool(found)

    def reap_orphans(self) -> list[str]:
        """Containers of this harness instance that no scheduler watches: kill and remove them."""
        if not engine_answers():
            return []
        reaped = []
        mine = {"label": f"{LABEL_INSTANCE}={self.settings.instance}"}
        for c in self.client().containers.list(all=True, ignore_removed=True, filters=mine):
            _remove(c)
            reaped.append(c.labels.get("nsml-harness.session", c.name))
        _remove_volumes(self.client(), mine)
        return reaped
