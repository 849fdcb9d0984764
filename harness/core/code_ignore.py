"""What of a code folder is never code: a few names always, and what the folder's `.nsmlignore` lists (gitignore
rules). The snapshot of a run's code (harness.runs.snapshot) copies nothing this ignores, and what reads a folder
before its snapshot is taken (harness.runtime.era_imports, at `run`) skips the same files, so that it reads what
the run will have.

`.nsmlignore` is the participant's, and its patterns become regular expressions matched against every path of
the folder, in the process that serves everyone: with Python's backtracking engine a pattern like `*a*a*a*a*c`
took minutes on one long name, and `*` then many `?` took a quarter of a millisecond a path per pattern. So they
are matched by RE2 (pathspec's `re2` backend), in time linear in the path whatever the pattern, and a file holds
at most MAX_PATTERNS patterns of at most MAX_PATTERN_CHARS characters (MAX_TOTAL_CHARS in all), MAX_WILDCARDS
wildcards (MAX_SINGLE of them `?` or `[`) and MAX_IGNORE_BYTES with comments (and the snapshot walks at most
runs.snapshot.MAX_EXAMINED names). A line that is no gitignore pattern (a lone `!`, a trailing `\\`, a class
`[z-a]`) is refused in one line that names it, where the library raised its own error out of the snapshot, at
`run` (a traceback) and over the API (a 500)."""
from __future__ import annotations

import re
from pathlib import Path

from .errors import UserError
from .setting_values import SETTINGS_FILE
from .state_root import DEFAULT_DB_FILE, STATE_DIR

IGNORE_FILE = ".nsmlignore"
MAX_PATTERNS = 64
MAX_PATTERN_CHARS = 256
MAX_TOTAL_CHARS = 2048  # all the patterns' characters: 64 plain patterns of 250 passed every other bound and made
#                          RE2's cache thrash, 4.3 ms a 1,024-character path (review 3); 64 of 32: 0.025 ms
MAX_IGNORE_BYTES = 64 << 10  # (comments included)
MAX_WILDCARDS = 16  # `*`, `?` and `[` in all the file's patterns, and of them at most MAX_SINGLE `?` or `[`: RE2
MAX_SINGLE = 4  # matches each path in time linear in it, but its states multiply with them (`*a` and 30 `?`: 26 ms
#                 a 4,000-character path, 80 s of the scheduler's launch for a folder of 50,000 such names; `*` and
#                 250 `?` in 63 patterns: 0.9 s a path). Within both, the worst arrangements found by a search:
#                 0.13 ms a 4,000-character path, 0.03 ms a path of the three levels the era scan reads
ENVIRONMENT_FILES = ("requirements.txt", "setup.py", "nsml_package.txt")  # at the top: what `run` builds the run's
#                 environment from, so always taken (an .nsmlignore that listed one made `run` and the launch differ)
ALWAYS_IGNORED = [".git/", "__pycache__/", ".nsml_ignored_by_harness",
                  f"/{STATE_DIR}/", f"/{DEFAULT_DB_FILE}", f"/{DEFAULT_DB_FILE}-*", f"/{SETTINGS_FILE}"]  # a state
#                 root's own files (a code folder that is one, or in one): never code


def ignore_spec(src: Path) -> "IgnoreRules":
    """The rules for SRC: `match_file("a/b.py")`, a folder as `"a/"`."""
    import pathspec
    compile_ = pathspec.util.lookup_pattern("gitignore")
    patterns = [(compile_(line), line) for line in ALWAYS_IGNORED]
    ignore = src / IGNORE_FILE
    if ignore.is_file() and not ignore.is_symlink():
        with open(ignore, "rb") as fh:
            data = fh.read(MAX_IGNORE_BYTES + 1)
        if len(data) > MAX_IGNORE_BYTES:
            raise UserError(f"{IGNORE_FILE}: over {MAX_IGNORE_BYTES} bytes")
        patterns += _checked(data.decode("utf-8", errors="replace"), compile_)
    return IgnoreRules(_re2_spec(patterns))


class IgnoreRules:
    """The rules, with the ENVIRONMENT_FILES at the top always taken (as files: a folder of such a name is matched
    as any other, and so is all it holds)."""

    def __init__(self, spec):
        self._spec = spec

    def match_file(self, rel: str) -> bool:
        """Whether REL (a POSIX path inside the folder; a folder's ends in '/') is ignored."""
        if rel in ENVIRONMENT_FILES:
            return False
        if not rel.isascii():  # a name that is not UTF-8 (os.walk's surrogates) is matched with U+FFFD for its bytes
            rel = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return self._spec.match_file(rel)


def _checked(text: str, compile_) -> list:
    """The patterns of an .nsmlignore, each made by COMPILE_ with where it is written, or a one-line UserError
    naming the line that breaks the bounds or is no pattern."""
    patterns, wildcards, singles, chars = [], 0, 0, 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):  # (gitignore's rules: a comment starts the line)
            continue
        where = f"{IGNORE_FILE}:{number}: {line.strip()[:60]!r}"
        chars += len(line)
        if len(line) > MAX_PATTERN_CHARS or chars > MAX_TOTAL_CHARS:  # (the line as compiled, spaces and all)
            raise UserError(f"{where}: a pattern of over {MAX_PATTERN_CHARS} characters, or past "
                            f"{MAX_TOTAL_CHARS} in all the file's patterns")
        singles += line.count("?") + line.count("[")
        wildcards += line.count("*")
        if wildcards + singles > MAX_WILDCARDS or singles > MAX_SINGLE:
            raise UserError(f"{where}: more than {MAX_WILDCARDS} wildcards (* ? [) in the file, or {MAX_SINGLE} of "
                            f"? and [; list folders (data/) and plain names instead")
        try:
            patterns.append((compile_(line), where))
        except (ValueError, re.error):  # (pathspec's GitIgnorePatternError; a class such as [z-a])
            raise UserError(f"{where}: not a gitignore pattern") from None
        if len(patterns) > MAX_PATTERNS:
            raise UserError(f"{IGNORE_FILE}: more than {MAX_PATTERNS} patterns; ignore whole folders instead")
    return patterns


def _re2_spec(patterns: list):
    """PATTERNS ((pattern, where) pairs) as one RE2 PathSpec, or a one-line UserError naming the first line whose
    regular expression RE2 refuses where Python's `re` took it (`[[:alpha:]\\]`): sought only then."""
    import pathspec
    import re2
    try:
        return pathspec.PathSpec([p for p, _ in patterns], backend="re2")
    except re2.error:
        for pattern, where in patterns:
            try:
                pathspec.PathSpec([pattern], backend="re2")
            except re2.error:
                raise UserError(f"{where}: not a gitignore pattern") from None
        raise UserError(f"{IGNORE_FILE}: its patterns are not gitignore patterns together") from None
