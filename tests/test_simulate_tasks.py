"""`contest simulate` of the organizer's own task: a pack that is not built in, registered in the caller's state
root, with baselines from its task.toml ([simulate]) or the command line; behaviours; the task's submit limit;
a simulation whose honest submits mostly fail exits non-zero with the reasons counted."""
import textwrap

import numpy as np
import pytest
from helpers import NSML_MAIN, make_tiny_task, participant

from harness.core.errors import UserError
from harness.sim import baselines

CONTEST = """
name = "own"
[[rounds]]
name = "r1"
tasks = ["mine"]
start = 2026-07-01T00:00:00
end = 2026-07-01T03:00:00
submit = { quota = 2, period_seconds = 3600 }
public_fraction = 0.4
split_seed = 5
"""

# a second baseline: always the majority class (a different, weaker score than a good threshold)
MAJORITY = NSML_MAIN.replace('return [int(int(x) > state["threshold"])', 'return [0 * int(x)')


def _pack(tmp_path, simulate_table: str = "") -> None:
    pack = make_tiny_task(tmp_path / "mine", name="mine")
    with open(pack / "task.toml", "a") as fh:
        fh.write('\n[split]\nlabel = "lines"\nprediction = "lines"\n[limits]\nsubmit_seconds = 120\n' + simulate_table)
    participant(pack / "baselines" / "threshold", NSML_MAIN)
    participant(pack / "baselines" / "majority", MAJORITY)


@pytest.fixture
def organizer(cli, state_root):
    (state_root / "harness.toml").write_text('organizers = ["org"]\n')
    return lambda *args, **kw: cli(*args, user="org", **kw)


