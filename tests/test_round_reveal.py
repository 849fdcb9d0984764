"""A round's tasks are told to participants when the round opens (`reveal = "open"`, the default; Kaggle keeps a
competition private until its launch, AI Rush told its second round's task at its start). Before, such a task is
as unknown to a participant as a name never registered — on every path that takes a task's name, locally and over
HTTP, in the same words — and no "did you mean" or contest listing names it. Organizers see everything;
`reveal = "always"` lists the task ahead (its runs are still refused until the round opens)."""
import pytest
from helpers import NSML_MAIN, RemoteCli, participant
from test_contest import CONTEST, _split_tiny


@pytest.fixture
def cli(either_cli):
    return either_cli


def _contest(cli, tmp_path, state_root, reveal: str | None = None) -> None:
    """Round r1 (task tiny) open, round r2 (task tiny2) to open on 2026-07-03."""
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    for name in ("tiny", "tiny2"):
        cli("dataset", "add", _split_tiny(tmp_path / name, name), user="org")
    text = CONTEST.format(gpu_quota=2, policy="wait") + (f'reveal = "{reveal}"\n' if reveal else "")  # (r2's)
    spec = tmp_path / "contest.toml"
    spec.write_text(text)
    cli("contest", "clock", "2026-07-01T01:00:00", user="org")
    cli("contest", "create", spec, user="org")


def _asked_of(cli, tmp_path, task):
    """Every command that takes a task's name, as alice (a participant) asks it: (argv, answer)."""
    code = tmp_path / "code"
    if not code.exists():
        participant(code, NSML_MAIN)
    return {argv: cli(*argv, user="alice", code=2).stderr.strip()
            for argv in (("board", task), ("contest", "board", task), ("history", task), ("ps", "-d", task),
                         ("run", "-d", task, str(code)), ("run", "-d", f"tiny,{task}", str(code)))}


def test_a_task_of_a_round_not_open_is_unknown_to_participants_until_it_opens(cli, tmp_path, state_root):
    _contest(cli, tmp_path, state_root)
    assert [t["name"] for t in cli.json("dataset", "ls", user="alice") if t["prepared"]] == ["tiny"]
    assert "tiny2" in [t["name"] for t in cli.json("dataset", "ls", user="org")]
    rounds = {r["round"]: r["tasks"] for r in cli.json("contest", "ls", user="alice")}
    assert rounds == {"r1": "tiny", "r2": "(told when the round opens)"}
    assert {r["round"]: r["tasks"] for r in cli.json("contest", "ls", user="org")}["r2"] == "tiny2"
    hidden, never = _asked_of(cli, tmp_path, "tiny2"), _asked_of(cli, tmp_path, "tiny3")
    for argv, said in hidden.items():  # the words of a task never registered, but for its name
        assert said == never[tuple(a.replace("tiny2", "tiny3") for a in argv)].replace("tiny3", "tiny2"), argv
        assert said.count("\n") == 0 and "unknown task 'tiny2'" in said, (argv, said)
        assert "tiny2" not in said.partition("(known:")[2], said  # no listing names it
    assert cli.json("contest", "board", "tiny2", user="org")["round"] == "rush/r2"  # organizers: everything
    assert cli.json("ps", "-a", user="alice") == []  # nothing ran
    if isinstance(cli, RemoteCli):  # the dashboard, through the same server
        import httpx
        pages = {path: httpx.get(cli.url + path, cookies={"nsml_token": cli.token("alice")})
                 for path in ("/contests", "/tasks", "/tasks/tiny2", "/tasks/tiny2/board.json", "/tasks/tiny")}
        assert "(told when the round opens)" in pages["/contests"].text and "tiny2" not in pages["/contests"].text
        assert "tiny2" not in pages["/tasks"].text and pages["/tasks/tiny"].status_code == 200
        assert pages["/tasks/tiny2"].status_code == pages["/tasks/tiny2/board.json"].status_code == 404
    cli("contest", "clock", "2026-07-03T00:00:01", user="org")  # r2's start: it opens when r1 closes
    cli("contest", "close", "rush/r1", "--force", user="org")
    assert "tiny2" in [t["name"] for t in cli.json("dataset", "ls", user="alice")]
    assert {r["round"]: r["tasks"] for r in cli.json("contest", "ls", user="alice")}["r2"] == "tiny2"
    assert cli.json("contest", "board", "tiny2", user="alice")["round"] == "rush/r2"


def test_reveal_always_lists_the_task_ahead_and_still_refuses_its_runs(cli, tmp_path, state_root):
    _contest(cli, tmp_path, state_root, reveal="always")
    assert "tiny2" in [t["name"] for t in cli.json("dataset", "ls", user="alice")]
    assert {r["round"]: r["tasks"] for r in cli.json("contest", "ls", user="alice")}["r2"] == "tiny2"
    refused = cli("run", "-d", "tiny2", participant(tmp_path / "code", NSML_MAIN), user="alice", code=2).stderr
    assert "round rush/r2, which has not opened yet" in refused


def test_a_bad_reveal_is_one_line_naming_the_field(cli, tmp_path, state_root):
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    spec = tmp_path / "c.toml"
    spec.write_text('name = "x"\n[[rounds]]\ntasks = ["a"]\nstart = 2026-01-01T00:00:00\n'
                    'end = 2026-01-02T00:00:00\nreveal = "later"\n')
    said = cli("contest", "create", spec, user="org", code=2).stderr
    assert said.count("\n") == 1 and "rounds[1].reveal: expected 'open' or 'always', got 'later'" in said, said


