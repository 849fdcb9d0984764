"""GPU inventory (nvidia-ml-py, or one declared in settings) and allocation of free devices.

A declared inventory is a count (``gpus = 4``) or a list by model (``gpus = [{model = "V100", count = 4}]``);
``run --gpu-model NAME`` allocates only devices whose model name contains NAME (case-insensitive), as NSML's
``--gpu-model V100`` did.

With a cluster executor the inventory is the cluster's: its scheduler publishes the nodes it sees in
``.harness/cluster.json`` (`publish`), and the CLI checks requests against that (`models`)."""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from functools import lru_cache

from harness.core.errors import UserError
from harness.core.safefs import write_whole
from harness.core.settings import Settings

DRIVER_PATHS = ("/dev/nvidiactl", "/proc/driver/nvidia")  # present whenever the NVIDIA kernel driver is loaded


@contextmanager
def _nvml():
    """pynvml, initialised for the block — or None where no driver is loaded (no NVML import on every `ps`) or
    NVML cannot start; shut down after."""
    if not any(os.path.exists(p) for p in DRIVER_PATHS):
        yield None
        return
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no NVML, no GPU to ask
        yield None
        return
    try:
        yield pynvml
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


@lru_cache(maxsize=1)
def _driver_models() -> tuple[str, ...]:
    """The model name of each device the driver reports (none without a driver)."""
    with _nvml() as nvml:
        if nvml is None:
            return ()
        return tuple(model_name(nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i)))
                     for i in range(int(nvml.nvmlDeviceGetCount())))


_minors: tuple[int, ...] | None = None  # once read (a failure is asked again next time)


def _driver_minors() -> tuple[int, ...] | None:
    """Each device's minor number (its /dev/nvidiaN), by NVML index: () without a driver, None where a driver is
    loaded but NVML would not say (now)."""
    global _minors
    if _minors is not None:
        return _minors
    if not any(os.path.exists(p) for p in DRIVER_PATHS):
        return ()
    with _nvml() as nvml:
        if nvml is None:
            return None
        try:
            _minors = tuple(int(nvml.nvmlDeviceGetMinorNumber(nvml.nvmlDeviceGetHandleByIndex(i)))
                            for i in range(int(nvml.nvmlDeviceGetCount())))
        except Exception:  # noqa: BLE001
            return None
    return _minors


def device_minor(index: int) -> int | None:
    """The minor number of the device the inventory calls INDEX: NVML's; the index itself where there is no
    driver (a declared count); None where a driver is loaded but its minor cannot be read — then the run gets no
    device node rather than perhaps another run's (its CUDA finds no device: a failure that names itself)."""
    minors = _driver_minors()
    if minors is None or (minors and not 0 <= index < len(minors)):
        return None
    return minors[index] if minors else index


def model_name(raw) -> str:
    """A device's name as the driver gives it, as one line of printable text (at most 80 characters)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return "".join(c if c.isprintable() else " " for c in text)[:80]


READ_EVERY = 1.0  # seconds a reading is reused: a flood of `ps` or /inventory asks NVML once a second at most
_last_read: tuple[float, int, list[dict]] | None = None
_read_lock = threading.Lock()


def readings(count: int) -> list[dict]:
    """What NVML reads now (within READ_EVERY) of this machine's first COUNT devices: model, memory used and total
    (bytes) and utilisation (percent of the last sample period) — none without a driver; a device NVML cannot
    read is left out. Values are bounded as read (a driver is not trusted to stay in range)."""
    global _last_read
    if count <= 0:
        return []
    with _read_lock:  # one reader at a time; the others take its reading
        now = time.monotonic()
        if _last_read is not None and _last_read[1] == count and now - _last_read[0] < READ_EVERY:
            return [dict(d) for d in _last_read[2]]
        found = _read(count)
        _last_read = (now, count, found)
        return [dict(d) for d in found]


def _read(count: int) -> list[dict]:
    with _nvml() as nvml:
        if nvml is None:
            return []
        try:
            indices = range(min(count, int(nvml.nvmlDeviceGetCount())))
        except Exception:  # noqa: BLE001
            return []
        found = []
        for i in indices:
            try:
                found.append(_reading(nvml, i))
            except Exception:  # noqa: BLE001 - this device cannot be read now: the others still can
                continue
        return found


def _reading(nvml, i: int) -> dict:
    handle = nvml.nvmlDeviceGetHandleByIndex(i)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    total = min(max(int(memory.total), 0), 1 << 60)
    return {"index": i, "model": model_name(nvml.nvmlDeviceGetName(handle)),
            "memory_used": min(max(int(memory.used), 0), total), "memory_total": total,
            "utilization": min(max(int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu), 0), 100)}


def describe_reading(device: dict) -> str:
    """One device's readings in words: "gpu 0 NVIDIA H200: 87% busy, 12.3 of 139.8 GiB"."""
    gib = 1024 ** 3
    return (f"gpu {device['index']} {device['model']}: {device['utilization']}% busy, "
            f"{device['memory_used'] / gib:.1f} of {device['memory_total'] / gib:.1f} GiB")