def test_simulating_an_own_pack_with_baselines_from_its_task_toml(organizer, tmp_path):
    _pack(tmp_path, textwrap.dedent("""
        [simulate]
        baselines = [{folder = "baselines/threshold", args = "--epochs 1 --threshold {int:20:80}", weight = 3},
                     "baselines/majority"]
    """))
    organizer("dataset", "add", tmp_path / "mine")
    (tmp_path / "own.toml").write_text(CONTEST + 'public_board = "ladder"\n')
    r = organizer("contest", "simulate", "own.toml", "--teams", "5", "--seed", "4", "--out", "sim", "--workers", "1")
    assert "registering mine" in r.stdout and "r1 closed: final boards revealed" in r.stdout
    report = (tmp_path / "sim" / "report.md").read_text()
    board = report.split("### mine — final board")[1].split("####")[0]
    ranked = [line for line in board.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(ranked) >= 2, board  # a non-empty board: real scored submissions of several teams
    assert "#### Shake-up: mine in r1" in report and "ranked teams changed place" in report
    assert (tmp_path / "sim" / "plots" / "shakeup_r1_mine.png").read_bytes()[:4] == b"\x89PNG"
    assert "- Behaviours: team-01 " in report and "Submits of code without a planted fault" in report
    study = report.split("#### Public board: plain vs Ladder — mine in r1")[1].split("\n## ")[0]
    assert "This round's board is **ladder**" in study, study
    assert "| plain |" in study and "| ladder |" in study  # both rules replayed on the round's submissions
    attacks = [line for line in study.splitlines() if line.startswith("| boosting attack") or
               line.startswith("| hill-climber")]
    assert len(attacks) == 6 and all(" → " in line for line in attacks), study
    assert "**Recommended for this task**" in study and "public fraction **" in study

    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Run, Submission
    state = tmp_path / "sim" / "state"
    h = Harness(load_settings(root=state, db=f"sqlite:///{state / 'leaderboard.db'}", user="organizer"))
    with h.tx() as db:
        subs = db.query(Submission).all()
        assert subs and all(s.team_id for s in subs)
        scored = {round(s.score, 6) for s in subs if s.status.value == "succeeded"}
        assert len(scored) >= 2  # the drawn thresholds and the two baselines give different scores
        runs = {db.get(Run, s.run_id).time_limit for s in subs if s.status.value == "succeeded"}
        assert runs == {120.0}  # honest submits get the task's submit limit, not a hidden one
    h.store.close()


@pytest.mark.filterwarnings("error::UserWarning")  # the report's charts of empty boards warn nothing (matplotlib did)
def test_baselines_from_the_command_line_and_most_honest_submits_failing_exit_non_zero(organizer, tmp_path):
    _pack(tmp_path)
    broken = participant(tmp_path / "broken", NSML_MAIN.replace("def infer(path, **kwargs):",
                                                                "def infer(path, **kwargs):\n        1 / 0"))
    organizer("dataset", "add", tmp_path / "mine")
    (tmp_path / "own.toml").write_text(CONTEST.replace("03:00:00", "02:00:00"))
    missing = organizer("contest", "simulate", "own.toml", "--out", "sim0", code=2).stderr
    assert "task 'mine' has no baselines to simulate: give --baseline mine=FOLDER" in missing
    r = organizer("contest", "simulate", "own.toml", "--teams", "2", "--seed", "1", "--out", "sim",
                  "--baseline", f"mine={broken}", code=2)
    assert "honest submits failed (" in r.stderr and "the boards say little" in r.stderr, r.stderr
    assert (tmp_path / "sim" / "report.md").exists()  # the report is still written, to read why


def test_baseline_flags_and_simulate_tables_are_checked_with_one_line(tmp_path):
    for bad, said in [("mine", "expected TASK=FOLDER"), ("=x", "expected TASK=FOLDER"),
                      (f"mine={tmp_path}", "has no main.py")]:
        with pytest.raises(UserError, match=said):
            baselines.parse_cli([bad])
    participant(tmp_path / "b", NSML_MAIN)
    for entry, said in [({"folder": "../b"}, "must be a path inside"), ({"folder": "b", "args": "{int:5:1}"},
                                                                         "not a placeholder"),
                        ({"folder": "b", "weight": -1}, "weight: expected a number above 0"),
                        ({"folder": "b", "speed": 1}, "unknown key 'speed'"), (3, "expected a folder")]:
        with pytest.raises(UserError, match=said):
            baselines.from_manifest({"simulate": {"baselines": [entry]}}, tmp_path, "task.toml")
    rng = np.random.default_rng(0)
    drawn = baselines.draw_args("--k {int:3:9} --lr {float:0.1:0.2} --opt {choice:sgd|adam} --seed {seed}", rng)
    k, lr, opt = drawn.split()[1], float(drawn.split()[3]), drawn.split()[5]
    assert 3 <= int(k) < 9 and 0.1 <= lr < 0.2 and opt in ("sgd", "adam") and "{" not in drawn


def test_simulated_teams_ask_within_the_rounds_gpu_quota(organizer, tmp_path):
    _pack(tmp_path)
    organizer("dataset", "add", tmp_path / "mine")
    (tmp_path / "own.toml").write_text(CONTEST.replace("03:00:00", "02:00:00") + "gpu_quota = 1\n")
    organizer("contest", "simulate", "own.toml", "--teams", "3", "--seed", "1", "--out", "sim",
              "--baseline", f"mine={tmp_path / 'mine' / 'baselines' / 'threshold'}")
    report = (tmp_path / "sim" / "report.md").read_text()
    assert "Peak GPUs any team held at once: 1 (quota 1)" in report  # sessions ran, each within the quota
    assert "GPU(s) requested" not in report  # no session was refused for asking more than its quota


def test_a_bad_simulate_table_is_refused_when_the_pack_is_added(organizer, tmp_path):
    _pack(tmp_path, '[simulate]\nbaselines = [{folder = "baselines/threshold", args = "--seed {sed}"}]\n')
    refused = organizer("dataset", "add", tmp_path / "mine", code=2).stderr
    assert "simulate: task.toml: simulate.baselines[0].args: {sed} is not a placeholder" in refused, refused
    assert refused.count("\n") == 1
    checked = organizer("dataset", "check", tmp_path / "mine", "-j", code=None)
    assert "{sed} is not a placeholder" in checked.stdout
