"""`nsml model ls / rm / pull`: the checkpoints a session saved."""
from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

from sqlalchemy import select

from .context import Harness
from .db.models import Checkpoint
from .errors import NotFound, UserError


def list_checkpoints(h: Harness, session: str) -> list[dict]:
    with h.tx() as db:
        sess = h.session(db, session)
        rows = db.scalars(select(Checkpoint).where(Checkpoint.session_id == sess.id)
                          .order_by(Checkpoint.modified_at, Checkpoint.id))
        return [{"checkpoint": c.name, "last_modified": c.modified_at.isoformat(timespec="seconds"),
                 "elapsed": round(c.elapsed, 1), "summary": {k.replace("__", "/"): v for k, v in c.summary.items()},
                 "size": c.size} for c in rows]


def checkpoint_folder(h: Harness, session: str, checkpoint: str) -> Path:
    with h.tx() as db:
        sess = h.session(db, session)
        folder = Path(sess.checkpoint_dir) / str(checkpoint)
        known = db.scalar(select(Checkpoint.id).where(Checkpoint.session_id == sess.id,
                                                      Checkpoint.name == str(checkpoint)))
        if known is None or not folder.is_dir():
            raise NotFound(f"session {session} has no checkpoint {checkpoint!r}")
        return folder


def remove_checkpoints(h: Harness, session: str, pattern: str) -> list[str]:
    """Remove checkpoints by name; `*` (and other wildcards) match several."""
    with h.tx() as db:
        sess = h.session(db, session)
        rows = db.scalars(select(Checkpoint).where(Checkpoint.session_id == sess.id)).all()
        chosen = [c for c in rows if fnmatch.fnmatchcase(c.name, str(pattern))]
        if not chosen:
            raise NotFound(f"session {session} has no checkpoint matching {pattern!r}")
        for c in chosen:
            shutil.rmtree(Path(sess.checkpoint_dir) / c.name, ignore_errors=True)
            db.delete(c)
        return [c.name for c in chosen]


def pull_checkpoint(h: Harness, session: str, checkpoint: str, dest: str) -> Path:
    folder = checkpoint_folder(h, session, checkpoint)
    target = Path(dest).expanduser().resolve()
    if target.is_dir():  # like `cp -r`: into an existing folder
        target = target / f"{session.replace('/', '_')}_{checkpoint}"
    if target.exists():
        raise UserError(f"PATH: {target} already exists")
    shutil.copytree(folder, target)
    return target
