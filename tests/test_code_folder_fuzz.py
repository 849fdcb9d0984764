"""A participant's code folder is read by the process that serves everyone before a line of it runs: its
`.nsmlignore` becomes patterns (core.code_ignore), its files are copied (runs.snapshot) and its Python files are
scanned for an era's imports (runtime.era_imports), at `run` and again as the scheduler launches it. Whatever the
folder holds (any pattern text, any file name bytes, any source), each of the three answers, or refuses in one
line naming the file and line, and nothing else: no exception of a library reaches the service, and the next
user is served."""
import os
import shutil
import tempfile
from pathlib import Path

from helpers import run_session
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.core.code_ignore import ignore_spec
from harness.core.errors import UserError
from harness.runs.snapshot import snapshot_code
from harness.runtime import era_imports, eras

PIECES = ["*", "**", "?", "[", "]", "!", "/", "\\", "-", "^", "#", " ", "a", "b", ".py", "[z-a]", "[!]", "[]]",
          "[[:alpha:]\\]", "(?", "{1,2}", "\x00", "\u202e", "é", "\ud800"]
pattern_line = st.lists(st.one_of(st.sampled_from(PIECES), st.characters()), max_size=24).map("".join)
file_name = st.lists(st.one_of(st.sampled_from([b"a", b".py", b"\xff", b"\xc3", b"data", b"[x]", b" ", b"-", b"\n"]),
                               st.binary(min_size=1, max_size=3)), min_size=1, max_size=6).map(b"".join) \
    .filter(lambda n: b"/" not in n and b"\x00" not in n and n not in (b".", b"..") and len(n) < 200)
SOURCE = ["from transformers import ", "(", ")", "AdamW", ", ", "\n", "#", "transformers.AdamW", "'''", "\\",
          "from transformers.optimization import ", " as x", "import transformers\n", "\t", "\ud800"]
source = st.lists(st.one_of(st.sampled_from(SOURCE), st.text(max_size=5)), max_size=40).map("".join)


def _write(folder: Path, ignore: list[str], names: list[bytes], text: str) -> None:
    (folder / ".nsmlignore").write_bytes("\n".join(ignore).encode("utf-8", "surrogatepass"))
    (folder / "main.py").write_bytes(text.encode("utf-8", "surrogatepass"))
    for name in names:
        with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
            fh.write(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@example(ignore=["ok", "!"], names=[b"\xff.py"], text="from transformers import AdamW\n")
@example(ignore=["[z-a]"], names=[], text="")
@example(ignore=["[[:alpha:]\\]5"], names=[b"data\xff"], text="")
@example(ignore=[], names=[b"a\nb.py"], text="from transformers import AdamW\n")
@given(ignore=st.lists(pattern_line, max_size=6), names=st.lists(file_name, max_size=5, unique=True), text=source)
def test_any_folder_is_read_or_refused_in_one_line(ignore, names, text):
    """Any .nsmlignore, file names and source: the rules, the snapshot and the era scan each answer (the snapshot
    holds exactly what the rules keep) or refuse with a one-line UserError naming .nsmlignore."""
    work = Path(tempfile.mkdtemp())
    try:
        src = work / "code"
        src.mkdir()
        _write(src, ignore, names, text)
        try:
            rules = ignore_spec(src)
        except UserError as exc:
            assert str(exc).startswith(".nsmlignore") and "\n" not in str(exc)
            return
        kept = sorted(n for n in os.listdir(src) if not rules.match_file(n))
        assert snapshot_code(src, work / "snap") == len(kept)
        assert sorted(os.listdir(work / "snap")) == kept
        for folder in (src, work / "snap"):  # at `run`, then at launch: the same answer
            chose = era_imports.choose(folder, eras.catalogue())
            assert chose is None or (chose.era.name == "transformers4" and "\n" not in chose.why)
        assert (chose is None) == (era_imports.choose(src, eras.catalogue()) is None)
    finally:
        shutil.rmtree(work)


def test_hostile_folders_are_refused_in_one_line_at_run_and_the_next_user_is_served(cli, tiny_task, nsml_folder,
                                                                                    tmp_path):
    """Through the service: each .nsmlignore the library could not read is one line at `run`, nothing queued; a
    folder whose file names are not UTF-8 runs; and bob's session, queued after, runs to the end."""
    src = tmp_path / "code"
    shutil.copytree(nsml_folder, src)
    for ignore in ("ok\n!\n", "x\n[z-a]\n", "[[:alpha:]\\]5\n", "trail\\\n"):
        (src / ".nsmlignore").write_text(ignore)
        r = cli("run", "-d", "tiny", src, code=2)
        assert r.stderr.startswith("Error: .nsmlignore:") and "not a gitignore pattern" in r.stderr, r.output
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.output
    assert cli.json("ps", "-a") == []
    (src / ".nsmlignore").write_text("data*\n")
    for name in (b"\xff.py", b"data\xff.bin"):
        with open(os.path.join(os.fsencode(src), name), "wb") as fh:
            fh.write(b"x = 1\n")
    alice = run_session(cli, src, wait=False)
    bob = cli("run", "-d", "tiny", "-e", "main.py", nsml_folder, user="bob").stdout.split()[1]
    for name in (alice, bob):
        user = name.split("/")[0]
        cli("logs", "-f", name, user=user)
        assert [s["status"] for s in cli.json("ps", "-a", user=user)] == ["succeeded"]
