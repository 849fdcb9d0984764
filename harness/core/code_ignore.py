"""What of a code folder is never code: a few names always, and what the folder's `.nsmlignore` lists (gitignore
rules). The snapshot of a run's code (harness.runs.snapshot) copies nothing this ignores, and what reads a folder
before its snapshot is taken (harness.runtime.era_imports, at `run`) skips the same files, so that it reads what
the run will have."""
from __future__ import annotations

from pathlib import Path

from .setting_values import SETTINGS_FILE
from .state_root import DEFAULT_DB_FILE, STATE_DIR

IGNORE_FILE = ".nsmlignore"
ALWAYS_IGNORED = [".git/", "__pycache__/", ".nsml_ignored_by_harness",
                  f"/{STATE_DIR}/", f"/{DEFAULT_DB_FILE}", f"/{DEFAULT_DB_FILE}-*", f"/{SETTINGS_FILE}"]  # a state
#                 root's own files (a code folder that is one, or in one): never code


def ignore_spec(src: Path):
    """The rules for SRC (a pathspec.PathSpec: `match_file("a/b.py")`, a folder as `"a/"`)."""
    import pathspec
    lines = list(ALWAYS_IGNORED)
    ignore = src / IGNORE_FILE
    if ignore.is_file() and not ignore.is_symlink():
        lines += ignore.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.PathSpec.from_lines("gitignore", lines)
