"""`nsml model ls / rm / pull`: the checkpoints a session saved.

A checkpoint is a real folder named by one safe path component under its session's checkpoint folder; the
folder was written by participant code, so nothing here follows a link out of it.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

from sqlalchemy import select

from harness.core.errors import NotFound
from harness.core.names import pull_target
from harness.core.safefs import checkpoint_name_problem, copy_tree_safely, is_real_dir, remove_tree
from harness.core.state_root import DEFAULT_DB_FILE, STATE_FOLDER_MARK, STATE_MARKERS
from harness.runs.create import storage_changed
from harness.state import Harness
from harness.store.models import Checkpoint

from . import permissions


def list_checkpoints(h: Harness, session: str) -> list[dict]:
    with h.tx() as db:
        sess = permissions.own_session(h, db, session)
        rows = db.scalars(select(Checkpoint).where(Checkpoint.session_id == sess.id)
                          .order_by(Checkpoint.modified_at, Checkpoint.id))
        return [{"checkpoint": c.name, "last_modified": c.modified_at.isoformat(timespec="seconds"),
                 "elapsed": round(c.elapsed, 1), "summary": {k.replace("__", "/"): v for k, v in c.summary.items()},
                 "size": c.size} for c in rows]


def has_checkpoint(db, sess, checkpoint: str) -> bool:
    """Whether session SESS has CHECKPOINT: a name of one safe component, its row (what the session saved), and
    its folder there, a folder (the one rule of submit, fork and pull: never a path's mere existence)."""
    return checkpoint_name_problem(checkpoint) is None and db.scalar(select(Checkpoint.id).where(
        Checkpoint.session_id == sess.id, Checkpoint.name == checkpoint)) is not None \
        and is_real_dir(Path(sess.checkpoint_dir) / checkpoint)


def checkpoint_folder(h: Harness, session: str, checkpoint: str) -> Path:
    checkpoint = str(checkpoint)
    with h.tx() as db:
        sess = permissions.own_session(h, db, session)
        if not has_checkpoint(db, sess, checkpoint):
            raise NotFound(f"session {session} has no checkpoint {checkpoint!r}")
        return Path(sess.checkpoint_dir) / checkpoint


def remove_checkpoints(h: Harness, session: str, pattern: str) -> list[str]:
    """Remove checkpoints by name; `*` (and other wildcards) match several."""
    with h.tx() as db:
        sess = permissions.own_session(h, db, session)
        rows = db.scalars(select(Checkpoint).where(Checkpoint.session_id == sess.id)).all()
        chosen = [c for c in rows if fnmatch.fnmatchcase(c.name, str(pattern))]
        if not chosen:
            raise NotFound(f"session {session} has no checkpoint matching {pattern!r}")
        for c in chosen:
            folder = Path(sess.checkpoint_dir) / c.name
            if checkpoint_name_problem(c.name) is None and is_real_dir(folder):
                remove_tree(folder)  # (it unlinks links, never follows them, however deep)
            db.delete(c)
        storage_changed(h.settings, sess.user.name)
        return [c.name for c in chosen]


PULL_LEAVES_OUT = (*STATE_MARKERS, f"{DEFAULT_DB_FILE}-*", STATE_FOLDER_MARK,  # a state root's files, and
                   ".git", ".hg", ".svn", ".bzr", ".jj")  # version control folders: participant code may have written
#   any into its checkpoint; pulled, a harness.toml would make the organizer's folder a state root of its choosing
#   (the store, runtime plugins, sandbox, organizers), and a .git/config run its commands at the organizer's next
#   `git status` (core.fsmonitor) or shell prompt


def pull_checkpoint(h: Harness, session: str, checkpoint: str, dest: str) -> tuple[Path, list[str]]:
    """Copy a checkpoint's folders and regular files to DEST, within limits.checkpoint_bytes (what a copy writes: a
    sparse file counts at its full size); links, special files, files past that limit and a state root's files
    (PULL_LEAVES_OUT) are left out (returned)."""
    folder = checkpoint_folder(h, session, checkpoint)
    target = pull_target(dest, session, checkpoint)
    return target, copy_tree_safely(folder, target, h.settings.checkpoint_bytes, leave_out=PULL_LEAVES_OUT)
