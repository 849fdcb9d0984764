"""GPU inventory (nvidia-ml-py, or one declared in settings) and allocation of free devices.

A declared inventory is a count (``gpus = 4``) or a list by model (``gpus = [{model = "V100", count = 4}]``);
``run --gpu-model NAME`` allocates only devices whose model name contains NAME (case-insensitive), as NSML's
``--gpu-model V100`` did."""
from __future__ import annotations

from functools import lru_cache

from harness.core.errors import UserError
from harness.core.settings import Settings


@lru_cache(maxsize=1)
def _driver_models() -> tuple[str, ...]:
    """The model name of each device the driver reports (none without a driver)."""
    try:
        import pynvml
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no GPU
        return ()
    try:
        names = []
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return tuple(names)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def models(settings: Settings) -> list[str]:
    """The model of each device the harness may hand out, by index ("" when only a count is declared)."""
    if settings.declared_gpus is not None:
        return list(settings.declared_gpu_models) or [""] * settings.declared_gpus
    return list(_driver_models())


def inventory(settings: Settings) -> list[int]:
    """Device indices the harness may hand out."""
    return list(range(len(models(settings))))


def _matching(settings: Settings, model: str | None) -> list[int]:
    names = models(settings)
    return [i for i, name in enumerate(names) if not model or model.lower() in name.lower()]


def check_request(settings: Settings, gpus: int, model: str | None = None) -> None:
    total = len(inventory(settings))
    if gpus < 0:
        raise UserError(f"-g/--gpus: must be >= 0, got {gpus}")
    if gpus > total:
        raise UserError(f"-g/--gpus: {gpus} GPU(s) requested but this machine's inventory has {total} "
                        f"(declare one with 'gpus = N' in harness.toml or HARNESS_GPUS)")
    if model:
        fit = len(_matching(settings, model))
        if fit < max(gpus, 1):
            known = sorted({m for m in models(settings) if m}) or ["no model names (a bare count is declared)"]
            raise UserError(f"--gpu-model: {fit} device(s) of model {model!r} for {max(gpus, 1)} requested "
                            f"(this inventory has: {', '.join(known)})")


def allocate(settings: Settings, busy: set[int], count: int, model: str | None = None) -> list[int] | None:
    """The lowest free device indices (of MODEL, when given), or None when the request does not fit now."""
    free = [i for i in _matching(settings, model) if i not in busy]
    if len(free) < count:
        return None
    return free[:count]