def test_a_later_rounds_board_and_task_list_stay_untold_through_an_earlier_round(cli, tmp_path, state_root):
    """Review of the change: `contest board tiny --round rush/r2` answered "not a task of round rush/r2 (tiny2)";
    with tiny in r1 and r2, r1 closed and r2 not open, `contest board tiny` showed r2's empty board and `run -d
    tiny` named r2 (and refused r1's practice)."""
    _contest(cli, tmp_path, state_root)
    cli("contest", "clock", "2026-07-02T00:00:01", user="org")
    cli("contest", "close", "rush/r1", user="org")
    said = cli("contest", "board", "tiny", "--round", "rush/r2", user="alice", code=2).stderr
    assert "round rush/r2 has not opened yet; its boards are shown from its opening" in said, said
    assert "tiny2" not in said
    assert cli.json("contest", "board", "tiny2", "--round", "rush/r2", user="org")["round"] == "rush/r2"


def test_a_task_in_a_closed_round_and_a_later_hidden_one_is_the_closed_rounds(cli, tmp_path, state_root):
    (state_root / "harness.toml").write_text('organizers = ["org"]\ngpus = 4\n')
    for name in ("tiny", "tiny2"):
        cli("dataset", "add", _split_tiny(tmp_path / name, name), user="org")
    spec = tmp_path / "contest.toml"
    spec.write_text(CONTEST.format(gpu_quota=2, policy="wait").replace('["tiny2"]', '["tiny2", "tiny"]'))
    cli("contest", "clock", "2026-07-01T01:00:00", user="org")
    cli("contest", "create", spec, user="org")
    cli("contest", "clock", "2026-07-02T00:00:01", user="org")
    cli("contest", "close", "rush/r1", user="org")  # r2 is now opened, to start on 2026-07-03
    assert {r["round"]: r["tasks"] for r in cli.json("contest", "ls", user="alice")}["r2"] == \
        "(told when the round opens)"
    for user in ("alice", "org"):
        assert cli.json("contest", "board", "tiny", user=user)["round"] == "rush/r1", user
    code = participant(tmp_path / "code", NSML_MAIN)
    over = cli("run", "-d", "tiny", "-g", "3", code, user="alice", code=2).stderr  # r1's practice, r1's quota
    assert "quota of 2 in round rush/r1" in over and "r2" not in over, over
    cli("contest", "clock", "2026-07-03T00:00:01", user="org")  # r2 opens: it governs tiny
    assert cli.json("contest", "board", "tiny", user="alice")["round"] == "rush/r2"


def test_a_task_not_prepared_yet_is_unknown_to_participants(cli, tmp_path, state_root):
    """Only organizers prepare: a built-in (or a pack in extra_task_paths) not prepared yet is not listed to a
    participant and answers as a name never registered (else a hidden built-in stood out from the others)."""
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    assert [t for t in cli.json("dataset", "ls", user="alice") if not t["prepared"]] == []
    assert "bus-eta" in [t["name"] for t in cli.json("dataset", "ls", user="org")]
    said = {task: cli("board", task, user="alice", code=2).stderr.replace(task, "T") for task in ("bus-eta", "nosuch")}
    assert said["bus-eta"] == said["nosuch"] and "unknown task 'T'" in said["nosuch"], said
    assert "not prepared yet" in cli("board", "bus-eta", user="org", code=2).stderr


def test_a_participants_own_session_of_a_task_that_joined_a_hidden_round_does_not_name_it(cli, tmp_path, state_root):
    """Review of the change: a session of tiny2 from before tiny2 joined r2 (not open) took `submit` and `fork` to
    the round's gate, which named rush/r2 and its opening."""
    (state_root / "harness.toml").write_text('organizers = ["org"]\ngpus = 4\n')
    for name in ("tiny", "tiny2"):
        cli("dataset", "add", _split_tiny(tmp_path / name, name), user="org")
    name = cli("run", "-d", "tiny2", "-a", "--epochs 1", participant(tmp_path / "code", NSML_MAIN),
               user="bob").stdout.split()[1]
    cli("logs", "-f", name, user="bob")
    spec = tmp_path / "contest.toml"
    spec.write_text(CONTEST.format(gpu_quota=1, policy="wait"))
    cli("contest", "clock", "2026-07-01T01:00:00", user="org")
    cli("contest", "create", spec, user="org")
    for argv in (("submit", name, "0"), ("fork", name, "-c", "0")):
        said = cli(*argv, user="bob", code=2).stderr
        assert "tiny2 is in a contest round that has not opened yet" in said and "r2" not in said, (argv, said)


def test_a_hidden_task_is_looked_up_as_an_unknown_name_is(state_root, tmp_path, cli):
    """Review of the change: a hidden name skipped the task's look-up, so it was answered some 0.4 ms sooner than
    a name never registered (Server-Timing showed it). Both now make the same queries."""
    from sqlalchemy import event

    from harness.core.errors import NotFound
    from harness.core.settings import load_settings
    from harness.service import permissions
    from harness.state import Harness
    _contest(cli, tmp_path, state_root)
    h = Harness(load_settings(user="alice"))
    statements: list[str] = []
    event.listen(h.store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        made = {}
        for name in ("tiny2", "tiny3"):
            statements.clear()
            with h.tx() as db, pytest.raises(NotFound) as said:
                permissions.task_of(h, db, name)
            made[name] = (list(statements), str(said.value).replace(name, "T"))
        assert made["tiny2"] == made["tiny3"] and made["tiny2"][0]
    finally:
        h.store.close()