def local_models(settings: Settings) -> list[str]:
    """The model of each device of this machine the harness may hand out, by index ("" when only a count is
    declared)."""
    if settings.declared_gpus is not None:
        return list(settings.declared_gpu_models) or [""] * settings.declared_gpus
    return list(_driver_models())


def models(settings: Settings) -> list[str] | None:
    """The GPUs runs of this state root may get: this machine's, or (with a cluster executor) the cluster's as
    its scheduler last published them — None when it has not yet."""
    if settings.executor == "local":
        return local_models(settings)
    nodes = published(settings)
    return None if nodes is None else node_models(nodes)


def node_models(nodes: list[dict]) -> list[str]:
    """A cluster's GPUs, node by node (alive nodes only): one model name per GPU."""
    return [node.get("model") or "" for node in nodes if node.get("alive") for _ in range(int(node.get("gpus", 0)))]


def publish(settings: Settings, nodes: list[dict]) -> None:
    """Write the cluster's nodes for the CLI (atomically: a reader sees the old file or the new one)."""
    write_whole(settings.cluster_file, json.dumps({"executor": settings.executor, "address": settings.cluster_address,
                                                   "seen": time.time(), "nodes": nodes}, indent=1))


def published(settings: Settings) -> list[dict] | None:
    try:
        data = json.loads(settings.cluster_file.read_text())
    except (OSError, ValueError):
        return None
    if data.get("executor") != settings.executor or data.get("address") != settings.cluster_address:
        return None  # another cluster's
    return [n for n in data.get("nodes", []) if isinstance(n, dict)]


def _matching(names: list[str], model: str | None) -> list[int]:
    return [i for i, name in enumerate(names) if not model or model.lower() in name.lower()]


def check_request(settings: Settings, gpus: int, model: str | None = None) -> None:
    if gpus < 0:
        raise UserError(f"-g/--gpus: must be >= 0, got {gpus}")
    names = models(settings)
    if names is None:  # a cluster not seen yet: its scheduler checks once it has
        return
    where = "this machine's inventory" if settings.executor == "local" else "the cluster's inventory"
    if gpus > len(names):
        hint = "declare one with 'gpus = N' in harness.toml or HARNESS_GPUS" if settings.executor == "local" \
            else f"as last seen by the scheduler, {settings.cluster_file}"
        raise UserError(f"-g/--gpus: {gpus} GPU(s) requested but {where} has {len(names)} ({hint})")
    if model:
        fit = len(_matching(names, model))
        if fit < max(gpus, 1):
            known = sorted({m for m in names if m}) or ["no model names (a bare count is declared)"]
            raise UserError(f"--gpu-model: {fit} device(s) of model {model!r} for {max(gpus, 1)} requested "
                            f"({where} has: {', '.join(known)})")


def allocate(names: list[str], busy: set[int], count: int, model: str | None = None) -> list[int] | None:
    """The lowest free device indices among NAMES (of MODEL, when given), or None when the request does not fit
    now."""
    free = [i for i in _matching(names, model) if i not in busy]
    if len(free) < count:
        return None
    return free[:count]
