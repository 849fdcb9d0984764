"""Contest rounds: contest.toml, team quotas on simulated time, team GPU quota, public/private split, final
selection, close with qualifiers, rescore and provenance — through the CLI, with real sessions and submits."""
from pathlib import Path

import numpy as np
import pytest
from helpers import NSML_MAIN, make_tiny_task, participant

from harness.scoring import splits


@pytest.fixture
def cli(either_cli):
    """Every CLI test here runs locally and through `harness serve` (same assertions, same outputs)."""
    return either_cli


TEST_NUMBERS = list(range(1, 100, 7))  # the tiny task's test set (15 numbers; label = number > 50)

CONTEST = """
name = "rush"
[teams]
"red" = ["alice", "bob"]
"blue" = ["carol"]
"green" = ["dave"]

[[rounds]]
name = "r1"
tasks = ["tiny"]
start = 2026-07-01T00:00:00
end = 2026-07-02T00:00:00
submit = {{ quota = 1, period_seconds = 3600 }}
gpu_quota = {gpu_quota}
gpu_quota_teams = {{ "green" = 3 }}
gpu_policy = "{policy}"
public_fraction = 0.4
split_seed = 11
select = 2
qualify = {{ top = 1 }}

[[rounds]]
name = "r2"
tasks = ["tiny2"]
start = 2026-07-03T00:00:00
end = 2026-07-04T00:00:00
"""


def _split_tiny(folder: Path, name: str) -> Path:
    make_tiny_task(folder, name=name)
    with open(folder / "task.toml", "a") as fh:
        fh.write('\n[split]\nlabel = "lines"\nprediction = "lines"\n')
    return folder


@pytest.fixture
def contest(tmp_path, cli, state_root):
    """Two tasks with a [split], an organizer, a GPU inventory, the contest created, the clock in round 1."""
    def make(gpu_quota=2, policy="wait"):
        (state_root / "harness.toml").write_text('organizers = ["org"]\ngpus = 4\n')
        for name in ("tiny", "tiny2"):
            cli("dataset", "add", _split_tiny(tmp_path / name, name), user="org")
        spec = tmp_path / "contest.toml"
        spec.write_text(CONTEST.format(gpu_quota=gpu_quota, policy=policy))
        cli("contest", "clock", "2026-07-01T01:00:00", user="org")
        cli("contest", "create", spec, user="org")
        return spec
    return make


def _session(cli, tmp_path, user, threshold, *extra, task="tiny", wait=True):
    folder = tmp_path / f"code-{user}-{threshold}-{len(extra)}"
    if not folder.exists():
        participant(folder, NSML_MAIN)
    out = cli("run", "-d", task, "-e", "main.py", "-a", f"--epochs 1 --threshold {threshold}", *extra, folder,
              user=user).stdout
    name = out.split()[1]
    if wait:
        cli("logs", "-f", name, user=user)
    return name


def _clock(cli, when):
    cli("contest", "clock", when, user="org")


def _expected(threshold, idx):
    labels = [int(x > 50) for x in TEST_NUMBERS]
    preds = [int(x > threshold) for x in TEST_NUMBERS]
    return float(np.mean([labels[i] == preds[i] for i in idx]))


def test_contest_file_errors_name_the_field(cli, tmp_path, state_root):
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    bad = tmp_path / "bad.toml"
    cases = {
        'name = "x"\n[[rounds]]\ntasks = ["a"]\nstart = 2026-01-02T00:00:00\nend = 2026-01-01T00:00:00\n':
            "rounds[1].end: must be after start",
        'name = "x"\n[[rounds]]\ntasks = []\nstart = 2026-01-01T00:00:00\nend = 2026-01-02T00:00:00\n':
            "rounds[1].tasks",
        'name = "x"\n[[rounds]]\ntasks = ["a"]\nstart = 2026-01-01T00:00:00\nend = 2026-01-02T00:00:00\n'
        'qualify = { best = 3 }\n': "rounds[1].qualify",
        'name = "x"\n[teams]\nt1 = ["u"]\nt2 = ["u"]\n[[rounds]]\ntasks = ["a"]\nstart = 2026-01-01T00:00:00\n'
        'end = 2026-01-02T00:00:00\n': "teams.t2: user 'u' is already in team 't1'",
        'name = "x"\nround = 1\n': "round: unknown key; did you mean 'rounds'?",
        'name = "x"\n[[rounds]]\ntask = ["a"]\nstart = 2026-01-01T00:00:00\nend = 2026-01-02T00:00:00\n':
            "rounds[1]: task: unknown key; did you mean 'tasks'?",
        'name = "x"\n[[rounds]]\ntasks = ["a"]\nstart = 2026-01-01T00:00:00\nend = 2026-01-02T00:00:00\n'
        'public_fraction = "half"\n': "public_fraction: expected a number, got 'half'",
    }
    for text, expected in cases.items():
        bad.write_text(text)
        r = cli("contest", "create", bad, user="org", code=2)
        assert r.stderr.count("\n") == 1 and str(bad) in r.stderr and expected in r.stderr, r.stderr
    good = tmp_path / "good.toml"
    good.write_text('name = "x"\n[[rounds]]\ntasks = ["a"]\nstart = 2026-01-01T00:00:00\nend = 2026-01-02T00:00:00\n')
    assert "is an organizer command" in cli("contest", "create", good, user="alice", code=2).stderr
    assert "task 'a' is not prepared" in cli("contest", "create", good, user="org", code=2).stderr or \
        "unknown task 'a'" in cli("contest", "create", good, user="org", code=2).stderr


