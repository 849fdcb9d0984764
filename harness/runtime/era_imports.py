"""The era a code folder's imports call for, when it names no image.

Most NSML entries of 2020-2023 have no `#nsml:` line: they ran on the contest's default image, whose libraries
were of their time. Some import names that today's versions removed (`from transformers import AdamW`, gone in
transformers 5), so on the harness's own environment they stop at their first line. An era may list such names
(`imports` in eras.toml: `MODULE.NAME`); a folder with no image line whose Python files use one of them, and whose
requirements do not name its package, runs in that era, and `run` says which file and line chose it. A pin of the
package in requirements.txt (or an image line) always decides instead.

What is read, bounded and never run: the `.py` files of the folder up to MAX_DEPTH folders down (not hidden
folders, `__pycache__` or a virtualenv's, nor what `.nsmlignore` lists: the files the run's snapshot will have,
harness.core.code_ignore), at most MAX_FILES of them in name order, MAX_BYTES of each and MAX_TOTAL in all. It
runs again as the scheduler launches the run, so every step is linear in what it reads (a parenthesised list is
read up to MAX_LIST characters, and MAX_STATEMENTS statements of each module per file). A name is used when a
line starts `from MODULE import` with NAME among what it imports (parenthesised lists too), or when
`MODULE.NAME` is written in code. Comments and strings never count (a docstring that shows `from transformers
import AdamW` imports nothing): a file that spells a wanted name is first read once with its comments and strings
blanked (`code_only`, lines kept), by expressions that each step forward one character, or one escape, at a time.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness.core.code_ignore import ignore_spec
from harness.core.escape import one_line

MAX_DEPTH = 2
MAX_FILES = 300
MAX_BYTES = 256 << 10
MAX_TOTAL = 2 << 20
MAX_LIST = 4096
MAX_STATEMENTS = 64  # `from MODULE import` statements read per file and name
SKIPPED = {"__pycache__", "site-packages", "node_modules"}


def _virtualenv(code: Path, rel: Path, ignored) -> bool:
    """A virtualenv's folder (its pyvenv.cfg, unless the snapshot leaves that out: then both scans read it)."""
    return (code / rel / "pyvenv.cfg").exists() and not ignored.match_file((rel / "pyvenv.cfg").as_posix())


def _sources(code: Path):
    """(relative path, text) of the folder's Python files that are read (see the module's text)."""
    ignored = ignore_spec(code)
    count = total = 0
    for here, dirs, files in os.walk(code):  # (links are never followed into folders)
        rel = Path(here).relative_to(code)
        dirs[:] = sorted(d for d in dirs if len(rel.parts) < MAX_DEPTH and not d.startswith(".") and d not in SKIPPED
                         and not ignored.match_file(f"{(rel / d).as_posix()}/")
                         and not _virtualenv(code, rel / d, ignored))
        for name in sorted(files):
            path = Path(here, name)
            if not name.endswith(".py") or ignored.match_file((rel / name).as_posix()) or path.is_symlink() \
                    or not path.is_file():
                continue
            if count == MAX_FILES or total >= MAX_TOTAL:
                return
            count += 1
            try:  # (never blocks: a FIFO swapped in after the check opens and reads nothing; a folder: skipped)
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as fh:
                    data = fh.read(min(MAX_BYTES, MAX_TOTAL - total)) or b""
            except OSError:
                continue
            total += len(data)
            yield (rel / name).as_posix(), data.decode("utf-8", errors="replace")


_COMMENT_OR_STRING = re.compile(  # each alternative of a body starts with a character of its own: one step each
    r"#[^\n]*"
    r"|'''(?:\\.|'(?!'')|[^\\'])*(?:'''|\\?\Z)" r'|"""(?:\\.|"(?!"")|[^\\"])*(?:"""|\\?\Z)'
    r"|'(?:\\.|[^\\'\n])*(?:'|\n|\\?\Z)" r'|"(?:\\.|[^\\"\n])*(?:"|\n|\\?\Z)', re.S)
_NOT_NEWLINE = re.compile(r"[^\n]")


def _blank(found: re.Match) -> str:
    return " " * len(found[0]) if "\n" not in found[0] else _NOT_NEWLINE.sub(" ", found[0])


def code_only(text: str) -> str:
    """TEXT with its comments and strings (their quotes too) as spaces, its lines kept: one pass (an unclosed
    string runs to the end)."""
    return _COMMENT_OR_STRING.sub(_blank, text)


def _patterns(dotted: str) -> tuple[re.Pattern, re.Pattern, str]:
    module, _, name = dotted.rpartition(".")
    start = re.compile(r"^[ \t]*from[ \t]+" + re.escape(module) + r"[ \t]+import[ \t]+(\(?)[^\n]*", re.M)
    written = re.compile(r"(?<![\w.])" + re.escape(dotted) + r"(?!\w)")
    return start, written, name


def _imported(text: str, found: re.Match) -> list[str]:
    """The names a `from MODULE import` statement (FOUND) lists: its line, or its parenthesised list up to its `)`
    within MAX_LIST characters (each statement's read is bounded: linear in the file)."""
    if not found[1]:
        return text[found.end(1):found.end()].split(",")
    end = text.find(")", found.end(1), found.end(1) + MAX_LIST)
    return text[found.end(1):end if end >= 0 else found.end(1) + MAX_LIST].split(",")


def _used(text: str, dotted: str) -> int | None:
    """The line where TEXT (code_only's: no comment, no string) uses DOTTED (MODULE.NAME), or None."""
    start, written, name = _patterns(dotted)
    if name not in text:
        return None
    for count, found in enumerate(start.finditer(text)):
        if count == MAX_STATEMENTS:  # (a file of a thousand such lines is not code of any era: its cost is bounded)
            break
        if any(part.split()[:1] == [name] for part in _imported(text, found)):
            return text.count("\n", 0, found.start()) + 1
    for number, line in enumerate(text.splitlines(), 1):  # (each line once)
        if dotted in line and written.search(line):
            return number
    return None


def _required(code: Path) -> set[str]:
    """The package names the folder's requirements name (a bad file names none here: `run` says what is wrong)."""
    from .images import SETUP_REQUIREMENTS, ImageError, requirements
    try:
        files = requirements(code)
    except ImageError:
        return set()
    return {canonicalize_name(Requirement(line).name)  # (lines images.requirement_line normalised: each parses)
            for name in ("requirements.txt", SETUP_REQUIREMENTS) for line in files.get(name, "").splitlines()}


def choose(code: Path, eras: dict):
    """The era of the first listed name the folder uses (files in name order, then eras in catalogue order), as
    an eras.Choice; None where no era lists imports, none is used, or its package is in the requirements."""
    wanted = [(era, dotted) for era in eras.values() for dotted in era.imports]
    if not wanted:
        return None
    required = _required(code)
    wanted = [(era, d) for era, d in wanted if canonicalize_name(d.split(".")[0]) not in required]
    names = {dotted.rpartition(".")[2] for _, dotted in wanted}
    for rel, text in _sources(code) if wanted else ():
        if not any(name in text for name in names):  # (most files: a few substring searches)
            continue
        text = code_only(text)
        for era, dotted in wanted:
            line = _used(text, dotted)
            if line is not None:
                from .eras import Choice
                module, _, name = dotted.rpartition(".")
                return Choice(era, None, f"no #nsml: image line; {one_line(rel)}:{line} uses {name} from {module}, "
                                         f"which the harness's environment does not have: era {era.name} "
                                         f"({era.description})")
    return None
