"""Bubblewrap (Debian's `bubblewrap`, /usr/bin/bwrap) around a process-runtime run.

The run gets a new mount, pid, IPC, UTS and network namespace (no network unless the task allows it) and runs
as `nobody` in a user namespace.  Its filesystem is built from nothing: the system (/usr and friends), the
interpreter's prefixes and a minimal /etc, read-only; then only its own mounts at NSML's paths: /app (its code
copy), /data/TASK (read-only binds of the task's own folders), /nsml/... (events, checkpoints, its user's own
sessions, output, loader) and a private /tmp that is a folder of the run (so its size is measured).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from . import gpus
from .base import Mount, RunSpec, mount_places

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
ETC_FILES = ("passwd", "group", "hosts", "nsswitch.conf", "host.conf", "localtime", "ld.so.cache", "ld.so.conf",
             "ld.so.conf.d", "ssl", "ca-certificates", "ca-certificates.conf", "alternatives", "mime.types")
SDK_TARGET = "/opt/nsml-sdk"
NOBODY = "65534"


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@lru_cache(maxsize=None)
def works() -> bool:
    """bwrap is installed and can make the namespaces we ask for on this machine (cached per process)."""
    path = bwrap_path()
    if not path:
        return False
    try:
        proc = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "--unshare-user", "--uid", NOBODY,
                               "--gid", NOBODY, "--die-with-parent", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@lru_cache(maxsize=None)
def _no_nested_namespaces() -> list[str]:
    """`--disable-userns` where this bwrap has it (0.8.0 and later): the run may make no user namespace of its own
    (to mount a tmpfs the harness's memory measure would not find, runtime.memory_use). Older bwraps run without
    it, and the threat model says what that leaves."""
    path = bwrap_path()
    try:
        proc = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "--unshare-user", "--disable-userns",
                               "--die-with-parent", "true"], capture_output=True, timeout=20)
    except (OSError, TypeError, subprocess.TimeoutExpired):
        return []
    return ["--disable-userns"] if proc.returncode == 0 else []


def python_roots() -> list[str]:
    """Folders the interpreter needs, outside the system folders (a venv, a pyenv or /opt install)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix,
             str(Path(os.path.realpath(sys.executable)).parent.parent)}
    return sorted(r for r in roots if r and not any(r == d or r.startswith(d + "/") for d in SYSTEM_DIRS))


HOST_DEV = Path("/dev")
# The driver's shared nodes a CUDA process opens; never nvidia-modeset (display: a kernel client of its own,
# outside the per-device check) nor /dev/nvidia-caps (MIG configuration)
GPU_CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")


def gpu_devices(ids: Sequence[int]) -> list[tuple[str, str]]:
    """(host path, path in the sandbox) of the device nodes a run given the GPUs IDS (inventory indices) may
    open: the driver's shared nodes and /dev/nvidiaN of its own devices only — a run that ignores
    CUDA_VISIBLE_DEVICES cannot reach another run's GPU. None for a run without GPUs."""
    if not ids:
        return []
    minors = [gpus.device_minor(i) for i in ids]
    names = [*GPU_CONTROL_NODES, *(f"nvidia{minor}" for minor in minors if minor is not None)]
    return [(str(HOST_DEV / name), f"/dev/{name}") for name in names]


DRIVER_TARGET = "/opt/nvidia-driver"  # where an era's run finds this machine's NVIDIA driver libraries
DRIVER_GLOBS = ("libcuda.so*", "libnvidia-*.so*", "libcudadebugger.so*")
DRIVER_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")


def driver_libraries() -> list[Path]:
    """This machine's NVIDIA user-space driver (libcuda and friends): an era's root filesystem has its own
    system, not the host's driver, so a GPU run binds these in (the CUDA flavour of an era's framework is the
    package's own build; only the driver must match the kernel's)."""
    found = {}
    for folder in DRIVER_DIRS:
        for pattern in DRIVER_GLOBS:
            for path in sorted(Path(folder).glob(pattern)):
                found.setdefault(path.name, path)
    return list(found.values())