def test_create_warns_of_rounds_already_over_and_close_says_when_by_which_clock(cli, tmp_path, state_root):
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    for name in ("tiny", "tiny2"):
        cli("dataset", "add", _split_tiny(tmp_path / name, name), user="org")
    spec = tmp_path / "contest.toml"
    spec.write_text(CONTEST.format(gpu_quota=1, policy="wait"))
    cli("contest", "clock", "2026-07-02T06:00:00", user="org")  # r1 ended six hours ago, r2 is to come
    out = cli("contest", "create", spec, user="org").stdout
    assert "rounds.r1 ended at 2026-07-02 00:00 UTC, before the contest clock's now (2026-07-02 06:00 UTC" in out
    assert "rounds.r2" not in out
    closed = cli("contest", "close", "rush/r1", user="org").stdout  # over: no --force needed
    assert "Cut short" not in closed
    assert "closed at 2026-07-02T06:00:00 UTC (simulated contest clock)" in closed
    assert ("tiny: no scored submissions; unscored: blue (no submission), green (no submission), red (no submission)"
            in closed)


def test_an_unscored_teams_reason_counts_only_what_its_board_counts(cli, tmp_path, contest):
    contest()
    sub = cli.json("submit", _session(cli, tmp_path, "carol", 50), "0", user="carol")
    cli("hide", str(sub["id"]), user="org")  # moderated: off the board, and not to be told of there
    rows = {r["team"]: r for r in cli.json("contest", "board", "tiny", user="alice")["rows"]}
    assert (rows["blue"]["public_rank"], rows["blue"]["reason"], rows["blue"]["submits"]) == (None, "no submission", 0)


def test_split_is_fixed_by_seed_disjoint_and_complete():
    pub, priv = splits.halves(1000, 0.3, seed=7, task="garbage-docs")
    assert len(pub) == 300 and len(priv) == 700
    assert not set(pub) & set(priv) and set(pub) | set(priv) == set(range(1000))
    again, _ = splits.halves(1000, 0.3, seed=7, task="garbage-docs")
    assert np.array_equal(pub, again)  # the same draw in every process
    assert not np.array_equal(pub, splits.halves(1000, 0.3, seed=8, task="garbage-docs")[0])
    assert not np.array_equal(pub, splits.halves(1000, 0.3, seed=7, task="bus-eta")[0])
    assert len(splits.halves(3, 0.01, 0, "t")[0]) == 1 and len(splits.halves(3, 0.99, 0, "t")[1]) == 1


def test_a_forced_close_ends_the_round_before_it_waits_for_its_queued_submits(cli, tmp_path, contest, monkeypatch):
    """While a forced close waits for the submits queued in time, the round is over: a submit then (which would
    be scored after the boards froze and move the live ones away from them) is refused."""
    from harness.contest import rounds
    from harness.core.errors import UserError
    from harness.core.settings import load_settings
    from harness.service import contests, submits
    from harness.state import Harness
    contest()
    red, blue = _session(cli, tmp_path, "alice", 50), _session(cli, tmp_path, "carol", 20)
    queued, _run = submits.start_submit(Harness(load_settings(user="alice")), red, "0")
    refused, real_wait = [], rounds.wait_run

    def wait_and_try(h, run_id):
        try:
            submits.start_submit(Harness(load_settings(user="carol")), blue, "0")
        except UserError as exc:
            refused.append(str(exc))
        return real_wait(h, run_id)
    monkeypatch.setattr(rounds, "wait_run", wait_and_try)
    closed = contests.close(Harness(load_settings(user="org")), "r1", force=True)
    assert refused and "ended at 2026-07-01T01:00:00" in refused[0], refused
    assert [r["team"] for r in closed["boards"]["tiny"] if r["public_rank"] is not None] == ["red"]
    assert cli.json("history", "tiny", user="alice")[0]["id"] == queued


