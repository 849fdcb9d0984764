"""The era a code folder's imports call for, when it names no image.

Most NSML entries of 2020-2023 have no `#nsml:` line: they ran on the contest's default image, whose libraries
were of their time. Some import names that today's versions removed (`from transformers import AdamW`, gone in
transformers 5), so on the harness's own environment they stop at their first line. An era may list such names
(`imports` in eras.toml: `MODULE.NAME`); a folder with no image line whose Python files use one of them, and whose
requirements do not name its package, runs in that era, and `run` says which file and line chose it. A pin of the
package in requirements.txt (or an image line) always decides instead.

What is read, bounded and never run: the `.py` files of the folder up to MAX_DEPTH folders down (not hidden
folders, `__pycache__` or a virtualenv's), at most MAX_FILES of them in name order, MAX_BYTES of each and
MAX_TOTAL in all (it runs again as the scheduler launches the run: a cost bounded whatever the code). A name is
used when a line starts `from MODULE import` with NAME among what it imports (parenthesised lists too), or when
`MODULE.NAME` is written outside a comment.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

MAX_DEPTH = 2
MAX_FILES = 300
MAX_BYTES = 512 << 10
MAX_TOTAL = 4 << 20
SKIPPED = {"__pycache__", "site-packages", "node_modules"}


def _sources(code: Path):
    """(relative path, text) of the folder's Python files that are read (see the module's text)."""
    count = total = 0
    for here, dirs, files in os.walk(code):  # (links are never followed into folders)
        depth = len(Path(here).relative_to(code).parts)
        dirs[:] = sorted(d for d in dirs if depth < MAX_DEPTH and not d.startswith(".") and d not in SKIPPED
                         and not (Path(here, d) / "pyvenv.cfg").exists())
        for name in sorted(files):
            path = Path(here, name)
            if not name.endswith(".py") or path.is_symlink() or not path.is_file():
                continue
            if count == MAX_FILES or total >= MAX_TOTAL:
                return
            count += 1
            with open(path, "rb") as fh:
                data = fh.read(min(MAX_BYTES, MAX_TOTAL - total))
            total += len(data)
            yield str(path.relative_to(code)), data.decode("utf-8", errors="replace")


def _patterns(dotted: str) -> tuple[re.Pattern, re.Pattern, str]:
    module, _, name = dotted.rpartition(".")
    start = re.compile(r"^[ \t]*from[ \t]+" + re.escape(module) + r"[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)", re.M)
    written = re.compile(r"(?<![\w.])" + re.escape(dotted) + r"(?!\w)")
    return start, written, name


def _used(text: str, dotted: str) -> int | None:
    """The line where TEXT uses DOTTED (MODULE.NAME), or None."""
    start, written, name = _patterns(dotted)
    if name not in text:  # (most files: one substring search)
        return None
    for found in start.finditer(text):
        names = re.sub(r"#[^\n]*", "", found[1]).strip("()").split(",")  # (comments in a parenthesised list)
        if any(part.split()[:1] == [name] for part in names):
            return text.count("\n", 0, found.start()) + 1
    for found in written.finditer(text):
        line_start = text.rfind("\n", 0, found.start()) + 1
        if "#" not in text[line_start:found.start()]:
            return text.count("\n", 0, found.start()) + 1
    return None


def _required(code: Path) -> set[str]:
    """The package names the folder's requirements name (a bad file names none here: `run` says what is wrong)."""
    from .images import SETUP_REQUIREMENTS, ImageError, requirements
    try:
        files = requirements(code)
    except ImageError:
        return set()
    out = set()
    for name in ("requirements.txt", SETUP_REQUIREMENTS):
        for line in files.get(name, "").splitlines():
            try:
                out.add(Requirement(line.split(" #", 1)[0].strip()).name.lower().replace("_", "-"))
            except InvalidRequirement:
                continue
    return out


def choose(code: Path, eras: dict):
    """The era of the first listed name the folder uses (files in name order, then eras in catalogue order), as
    an eras.Choice; None where no era lists imports, none is used, or its package is in the requirements."""
    wanted = [(era, dotted) for era in eras.values() for dotted in era.imports]
    if not wanted:
        return None
    required = _required(code)
    wanted = [(era, d) for era, d in wanted if d.split(".")[0].lower().replace("_", "-") not in required]
    for rel, text in _sources(code) if wanted else ():
        for era, dotted in wanted:
            line = _used(text, dotted)
            if line is not None:
                from .eras import Choice
                module, _, name = dotted.rpartition(".")
                return Choice(era, None, f"no #nsml: image line; {rel}:{line} uses {name} from {module}, which the "
                                         f"harness's environment does not have: era {era.name} ({era.description})")
    return None
