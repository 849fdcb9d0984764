"""Which folder is a state root: the one place its marks are spelled, and how a command finds the one it works on
when none is given (harness.core.settings.load_settings)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError
from .setting_values import SETTINGS_FILE

STATE_DIR = ".harness"
DEFAULT_DB_FILE = "leaderboard.db"
STATE_MARKERS = (DEFAULT_DB_FILE, STATE_DIR, SETTINGS_FILE)  # what makes a folder a state root
STATE_FOLDER_MARK = ".state-folder"  # in STATE_DIR: what is under it is never a state root, whatever its path


def is_state_root(path: Path) -> bool:
    """Whether PATH holds a harness's state: its store, its state folder or its settings file."""
    return any((path / name).exists() for name in STATE_MARKERS)


def mark_state_folder(state_dir: Path) -> None:
    """Mark STATE_DIR as a state folder where its path may not say so (a link to, or a mount of, another disk)."""
    mark = state_dir / STATE_FOLDER_MARK
    if not mark.exists():
        mark.write_text("The harness's state folder: nothing under it is a state root.\n")


def _in_state_folder(p: Path) -> bool:
    """Whether P is a state folder or inside one: runs write there, so what they wrote is never a state root."""
    return STATE_DIR in p.parts or any(_own_mark(q / STATE_FOLDER_MARK) for q in (p, *p.parents))


def _own_mark(mark: Path) -> bool:
    """A state folder's mark this account made (another account's mark in /tmp would refuse every command there)."""
    try:
        return mark.lstat().st_uid == os.geteuid()
    except OSError:
        return False


def find_root(here: Path) -> Path:
    """The state root a command in HERE works on when none is given: the nearest of HERE and the folders above it
    that is one (as git finds its repository: `nsml run -d TASK .` from inside a code folder), else HERE. Never a
    folder inside a state folder (sessions, runs and checkpoints participant code wrote: a harness.toml saved in a
    checkpoint would choose the organizer's store, runtime plugins, sandbox and organizers), and only one this
    account owns, folder and marks, as git asks of a repository (another account's harness.toml in a shared folder
    such as /tmp)."""
    if _in_state_folder(here):
        raise UserError(f"{here} is inside a state folder, where runs write; give --root DIR (the folder that "
                        f"holds {STATE_DIR}), or cd out of it")
    for p in (here, *here.parents):
        if is_state_root(p):
            owners = {path.lstat().st_uid for path in (p, *(p / n for n in STATE_MARKERS)) if path.exists()}
            if owners != {os.geteuid()}:
                raise UserError(f"{p} looks like a state root but belongs to another account; give --root {p} to "
                                f"use it anyway, or --root DIR for your own")
            return p
    return here