def test_a_session_of_several_tasks_reads_tasks_of_one_round(cli, tmp_path, contest):
    """`-d free,tiny` would read a round task's data under no team's GPU quota; `-d tiny,tiny2` spans two rounds."""
    contest(gpu_quota=2, policy="refuse")
    cli("dataset", "add", make_tiny_task(tmp_path / "free", name="free"), user="org")
    code = participant(tmp_path / "code", NSML_MAIN)
    for tasks, said in (("free,tiny", "'tiny' is in round rush/r1 and 'free' in no round"),
                        ("tiny,free", "'free' is in no round and 'tiny' in round rush/r1"),
                        ("tiny,tiny2", "unknown task 'tiny2'")):  # (each task passes its gate: r2 is not
        #                                                             open, its task not revealed: test_round_reveal)
        refused = cli("run", "-d", tasks, "-g", "1", code, user="alice", code=2).stderr
        assert said in refused, (tasks, refused)
    assert cli.json("ps", "-a", user="alice") == []


def test_a_round_without_split_seed_gets_a_secret_draw(cli, tmp_path, state_root):
    """The split is open source: a default seed (0) told anyone who reads the test inputs which items are public."""
    from sqlalchemy import select

    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Round
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    for name in ("tiny", "tiny2"):
        cli("dataset", "add", _split_tiny(tmp_path / name, name), user="org")
        spec = tmp_path / f"{name}.toml"
        spec.write_text(f'name = "c-{name}"\n[[rounds]]\nname = "r1"\ntasks = ["{name}"]\n'
                        'start = 2026-07-01T00:00:00\nend = 2099-07-02T00:00:00\n')
        cli("contest", "create", spec, user="org")
    with Harness(load_settings(root=state_root)).tx() as db:
        seeds = list(db.scalars(select(Round.split_seed)))
    assert len(seeds) == 2 and seeds[0] != seeds[1] and 0 not in seeds, seeds


def test_team_quota_on_simulated_time(cli, tmp_path, contest):
    contest()
    a = _session(cli, tmp_path, "alice", 50)
    b = _session(cli, tmp_path, "bob", 40)
    c = _session(cli, tmp_path, "alice", 45)
    first = cli.json("submit", a, "0", user="alice")
    assert first["team"] == "red" and first["round"] == "rush/r1" and "private_score" not in first
    r = cli("submit", b, "0", user="bob", code=2)  # bob's team already used this hour's submit
    assert "quota reached for tiny: 1 per 3600 s for team red; next submit allowed at 2026-07-01T02:00:00" \
        in r.stderr
    _clock(cli, "2026-07-01T01:59:59")
    cli("submit", b, "0", user="bob", code=2)
    _clock(cli, "2026-07-01T02:00:01")
    assert cli.json("submit", b, "0", user="bob")["status"] == "succeeded"
    _clock(cli, "2026-07-02T00:00:00")  # the round has ended: no more sessions or submits
    assert "ended at 2026-07-02T00:00:00" in cli("submit", c, "0", user="alice", code=2).stderr
    assert "ended at" in cli("run", "-d", "tiny", tmp_path / "code-alice-50-0", user="alice", code=2).stderr


def test_outsiders_and_unqualified_are_refused(cli, tmp_path, contest):
    contest()
    r = cli("run", "-d", "tiny", participant(tmp_path / "eve", NSML_MAIN), user="eve", code=2)
    assert "user 'eve' is in no team of contest rush" in r.stderr
    r = cli("run", "-d", "tiny2", tmp_path / "eve", user="alice", code=2)
    assert "unknown task 'tiny2'" in r.stderr and "known: " in r.stderr  # (r2 reveals it at its opening)


