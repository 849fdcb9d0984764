"""Sizes people write (`--memory 24G`, `[limits] memory = "16G"`): one parser, one bound, one error line."""
from __future__ import annotations

import math
import os

from .errors import UserError

SIZE_RE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | None, flag: str) -> int | None:
    """'24G', '512M', '1g', '1048576' → bytes."""
    if text is None or text == "":
        return None
    s = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    unit = s[-1] if s and s[-1] in SIZE_RE_UNITS else ""
    number = s[:-1] if unit else s
    try:
        value = float(number)
    except ValueError:
        raise UserError(f"{flag}: invalid size {str(text)[:40]!r} (use e.g. 512M, 24G)") from None
    if not math.isfinite(value) or value * SIZE_RE_UNITS[unit] < 1 << 20 or value * SIZE_RE_UNITS[unit] > 1 << 50:
        raise UserError(f"{flag}: size {str(text)[:40]!r} is not between 1M and 1P")
    return int(value * SIZE_RE_UNITS[unit])


def machine_memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
