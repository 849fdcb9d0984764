"""A task's `[simulate]` table (task.toml): the baseline folders `contest simulate` runs for it, and their argument
templates. Checked where a pack is registered (`dataset add`), so that a bad entry is found then, not in the middle of a
simulated round; the simulator (harness.sim.baselines) draws from the same grammar.

`baselines = ["baselines/knn", {folder = "baselines/cnn", args = "--lr {float:0.001:0.1} --seed {seed}", weight =
2}]`: folders relative to the task's folder, the strongest first. Arguments are templates: `{seed}` (an integer),
`{int:A:B}`, `{float:A:B}` (drawn in [A, B)) and `{choice:a|b|c}`, drawn again for every session.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import UserError

ENTRY = "main.py"


@dataclass(frozen=True)
class Baseline:
    folder: Path
    args: str = ""  # a template (see the module's doc)
    weight: float = 1.0


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _draw(spec: str, rng, where: str) -> str:
    kind, _, rest = spec.partition(":")
    try:
        if kind == "seed" and not rest:
            return str(int(rng.integers(1000)))
        if kind in ("int", "float"):
            lo, hi = (float(x) for x in rest.split(":"))
            if not lo < hi:
                raise ValueError
            return str(int(rng.integers(int(lo), int(hi)))) if kind == "int" else f"{rng.uniform(lo, hi):.4g}"
        if kind == "choice" and rest:
            options = rest.split("|")
            return options[int(rng.integers(len(options)))]
    except ValueError:
        pass
    raise UserError(f"{where}: {{{spec}}} is not a placeholder (use {{seed}}, {{int:A:B}}, {{float:A:B}} with A < B, "
                    f"{{choice:a|b}})")


def draw_args(template: str, rng, where: str = "args") -> str:
    """TEMPLATE with each placeholder drawn from RNG."""
    return _PLACEHOLDER.sub(lambda m: _draw(m.group(1), rng, where), template)


def _checked(folder: Path, where: str) -> Path:
    folder = folder.expanduser().resolve()
    if not (folder / ENTRY).is_file():
        raise UserError(f"{where}: {folder} has no {ENTRY} (a baseline folder is an NSML entry)")
    return folder


def from_manifest(extra: dict, task_folder: Path, where: str) -> list[Baseline]:
    """The `[simulate]` table of a task.toml (its keys checked by core.schema; its entries here)."""
    entries = (extra.get("simulate") or {}).get("baselines") or []
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}: simulate.baselines[{i}]"
        if isinstance(entry, str):
            entry = {"folder": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("folder"), str):
            raise UserError(f"{at}: expected a folder, or a table with folder (and args, weight)")
        unknown = set(entry) - {"folder", "args", "weight"}
        if unknown:
            raise UserError(f"{at}: unknown key {sorted(unknown)[0]!r} (known: folder, args, weight)")
        args, weight = entry.get("args", ""), entry.get("weight", 1.0)
        if not isinstance(args, str):
            raise UserError(f"{at}.args: expected a string, got {args!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < 1e6:
            raise UserError(f"{at}.weight: expected a number above 0, got {weight!r}")
        draw_args(args, _Probe(), f"{at}.args")  # a bad placeholder is found now, not in the middle of a round
        rel = Path(entry["folder"])
        if rel.is_absolute() or ".." in rel.parts:
            raise UserError(f"{at}.folder: {entry['folder']!r} must be a path inside the task's folder")
        out.append(Baseline(_checked(task_folder / rel, f"{at}.folder"), args, float(weight)))
    return out


class _Probe:
    """An RNG stand-in that checks a template's placeholders without drawing anything."""

    def integers(self, lo, hi=None):
        return 0

    def uniform(self, lo, hi):
        return lo