def test_team_gpu_quota_waits_without_blocking_others(cli, tmp_path, contest, state_root):
    contest(gpu_quota=2)
    assert "over team red's quota of 2" in cli("run", "-d", "tiny", "-g", "3",
                                               participant(tmp_path / "x", NSML_MAIN), user="alice", code=2).stderr
    big = cli("run", "-d", "tiny", "-g", "3", "-a", "--epochs 1", tmp_path / "x", user="dave").stdout.split()[1]
    cli("logs", "-f", big, user="dave")  # green has a quota of its own: 3
    # alice holds both of red's GPUs with a slow session; bob's (red) waits, carol's (blue) starts
    slow = tmp_path / "slow"
    participant(slow, NSML_MAIN)
    hold = cli("run", "-d", "tiny", "-g", "2", "-a", "--epochs 1 --sleep 600", slow,  # (until stopped below)
               user="alice").stdout.split()[1]
    import time
    time.sleep(1.5)
    waiting = cli("run", "-d", "tiny", "-g", "1", "-a", "--epochs 1", slow, user="bob").stdout.split()[1]
    other = cli("run", "-d", "tiny", "-g", "2", "-a", "--epochs 1", slow, user="carol").stdout.split()[1]
    cli("logs", "-f", other, user="carol")
    row = {r["name"]: r for r in cli.json("ps", "-a", user="bob")}[waiting]
    assert row["status"] == "queued"  # still over red's quota while alice's session runs
    assert row["message"] == "waiting for the team's GPU quota: 2 of 2 held, 1 asked"
    assert {r["name"]: r["status"] for r in cli.json("ps", "-a", user="alice")}[hold] == "running"
    cli("stop", hold, user="alice")
    cli("logs", "-f", waiting, user="bob")  # starts once alice's session ends
    rows = {r["name"]: r for r in cli.json("ps", "-a", user="bob")}
    assert rows[waiting]["status"] == "succeeded"


def test_gpu_policy_refuse(cli, tmp_path, contest):
    contest(gpu_quota=2, policy="refuse")
    slow = participant(tmp_path / "slow", NSML_MAIN)
    hold = cli("run", "-d", "tiny", "-g", "2", "-a", "--epochs 1 --sleep 8", slow, user="alice").stdout.split()[1]
    r = cli("run", "-d", "tiny", "-g", "1", slow, user="bob", code=2)
    assert "team red already holds 2 of its 2 GPU(s)" in r.stderr and "gpu_policy = refuse" in r.stderr
    cli("logs", "-f", hold, user="alice")
    cli("run", "-d", "tiny", "-g", "1", "-a", "--epochs 1", slow, user="bob")


