"""GPU inventory (nvidia-ml-py, or a count declared in settings) and allocation of free devices."""
from __future__ import annotations

from functools import lru_cache

from .errors import UserError
from .settings import Settings


@lru_cache(maxsize=1)
def _driver_gpu_count() -> int:
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no GPU
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def inventory(settings: Settings) -> list[int]:
    """Device indices the harness may hand out."""
    count = settings.declared_gpus if settings.declared_gpus is not None else _driver_gpu_count()
    return list(range(count))


def check_request(settings: Settings, gpus: int) -> None:
    total = len(inventory(settings))
    if gpus < 0:
        raise UserError(f"-g/--gpus: must be >= 0, got {gpus}")
    if gpus > total:
        raise UserError(f"-g/--gpus: {gpus} GPU(s) requested but this machine's inventory has {total} "
                        f"(declare one with 'gpus = N' in harness.toml or HARNESS_GPUS)")


def allocate(settings: Settings, busy: set[int], count: int) -> list[int] | None:
    """The lowest free device indices, or None when the request does not fit now."""
    free = [i for i in inventory(settings) if i not in busy]
    if len(free) < count:
        return None
    return free[:count]