def base_command(network: bool, tmp: Path, gpu_ids: Sequence[int] = (), root: Path | None = None) -> list[str]:
    """bwrap with namespaces, the system and the interpreter read-only, and TMP as /tmp; mounts go after. GPU_IDS:
    the run's devices (the sandbox numbers them from 0, see `visible_gpus`). ROOT: an era's root filesystem
    (harness.runtime.eras) as the system, its /etc and its /opt/era, in place of this machine's system and
    interpreter."""
    cmd = [bwrap_path(), "--unshare-all", "--unshare-user", *_no_nested_namespaces(), "--uid", NOBODY, "--gid", NOBODY,
           "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--hostname", "nsml"]
    if network:
        cmd.append("--share-net")
    system = str(root) if root is not None else ""
    for d in SYSTEM_DIRS:
        cmd += ["--ro-bind-try", system + d, d]
    for name in ETC_FILES + (("resolv.conf",) if network else ()):
        cmd += ["--ro-bind-try", f"{system}/etc/{name}", f"/etc/{name}"]
    if root is not None and network:
        cmd += ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]  # this machine's resolver
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    if gpu_ids:
        for host, target in gpu_devices(gpu_ids):
            cmd += ["--dev-bind-try", host, target]
        if root is not None:
            for lib in driver_libraries():
                cmd += ["--ro-bind-try", str(lib), f"{DRIVER_TARGET}/{lib.name}"]
    cmd += ["--bind", str(tmp), "/tmp"]  # before the interpreter: a venv under /tmp must not be hidden by it
    if root is not None:
        cmd += ["--ro-bind-try", f"{system}/opt/era", "/opt/era"]
    else:
        for prefix in python_roots():
            cmd += ["--ro-bind", prefix, prefix]
    return cmd


def command(spec: RunSpec, tmp: Path, sdk: Path, argv: list[str], extra_ro: list[Path] = (),
            root: Path | None = None, seccomp_fd: int | None = None) -> list[str]:
    """The bwrap command line that runs ARGV for SPEC (EXTRA_RO: more host folders, read-only at their paths —
    a session's own Python environment; ROOT: an era's root filesystem as the system; SECCOMP_FD: a descriptor
    the filter of runtime.seccomp can be read from, passed to bwrap)."""
    cmd = base_command(spec.network, tmp, gpu_ids=spec.gpu_ids, root=root)
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    for path in extra_ro:
        cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--ro-bind", str(sdk), SDK_TARGET]
    for m in sorted(spec.mounts, key=lambda m: m.target.count("/")):  # parents before what is placed inside
        cmd += ["--ro-bind" if m.read_only else "--bind", str(m.host.resolve()), m.target]
    cmd += ["--remount-ro", "/", "--chdir", "/app", "--"]  # (last: a root the run cannot fill, nothing to mount)
    return cmd + argv


def visible_gpus(gpu_ids: Sequence[int]) -> range:
    """The numbers a sandboxed run's CUDA gives its devices: only its own nodes are there, and CUDA numbers the
    devices it can open from 0 (as in a container, or a Slurm job whose devices are constrained)."""
    return range(len(gpu_ids))


def all_mounts(spec: RunSpec, tmp: Path, sdk: Path) -> list[Mount]:
    """Every host folder the sandbox maps, for translating environment paths."""
    return [*spec.mounts, Mount(tmp, "/tmp", read_only=False), Mount(sdk, SDK_TARGET)]


def places(spec: RunSpec, tmp: Path, sdk: Path, extra_ro: Sequence[Path] = ()) -> list[tuple[str, bool]]:
    """Where the sandboxed run sees each place and whether it may write there (Handle.places): the system, the
    interpreter and its environments are read-only, wherever they lie (a venv under the host's /tmp is bound at
    its own path inside the run's writable /tmp); the mounts as `mount_places` says."""
    fixed = [("/", False), *((str(p), False) for p in (*python_roots(), *extra_ro))]
    return fixed + mount_places(all_mounts(spec, tmp, sdk))