def test_private_board_selection_close_and_qualifiers(cli, tmp_path, contest, state_root):
    contest()
    pub, priv = splits.halves(len(TEST_NUMBERS), 0.4, 11, "tiny")
    red = _session(cli, tmp_path, "alice", 50)   # perfect
    red2 = _session(cli, tmp_path, "alice", 35)  # worse
    blue = _session(cli, tmp_path, "carol", 20)
    unsent = _session(cli, tmp_path, "bob", 45)
    s_red = cli.json("submit", red, "0", user="alice")
    assert s_red["score"] == pytest.approx(_expected(50, pub))
    _clock(cli, "2026-07-01T03:00:00")
    s_red2 = cli.json("submit", red2, "0", user="alice")
    s_blue = cli.json("submit", blue, "0", user="carol")
    assert s_blue["score"] == pytest.approx(_expected(20, pub))

    board = cli.json("board", "tiny", user="carol")
    assert board["private_shown"] is False and all("private" not in r for r in board["rows"])
    assert "hidden until the round is closed" in cli("contest", "board", "tiny", "--private", user="carol",
                                                     code=2).stderr
    hist = cli.json("history", "tiny", user="alice")
    assert all("private_score" not in h for h in hist)
    org = cli.json("contest", "board", "tiny", "--private", user="org")
    assert org["private_shown"] and [r["team"] for r in org["rows"]][:2] in (["red", "blue"], ["blue", "red"])
    green = org["rows"][2]  # entered, never submitted: listed below the ranked teams, with why
    assert (green["team"], green["public_rank"], green["reason"]) == ("green", None, "no submission")

    # red selects its worse submission: the private board must use it, not the best public one
    # another team's submission and one that does not exist get the same answer (no oracle of ids)
    other = cli("submit", "select", str(s_blue["id"]), user="alice", code=2).stderr
    assert other == f"Error: ID: no submission {s_blue['id']} of yours or your team's\n", other
    assert cli("submit", "select", "999", user="alice", code=2).stderr == other.replace(str(s_blue["id"]), "999")
    cli("submit", "select", str(s_red2["id"]), user="alice")

    assert "organizer command" in cli("contest", "close", "rush/r1", user="alice", code=2).stderr
    early = cli("contest", "close", "r1", user="org", code=2).stderr  # open until tomorrow: needs --force
    assert "is not over: it is open for 21h more (until 2026-07-02 00:00 UTC)" in early and "--force" in early
    assert cli.json("contest", "ls")[0]["status"] == "open"  # nothing was closed
    closed = cli.json("contest", "close", "r1", "--force", user="org")
    assert closed["cut_short"].startswith("it is open for 21h more") and closed["closed_at"] == "2026-07-01T03:00:00"
    unscored = [r for r in closed["boards"]["tiny"] if r["public_rank"] is None]
    assert [(r["team"], r["reason"]) for r in unscored] == [("green", "no submission")]
    rows = {r["team"]: r for r in closed["boards"]["tiny"] if r["public_rank"] is not None}
    assert rows["red"]["private"] == pytest.approx(_expected(35, priv))  # the selected one
    assert rows["red"]["final_submission"] == s_red2["id"]
    assert rows["blue"]["private"] == pytest.approx(_expected(20, priv))
    top = max(rows.values(), key=lambda r: r["private"])["team"]
    assert set(closed["qualifiers"]) == {top} and closed["next_round"] == "rush/r2"
    for r in rows.values():
        assert r["shakeup"] == r["public_rank"] - r["private_rank"]

    after = cli.json("board", "tiny", user="carol")  # revealed to everyone now
    assert after["status"] == "closed" and after["private_shown"] and after["rows"][0]["team"] == top
    assert "private_score" in cli.json("history", "tiny", user="alice")[0]
    assert "is closed" in cli("submit", unsent, "0", user="bob", code=2).stderr
    assert "closed at" in cli("contest", "close", "rush/r1", user="org", code=2).stderr

    listing = {r["round"]: r for r in cli.json("contest", "ls")}
    assert listing["r1"]["status"] == "closed" and listing["r2"]["teams"] == 1
    teams = {r["team"]: r for r in cli.json("contest", "teams", "rush")}
    assert teams[top]["rounds"] == "r1, r2" and teams["red"]["members"] == "alice, bob"
    _clock(cli, "2026-07-03T01:00:00")
    loser = ({"red", "blue"} - {top}).pop()
    loser_user, winner_user = ("carol", "alice") if loser == "blue" else ("alice", "carol")
    r = cli("run", "-d", "tiny2", tmp_path / "code-alice-50-0", user=loser_user, code=2)
    assert f"team '{loser}' did not qualify" in r.stderr
    name = _session(cli, tmp_path, winner_user, 50, task="tiny2")
    assert cli.json("submit", name, "0", user=winner_user)["round"] == "rush/r2"


def test_rescore_after_an_evaluator_fix_and_provenance(cli, tmp_path, contest, state_root):
    contest()
    name = _session(cli, tmp_path, "alice", 30)
    sub = cli.json("submit", name, "0", user="alice")
    perfect = cli.json("submit", _session(cli, tmp_path, "carol", 50), "0", user="carol")
    assert perfect["score"] == 1.0 and sub["score"] < 1.0  # blue leads red on the public board
    from harness.state import Harness
    from harness.store.models import Submission
    h = Harness()
    with h.tx() as db:
        prov = db.get(Submission, sub["id"]).provenance
    assert prov["code"].startswith("sha256:") and prov["data"].startswith("sha256:")
    assert prov["runtime"] == "process" and prov["environment"].startswith("python 3")
    old_evaluator = prov["evaluator"]

    cli.json("contest", "board", "tiny", "--private", user="org")  # (once the private halves are scored: the
    #                                                                   submits were reported before them)
    # the organizer "fixes" the evaluator (here: it now reports the error rate); nothing changes until rescore
    evaluation = tmp_path / "tiny" / "evaluation.py"
    evaluation.write_text(evaluation.read_text().replace(
        "print(sum(p == l for p, l in zip(preds, labels)) / len(labels))",
        "print(1 - sum(p == l for p, l in zip(preds, labels)) / len(labels))"))
    if cli.url:  # on a server the pack is the server's copy: the fix is uploaded again (recorded)
        cli("dataset", "add", tmp_path / "tiny", "--replace", user="org")
    assert "organizer command" in cli("rescore", "tiny", user="alice", code=2).stderr
    dry = cli.json("rescore", "tiny", "--dry-run", user="org")
    mine = [r for r in dry["submissions"] if r["id"] == sub["id"]][0]
    assert mine["changed"] and mine["after"][1] == pytest.approx(1 - sub["score"]), dry
    moves = {(m["board"], m["who"]): (m["before"], m["after"]) for m in dry["rank_changes"]}
    assert moves == {("r1 public", "red"): (2, 1), ("r1 public", "blue"): (1, 2),
                     ("r1 private", "red"): (2, 1), ("r1 private", "blue"): (1, 2)}
    with h.tx() as db:
        assert db.get(Submission, sub["id"]).score == pytest.approx(sub["score"])  # dry run wrote nothing
    out = cli("rescore", "tiny", user="org").stdout
    assert "2 of 2 changed" in out and "rank changes" in out
    with h.tx() as db:
        s = db.get(Submission, sub["id"])
        assert s.score == pytest.approx(1 - sub["score"]) and s.provenance["evaluator"] != old_evaluator
    assert "nothing changed" in cli("rescore", "tiny", user="org").stdout


