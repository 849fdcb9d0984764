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


def is_state_root(path: Path) -> bool:
    """Whether PATH holds a harness's state: its store, its state folder or its settings file."""
    return any((path / name).exists() for name in STATE_MARKERS)


def find_root(here: Path) -> Path:
    """The state root a command in HERE works on when none is given: the nearest of HERE and the folders above it
    that is one (as git finds its repository: `nsml run -d TASK .` from inside a code folder), else HERE; never a
    folder inside a state folder (.harness: sessions, runs and checkpoints participant code wrote). One found
    above HERE must be this account's, as git asks of a repository: another account's harness.toml planted in a
    shared folder above (/tmp) would otherwise choose this account's store, runtime and organizers."""
    for p in (here, *here.parents):
        if STATE_DIR in p.parts:  # inside a state folder: what runs wrote there (a checkpoint's harness.toml) is
            continue  #              never a state root; the one that holds the folder is
        if is_state_root(p):
            if p != here:
                owners = {path.lstat().st_uid for path in (p, *(p / n for n in STATE_MARKERS)) if path.exists()}
                if owners != {os.geteuid()}:
                    raise UserError(f"{p} above here looks like a state root but belongs to another account; give "
                                    f"--root {p} to use it anyway, or --root DIR for your own")
            return p
    return here
