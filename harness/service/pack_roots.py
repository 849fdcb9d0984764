"""Where a state root may be, beside a task pack: never in a pack's folder or below it (its store and socket would
sit inside the pack, in every copy of it, and below train/ in every training run's view), and a pack that holds the
state root is never registered. Light on purpose: the CLI checks a state root on every command, so this imports
the pack's layout only."""
from __future__ import annotations

from pathlib import Path

from harness.core.errors import UserError
from harness.taskpacks import layout


def pack_around(folder: Path) -> Path | None:
    """The task pack FOLDER is, or is inside (its evaluator and loader there), or None."""
    folder = Path(folder).resolve()
    return next((p for p in (folder, *folder.parents) if layout.is_pack(p)), None)


def refuse_root_in_pack(folder: Path, command: str) -> None:
    """A state root is never started in a task pack's folder or below it (`cd mypack && nsml dataset check .`,
    `cd mypack/train && nsml dataset add ..`, or --root there)."""
    pack = pack_around(folder)
    if pack is not None:
        raise UserError(f"{pack} is a task pack (it holds {layout.EVALUATOR} and {layout.LOADER}): no state root "
                        f"is made {'in' if pack == Path(folder).resolve() else 'below'} it; run `{command}` from "
                        f"the folder above it (naming the pack), or give --root DIR outside it")


def refuse_pack_holding(pack: Path, root: Path) -> None:
    """PACK is not registered when it, its train/ or a test split's folder holds the state root ROOT, judged by
    their targets (train/ may be a link): a pack's folders are bound into the runs."""
    root = root.resolve()
    shown = [pack.resolve(), (pack / layout.TRAIN).resolve(),
             *(layout.split_dir(pack, dry_run).resolve() for dry_run in (False, True))]
    if any(place == root or place in root.parents for place in shown):
        raise UserError(f"{pack}: the state root {root} is inside this pack: move one of them (a pack's folders "
                        f"are bound into the runs, and the state root holds every user's sessions and tokens)")