MINI = """
name = "mini"
[[rounds]]
name = "r1"
tasks = ["garbage-docs"]
start = 2026-07-01T00:00:00
end = 2026-07-01T03:00:00
gpu_quota = 2
qualify = { top = 2 }
[[rounds]]
name = "r2"
tasks = ["bus-eta"]
start = 2026-07-02T00:00:00
end = 2026-07-02T02:00:00
gpu_quota = 2
"""


def test_contest_simulate_runs_real_rounds_and_writes_a_report(cli, tmp_path, monkeypatch):
    spec = tmp_path / "mini.toml"
    spec.write_text(MINI)
    out = tmp_path / "sim"
    monkeypatch.chdir(tmp_path)  # a relative --out, as the demo gives it (its scheduler runs in another folder)
    r = cli("contest", "simulate", spec, "--teams", "4", "--seed", "3", "--scale", "0.2", "--out", "sim")
    assert "r1 closed: 2 qualified for mini/r2" in r.stdout and "r2 closed: final boards revealed" in r.stdout
    report = (out / "report.md").read_text()
    assert "### garbage-docs — final board" in report and "### bus-eta — final board" in report
    assert "**Qualified (2)** for mini/r2" in report
    for png in ("scores_r1_garbage-docs", "shakeup_r1_garbage-docs", "scores_r2_bus-eta", "shakeup_r2_bus-eta"):
        assert (out / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "<table>" in (out / "report.html").read_text()

    # the simulation's store holds real, scored submissions: the boards come from them, not from shortcuts
    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Round, Submission
    state = out / "state"  # its own SQLite store, whatever HARNESS_DB says
    h = Harness(load_settings(root=state, db=f"sqlite:///{state / 'leaderboard.db'}", user="organizer"))
    with h.tx() as db:
        subs = db.query(Submission).all()
        assert subs and all(s.team_id for s in subs)
        scored = [s for s in subs if s.status.value == "succeeded"]
        assert scored and all(s.private_score is not None and s.provenance.get("code") for s in scored)
        r1 = db.query(Round).filter_by(name="r1").one()
        assert r1.closed_at is not None and len(r1.results["qualifiers"]) == 2
    h.store.close()
    # the same command again replaces its own folder, but never someone else's
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    r = cli("contest", "simulate", spec, "--out", tmp_path / "other", code=2)
    assert "is not a contest simulation folder" in r.stderr and (tmp_path / "other" / "keep.txt").exists()


def test_qualifier_rules_top_k_with_ties_threshold_and_direction():
    from types import SimpleNamespace

    from harness.contest.rounds import qualifiers
    from harness.core.enums import Direction

    def row(team, rank, score):
        return {"team": team, "private_rank": rank, "private": score}
    boards = {"a": [row("t1", 1, 0.9), row("t2", 2, 0.8), row("t3", 2, 0.8), row("t4", 4, 0.5), row("t5", None, None)],
              "b": [row("t4", 1, 10.0), row("t6", 2, 30.0)]}
    directions = {"a": Direction.HIGHER, "b": Direction.LOWER}
    entered = ["t1", "t2", "t3", "t4", "t5", "t6", "t7"]
    top2 = qualifiers(SimpleNamespace(qualify={"top": 2}, name="r1"), boards, entered, directions)
    assert set(top2) == {"t1", "t2", "t3", "t4", "t6"}  # ties at K go on; any task counts
    assert top2["t4"] == "b: private rank 1 (top 2)"
    th = qualifiers(SimpleNamespace(qualify={"threshold": 0.8}, name="r1"), {"a": boards["a"]}, entered, directions)
    assert set(th) == {"t1", "t2", "t3"}  # at least as good as the threshold
    low = qualifiers(SimpleNamespace(qualify={"threshold": 20.0}, name="r1"), {"b": boards["b"]}, entered,
                     directions)
    assert set(low) == {"t4"}  # lower is better on b
    free = qualifiers(SimpleNamespace(qualify={}, name="r1"), boards, entered, directions)
    assert set(free) == set(entered)
    assert qualifiers(SimpleNamespace(qualify={}, name="r1"), boards, entered, directions, last=True) == {}
    with_baseline = {"a": [{**row("base", 1, 0.95), "baseline": True}, *boards["a"]]}  # ranked first, 0.95
    got = qualifiers(SimpleNamespace(qualify={"top": 1}, name="r1"), with_baseline, entered, directions)
    assert got == {"t1": "a: private rank 1 (top 1)"}  # a baseline never qualifies nor takes a place
    assert "base" not in qualifiers(SimpleNamespace(qualify={"threshold": 0.5}, name="r1"), with_baseline,
                                    entered, directions)


def test_close_lists_each_board_by_private_rank(capsys):
    from harness.cli.contest_cmds import _show_closed
    rows = [{"team": "team-a", "private_rank": 2, "private": 1.04, "shakeup": -1, "reason": None},  # public order
            {"team": "team-b", "private_rank": 1, "private": 1.03, "shakeup": 1, "reason": None},
            {"team": "team-c", "private_rank": None, "private": None, "shakeup": None, "reason": "no submission"}]
    _show_closed({"round": "c/r1", "closed_at": "2026-07-01T03:00:00", "clock_simulated": True,
                  "boards": {"price": rows}, "qualifiers": [], "next_round": None})
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("price: "))
    assert line.index("1. team-b") < line.index("2. team-a") and "unscored: team-c (no submission)" in line


