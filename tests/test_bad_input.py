"""User mistakes: one line on stderr naming the file, field or flag; exit code 2; no traceback."""
import pytest
from helpers import ORGANIZER, run_session
from hypothesis import example, given
from hypothesis import strategies as st

from harness.core.errors import UserError
from harness.core.sizes import parse_size


def _one_line(r, *fragments):
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output, r.output
    for f in fragments:
        assert f in err, err
    return err


def test_unknown_task_suggests_the_closest(cli, tiny_task, nsml_folder):
    r = cli("run", "-d", "tinny", nsml_folder, code=2)
    _one_line(r, "unknown task 'tinny'", "Did you mean 'tiny'?")


def test_builtin_task_not_prepared(cli, nsml_folder):
    """The organizer (who prepares tasks) is told how; a participant, who cannot, is told the task is unknown."""
    r = cli("run", "-d", "garbage-docs", nsml_folder, code=2, user=ORGANIZER)
    _one_line(r, "not prepared yet", "dataset prepare garbage-docs")
    _one_line(cli("run", "-d", "garbage-docs", nsml_folder, code=2), "unknown task 'garbage-docs'")


def test_missing_entry_and_folder(cli, tiny_task, nsml_folder, tmp_path):
    _one_line(cli("run", "-d", "tiny", "-e", "train.py", nsml_folder, code=2), "-e/--entry", "'train.py' not found")
    _one_line(cli("run", "-d", "tiny", tmp_path / "nope", code=2), "FOLDER", "is not a folder")


def test_bad_args_and_sizes(cli, tiny_task, nsml_folder):
    _one_line(cli("run", "-d", "tiny", "-a", '--lr "1e-4', nsml_folder, code=2), "-a/--args", "cannot parse")
    _one_line(cli("run", "-d", "tiny", "--memory", "lots", nsml_folder, code=2), "--memory", "invalid size")
    _one_line(cli("run", "-d", "tiny", "-g", "1", nsml_folder, code=2), "-g/--gpus", "inventory has 0")


@pytest.mark.parametrize("args,fragments", [
    (("logs", "alice/tiny/9"), ("unknown session 'alice/tiny/9'",)),
    (("logs", "not-a-session"), ("SESSION", "USER/TASK/N")),
    (("model", "ls", "bob/tiny/1"), ("unknown session",)),
    (("submit", "alice/tiny/99", "1"), ("unknown session",)),
    (("board", "nope"), ("unknown task 'nope'",)),
    (("stop", "alice/*/77"), ("no session of yours matches",)),
])
def test_unknown_names(cli, tiny_task, args, fragments):
    _one_line(cli(*args, code=2), *fragments)


def test_unknown_checkpoint_and_someone_elses_session(cli, tiny_task, nsml_folder):
    name = run_session(cli, nsml_folder)
    _one_line(cli("submit", name, "7", code=2), "has no checkpoint '7'", "model ls")
    _one_line(cli("fork", name, "-c", "7", code=2), "-c/--checkpoint", "no checkpoint '7'")
    for probe in ("/etc", "../" * 8, "../checkpoints/1", "1/"):  # folders that exist are no checkpoints: the
        _one_line(cli("fork", name, "-c", probe, code=2), "-c/--checkpoint", "no checkpoint")  # same refusal
    _one_line(cli("submit", name, "1", user="bob", code=2), f"unknown session {name!r}")  # as if not there


