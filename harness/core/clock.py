"""The contest clock: real UTC time, or a simulated time that `contest simulate` (or an organizer) sets.

Submit times, quota windows and round windows are read from here, so a contest can be replayed on simulated
time while sessions and submits still run for real.  The simulated time lives in a file of the state root so
that every process (the CLI, the scheduler) sees the same one.
"""
from __future__ import annotations

from datetime import datetime, timezone

from .errors import UserError
from .settings import Settings

CLOCK_FILE = "clock"


def utcnow() -> datetime:
    """Naive UTC, as the store keeps times."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def now(settings: Settings) -> datetime:
    path = settings.state_dir / CLOCK_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return utcnow()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{path}: not an ISO date and time: {text[:40]!r}") from None


def set_clock(settings: Settings, when: datetime | None) -> None:
    """Set the simulated time (None: back to real time). Written atomically."""
    path = settings.state_dir / CLOCK_FILE
    if when is None:
        path.unlink(missing_ok=True)
        return
    settings.ensure_dirs()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(when.replace(tzinfo=None).isoformat(timespec="seconds"))
    tmp.replace(path)


def is_simulated(settings: Settings) -> bool:
    return (settings.state_dir / CLOCK_FILE).exists()