def test_a_clock_set_back_before_the_opening_is_said_at_the_close(cli, contest):
    contest()  # created with the clock at 2026-07-01T01:00: r1 opened then
    _clock(cli, "2026-07-01T00:30:00")
    closed = cli("contest", "close", "rush/r1", "--force", user="org").stdout
    assert ("closed at 2026-07-01T01:00:00 UTC (the time it opened: the simulated contest clock says "
            "2026-07-01T00:30:00, earlier)") in closed


def test_after_the_close_its_teams_may_practise_and_nothing_reaches_a_board(cli, tmp_path, contest):
    contest(gpu_quota=1)
    _clock(cli, "2026-07-02T00:00:01")
    cli("contest", "close", "rush/r1", user="org")
    before = cli.json("contest", "board", "tiny", "--round", "rush/r1", user="org")
    name = _session(cli, tmp_path, "carol", 50)  # team blue's, after the close
    assert cli.json("submit", "-t", name, "0", user="carol")["status"] == "succeeded"
    refused = cli("submit", name, "0", user="carol", code=2).stderr
    assert "which is closed; a submit is no longer possible (its teams may still practise" in refused
    assert "in no team" in cli("run", "-d", "tiny", tmp_path / "code-carol-50-0", user="erin", code=2).stderr
    over = cli("run", "-d", "tiny", "-g", "2", tmp_path / "code-carol-50-0", user="carol", code=2).stderr
    assert "over team blue's quota of 1" in over  # the round's GPU quota still holds its teams
    assert cli.json("contest", "board", "tiny", "--round", "rush/r1", user="org") == before


def test_a_contest_of_a_built_in_task_not_prepared_names_prepare(cli, tmp_path, state_root):
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    (tmp_path / "c.toml").write_text('name = "c"\n[[rounds]]\nname = "r1"\ntasks = ["bus-eta"]\n'
                                     'start = 2026-07-01T00:00:00\nend = 2026-07-02T00:00:00\n')
    refused = cli("contest", "create", tmp_path / "c.toml", user="org", code=2).stderr
    assert "task 'bus-eta' is not prepared yet" in refused and "contest create --prepare" in refused, refused