def test_bad_settings_file_and_db_url(cli, state_root):
    (state_root / "harness.toml").write_text("gpus = [")
    _one_line(cli("ps", code=2), "harness.toml", "invalid TOML")
    (state_root / "harness.toml").write_text("gpus = 'four'")
    _one_line(cli("ps", code=2), "harness.toml: gpus", "expected an integer")
    for text, fragments in (
            ('[scheduler]\nruntime = "docker"\n', ("[scheduler] runtime", "belongs at the top level")),
            ('[scheduler]\nmax_concurent_runs = 3\n', ("max_concurent_runs", "did you mean 'max_concurrent_runs'")),
            ('organisers = ["a"]\n', ("organisers", "did you mean 'organizers'")),
            ('[limits]\nlog_bytes = "big"\n', ("[limits] log_bytes", "expected an integer", "'big'")),
            ('[scheduler]\nlease_seconds = true\n', ("[scheduler] lease_seconds", "expected a number")),
            ('scheduler = 3\n', ("[scheduler] must be a table",))):
        (state_root / "harness.toml").write_text(text)  # unknown keys and wrong types are never silently ignored
        _one_line(cli("ps", code=2), "harness.toml", *fragments)
    (state_root / "harness.toml").unlink()
    _one_line(cli("--db", "nosuchdb://x", "ps", code=2), "--db")


def test_task_pack_not_in_layout(cli, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "task.toml").write_text('name = "broken"\n')
    _one_line(cli("dataset", "add", tmp_path / "broken", code=2, user=ORGANIZER), "not a task pack", "missing train")


def test_unknown_runtime(cli, tiny_task, nsml_folder):
    _one_line(cli("run", "-d", "tiny", "--runtime", "dockr", nsml_folder, code=2), "--runtime",
              "Did you mean 'docker'?")


@given(st.one_of(st.text(max_size=60), st.from_regex(r"\s*[-+]?[0-9_.eE]{1,30}\s*[kKmMgGtTpP]?[iI]?[bB]?\s*")))
@example("1e400G")
@example("nan")
@example("-1G")
@example("0x10G")
@example("١٢٣G")
def test_a_size_is_in_bounds_or_one_line_naming_the_flag(text):
    """`--memory`, `--shm-size` and `[limits] memory` go through one parser: a size between 1 MiB and 1 PiB, or
    one short line naming the flag — never another exception, never a size outside the bounds."""
    try:
        value = parse_size(text, "--memory")
    except UserError as e:
        message = str(e)
        assert message.startswith("--memory: ") and "\n" not in message and len(message) < 600
        return
    assert value is None if text == "" else (isinstance(value, int) and 1 << 20 <= value <= 1 << 50)


def test_an_entry_flag_given_to_run_says_how_to_pass_it(cli, tmp_path):
    for argv in (["run", "-d", "tiny", ".", "--epochs", "3"], ["fork", "alice/tiny/1", "-c", "1", "--lr", "0.1"]):
        out = cli(*argv, code=2).output
        flag = argv[-2]
        assert f'arguments for the entry go in one -a: -a "{flag} ..."' in out and "Did you mean" not in out, out
    assert "Did you mean one of: '--entry', '--memo', '--memory'" in cli("run", "-d", "t", "--memroy", "3G",
                                                                           code=2).output  # a near miss of ours


def test_a_runtime_typo_in_harness_toml_is_named_there(cli, tiny_task, nsml_folder, state_root):
    (state_root / "harness.toml").write_text('runtime = "proces"\n')
    out = cli("run", "-d", "tiny", nsml_folder, code=2).stderr
    assert "harness.toml: runtime (or HARNESS_RUNTIME): unknown runtime 'proces'. Did you mean 'process'?" in out
    (state_root / "harness.toml").write_text('runtime_choices = ["dockr"]\n')
    out = cli("run", "-d", "tiny", nsml_folder, code=2).stderr
    assert "harness.toml: runtime_choices[0]: unknown runtime 'dockr'. Did you mean 'docker'?" in out


def test_a_program_flag_after_the_command_says_where_it_goes(cli):
    for argv, said in ((["ps", "--root", "/x"], "nsml --root VALUE ps"), (["run", "-d", "t", "--user", "bob", "."],
                                                                         "nsml --user VALUE run")):
        out = cli(*argv, code=2).output
        assert f"it goes before the command: {said}" in out and "-a" not in out.split("Error:")[1], out