def test_a_session_queued_before_its_task_joined_a_round_does_not_start_outside_the_rounds_rules(cli, tmp_path,
                                                                                                 state_root):
    """Queued while its task was in no round, a session had no team: started after `contest create` it would take
    GPUs under no team's quota (and before the round opens). It is stopped with a named reason as it would launch;
    a session already running goes on, and one of a task in no round still starts."""
    (state_root / "harness.toml").write_text('organizers = ["org"]\ngpus = 4\n')
    for name in ("tiny", "tiny2"):
        cli("dataset", "add", _split_tiny(tmp_path / name, name), user="org")
    cli("dataset", "add", make_tiny_task(tmp_path / "free", name="free"), user="org")
    code = participant(tmp_path / "code", NSML_MAIN)
    hold = cli("run", "-d", "tiny", "-g", "4", "-a", "--epochs 1 --sleep 600", code,  # (holds every GPU until it
               user="alice").stdout.split()[1]  # is stopped below, however loaded the machine)
    import time
    deadline = time.monotonic() + 60
    while cli.json("ps", user="alice")[0]["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.2)  # (started before the contest exists: it goes on as it was admitted)
    early = cli("run", "-d", "tiny", "-g", "1", "-a", "--epochs 1", code, user="bob").stdout.split()[1]
    free = cli("run", "-d", "free", "-g", "1", "-a", "--epochs 1", code, user="bob").stdout.split()[1]
    spec = tmp_path / "contest.toml"
    spec.write_text(CONTEST.format(gpu_quota=1, policy="wait"))
    cli("contest", "clock", "2026-07-01T01:00:00", user="org")
    cli("contest", "create", spec, user="org")
    rows = {r["name"]: r for r in cli.json("ps", "-a", user="bob")}
    assert rows[early]["status"] == rows[free]["status"] == "queued", rows  # (alice's session holds every GPU)
    assert {r["name"]: r["status"] for r in cli.json("ps", "-a", user="alice")}[hold] == "running"  # goes on
    cli("stop", hold, user="alice")
    for name, user in ((hold, "alice"), (early, "bob"), (free, "bob")):
        cli("logs", "-f", name, user=user, code=None)
    rows = {r["name"]: r for r in cli.json("ps", "-a", user="bob")}
    assert rows[early]["status"] == "stopped", rows
    assert rows[early]["message"] == ("not started: task tiny joined a contest round after this session queued, so "
                                      "the round's rules apply to it now; start it again")
    assert rows[free]["status"] == "succeeded"
    hold_row = {r["name"]: r for r in cli.json("ps", "-a", user="alice")}[hold]
    assert hold_row["status"] == "stopped" and hold_row["reason"] == "stopped", hold_row  # by alice, not the round
    again = cli("run", "-d", "tiny", "-g", "2", code, user="bob", code=2).stderr
    assert "over team red's quota of 1" in again  # started again, it passes the round's gate


def test_a_forced_close_interrupted_while_it_waits_is_finished_by_close_again(cli, tmp_path, state_root,
                                                                            monkeypatch):
    """`close --force` ends the round at once, then waits for its queued submits; stopped there (Ctrl-C), the round
    is ended, not closed. `close` again (no --force: it is over now) finishes it and still says what was cut."""
    from harness.contest import rounds
    from harness.core.settings import load_settings
    from harness.state import Harness
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny-task"), user="org")
    spec = tmp_path / "c.toml"
    spec.write_text('name = "cup"\n[teams]\nred = ["alice"]\n[[rounds]]\nname = "r1"\ntasks = ["tiny"]\n'
                    'start = 2026-01-01T00:00:00\nend = 2030-01-01T00:00:00\nsplit_seed = 0\n')
    cli("contest", "clock", "2026-07-01T03:00:00", user="org")
    cli("contest", "create", spec, user="org")

    def interrupted(_h, _run_id):
        raise KeyboardInterrupt
    monkeypatch.setattr(rounds, "_pending", lambda _db, _round: [10 ** 9])  # a submit still queued
    monkeypatch.setattr(rounds, "wait_run", interrupted)
    h = Harness(load_settings(user="org"))
    try:
        with pytest.raises(KeyboardInterrupt):
            rounds.close_round(h, "cup/r1", force=True)
    finally:
        h.store.close()
    monkeypatch.setattr(rounds, "_pending", lambda _db, _round: [])
    assert cli.json("contest", "ls")[0]["status"] == "ended"  # no submit starts, no board frozen yet
    closed = cli.json("contest", "close", "cup/r1", user="org")
    assert closed["cut_short"].startswith("it is open for") and "1 submit(s) queued" in closed["cut_short"]
    assert cli.json("contest", "ls")[0]["status"] == "closed"
