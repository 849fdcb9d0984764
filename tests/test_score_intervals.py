"""Every scored submission carries its score's 95% bootstrap interval, computed once when it is graded and shown on
the boards (CLI, -j/API, CSV, web); a round's public interval is the public half's and the private one stays
hidden with the private score; a task whose metric is its own evaluator's shows none and says why."""
import json

import numpy as np
import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant

from harness.scoring.metric_library import Records, metric
from harness.scoring.uncertainty import interval
from harness.web.fragments import board_tree
from harness.web.nodes import to_html
from harness.web.pages import flat_row

TEST_NUMBERS = list(range(1, 100, 7))  # the tiny task's test set (label: number > 50)


def _tiny(tmp_path, cli, metric_name="accuracy"):
    task = make_tiny_task(tmp_path / "tiny")
    text = (task / "task.toml").read_text().replace('metric = "accuracy"', f'metric = "{metric_name}"')
    (task / "task.toml").write_text(text + '\n[split]\nlabel = "lines"\nprediction = "lines"\n')
    cli("dataset", "add", task, user=ORGANIZER)
    return task


def _submit(cli, tmp_path, user, threshold):
    folder = participant(tmp_path / f"code-{user}-{threshold}", NSML_MAIN)
    name = cli("run", "-d", "tiny", "-e", "main.py", "-a", f"--epochs 1 --threshold {threshold}", folder,
               user=user).stdout.split()[1]
    cli("logs", "-f", name, user=user)
    return cli.json("submit", name, "0", user=user)


def _cup(cli, tmp_path, teams, fraction=0.4):
    """A contest round on the tiny task, open on the contest clock: TEAMS maps a team to its one user."""
    members = "".join(f'{team} = ["{user}"]\n' for team, user in teams.items())
    (tmp_path / "cup.toml").write_text(
        f'name = "cup"\n[teams]\n{members}[[rounds]]\nname = "r1"\ntasks = ["tiny"]\n'
        f'start = 2026-07-01T00:00:00\nend = 2026-07-02T00:00:00\npublic_fraction = {fraction}\nsplit_seed = 3\n')
    cli("contest", "clock", "2026-07-01T01:00:00", user=ORGANIZER)
    cli("contest", "create", tmp_path / "cup.toml", user=ORGANIZER)


def test_a_scored_submission_has_its_interval_on_every_board_surface(cli, tmp_path):
    _tiny(tmp_path, cli)
    _submit(cli, tmp_path, "alice", 35)
    [row] = cli.json("board", "tiny")
    labels = [int(x > 50) for x in TEST_NUMBERS]
    preds = [int(x > 35) for x in TEST_NUMBERS]
    expected = interval(metric("accuracy"), Records(labels=np.array(labels),
                                                    predictions=np.array(preds)), 0.95, 1000, 0)
    assert row["interval"] == [expected.low, expected.high]  # the graded files' own bootstrap, seeded
    assert row["interval"][0] <= row["score"] <= row["interval"][1] and row["interval"][0] < row["interval"][1]
    out = cli("board", "tiny").stdout
    assert "95% interval" in out and f"{expected.low:.6g}–{expected.high:.6g}" in out
    flat = flat_row(row)
    assert (flat["interval_low"], flat["interval_high"]) == (expected.low, expected.high) and "interval" not in flat
    alice = {"user": "alice", "organizer": False}
    html = to_html(board_tree("tiny", "public", {"kind": "users", "rows": [row]}, alice))
    assert "95% interval" in html and f"{expected.low:.6g}–{expected.high:.6g}" in html


def test_an_opaque_metric_shows_no_interval_and_says_why(cli, tmp_path):
    _tiny(tmp_path, cli, metric_name="house-score")
    _submit(cli, tmp_path, "alice", 35)
    [row] = cli.json("board", "tiny")
    assert row["interval"] is None and "'house-score' is its own evaluator's" in row["interval_note"]
    r = cli("board", "tiny")
    assert "95% interval" not in r.stdout and "no interval: the task's metric 'house-score'" in r.stderr


def test_a_rounds_public_interval_is_the_public_halfs_and_the_private_one_waits_for_close(cli, tmp_path):
    _tiny(tmp_path, cli)
    _cup(cli, tmp_path, {"red": "alice", "blue": "bob"})
    _submit(cli, tmp_path, "alice", 35)
    _submit(cli, tmp_path, "bob", 60)
    board = cli.json("board", "tiny", user="alice")
    row = board["rows"][0]
    assert "private_interval" not in row and row["public_interval"][0] <= row["public"] <= row["public_interval"][1]
    assert "tie" in row and "private_tie" not in row and "private_beats_next" not in row  # hidden until close
    assert board["shakeup"] is None  # it reads the private half: not for participants before close
    assert "Private 95%" not in cli("contest", "board", "tiny", user="alice").stdout
    early = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)["shakeup"]
    assert set(early["hold"]) == {"red", "blue"} and all(0 <= p <= 1 for p in early["hold"].values())
    assert early["teams"] == 2 and 0 <= early["expected_moved"] <= 2 and 0 <= early["p_value"] <= 1
    cli("contest", "clock", "2026-07-02T01:00:00", user=ORGANIZER)
    cli("contest", "close", "cup/r1", user=ORGANIZER)
    board = cli.json("board", "tiny", user="alice")
    row = {r["team"]: r for r in board["rows"]}["red"]
    low, high = row["private_interval"]
    assert low <= row["private"] <= high and row["private_interval"] != row["public_interval"]
    assert board["shakeup"] == early  # the same numbers, now for everyone
    out = cli("contest", "board", "tiny", user="alice").stdout
    assert "Private 95%" in out and "Expected shake-up from noise alone" in out and "Observed:" in out
    assert json.dumps(board)  # plain values all the way


def test_a_hostile_prediction_never_breaks_grading_it_only_has_no_interval(tmp_path):
    from harness.scoring.score_interval import intervals
    task = make_tiny_task(tmp_path / "tiny")
    (task / "task.toml").write_text((task / "task.toml").read_text() + '\n[split]\nlabel = "json"\nprediction = "json"\n')
    (task / "test" / "test_label").write_text(json.dumps([0, 1]))
    for text in ("[" * 100000 + "]" * 100000, "1e999999", "\x00\xff garbage", '{"a": NaN}', "[" + "1," * 10 ** 5 + "1]"):
        prediction = tmp_path / "prediction"
        prediction.write_text(text, errors="surrogateescape")
        got = intervals(task, task / "test" / "test_label", prediction, 0.5)
        assert got.low is None and got.note.startswith("no interval"), text[:20]


def test_neighbours_the_test_set_cannot_tell_apart_are_marked_as_a_tie(cli, tmp_path, state_root):
    _tiny(tmp_path, cli)
    for user, threshold in (("alice", 50), ("bob", 45), ("carol", 5)):  # 15/15, 14/15, 8/15
        _submit(cli, tmp_path, user, threshold)
    rows = cli.json("board", "tiny")  # the CLI's quick path
    assert [r["user"] for r in rows] == ["alice", "bob", "carol"]
    assert [r["tie"] for r in rows] == ["1–2", "1–2", None]
    # alice beats bob on a resample unless their one differing example is never drawn (then half):
    # 1 - 0.5 * (14/15)**15 = 0.822 < 0.9; bob beats carol on 7 examples all his way: about 1
    assert abs(rows[0]["beats_next"] - (1 - 0.5 * (14 / 15) ** 15)) < 0.04 and rows[1]["beats_next"] > 0.99
    from harness.core.settings import load_settings
    from harness.service import boards
    from harness.state import Harness
    h = Harness(load_settings(user="alice"))
    try:
        assert boards.board(h, "tiny") == rows  # the library's path gives the same marks
    finally:
        h.store.close()
    out = cli("board", "tiny").stdout
    assert "Tied" in out and out.count("1–2") == 2
    html = to_html(board_tree("tiny", "public", {"kind": "users", "rows": rows}, {"user": "alice", "organizer": False}))
    assert html.count('<td class="tie">1–2</td>') == 2 and ">Tied<" in html


def test_the_private_tab_says_the_expected_shake_up_in_words():
    shakeup = {"hold": {"red": 0.56, "blue": 0.76}, "teams": 2, "moved": 1, "expected_moved": 0.68, "p_value": 0.54}
    board = {"kind": "round", "round": "cup/r1", "status": "closed", "private_shown": True, "view": "private",
             "shakeup": shakeup, "rows": [{"team": "red", "public_rank": 1, "public": 1.0, "private_rank": 1,
                                           "private": 0.5, "shakeup": 0, "submits": 1, "last_submit": None,
                                           "baseline": False}]}
    html = to_html(board_tree("tiny", "private", board, {"user": "alice", "organizer": False}))
    assert "0.68 of 2 teams change place" in html and "red 56%" in html and "within what noise explains" in html
    public = to_html(board_tree("tiny", "public", {**board, "view": "public"}, {"user": "alice", "organizer": False}))
    assert "shake-up from noise" not in public


def _lines_task(tmp_path, labels, metric_name="accuracy"):
    task = make_tiny_task(tmp_path / "t")
    text = (task / "task.toml").read_text().replace('metric = "accuracy"', f'metric = "{metric_name}"')
    (task / "task.toml").write_text(text + '\n[split]\nlabel = "lines"\nprediction = "lines"\n')
    (task / "test" / "test_label").write_text("\n".join(map(str, labels)) + "\n")
    return task


def test_the_public_interval_depends_on_the_public_half_alone(tmp_path):
    """A private score the library computes otherwise (say, an evaluator comparing text) drops only the private
    interval: whether participants see a public interval before close must say nothing of the private half."""
    from harness.scoring import score_interval
    labels = [i % 2 for i in range(40)]
    task = _lines_task(tmp_path, labels)
    prediction = tmp_path / "prediction"
    prediction.write_text("\n".join(str(v) for v in labels) + "\n")
    got = score_interval.intervals(task, task / "test" / "test_label", prediction, 1.0, 0.25, (0.5, 1, "tiny"))
    assert got.low is not None and got.note is None and got.private_low is None  # private mismatch: private only
    agreed = score_interval.intervals(task, task / "test" / "test_label", prediction, 1.0, 1.0, (0.5, 1, "tiny"))
    assert agreed.private_low is not None


def test_a_value_that_overflows_when_resampled_gives_no_interval_and_keeps_nothing(tmp_path):
    """A finite 1.2e154 in an RMSE prediction: its square is finite, every resample that draws it twice is not.
    The bounds (and the values ties and the Ladder read) would be inf or NaN: a JSON board answered 500 to everyone
    and PostgreSQL refused the round's close. Now: no interval, nothing kept; in the private half, only the
    private interval and the private half's kept values go (NaN: whether anything is kept never depends on it)."""
    import math

    from harness.scoring import score_interval
    from harness.scoring.splits import halves
    labels = [float(i % 7) for i in range(40)]
    task = _lines_task(tmp_path, labels, "rmse")
    (task / "task.toml").write_text((task / "task.toml").read_text().replace('"higher"', '"lower"'))
    prediction = tmp_path / "graded" / "prediction"
    prediction.parent.mkdir()

    def rmse(pred, idx):
        return math.sqrt(sum((pred[i] - labels[i]) ** 2 for i in idx) / len(idx))
    public, private = (list(h) for h in halves(40, 0.5, 1, "tiny"))
    for where, split in (("whole", None), ("public", (0.5, 1, "tiny")), ("private", (0.5, 1, "tiny"))):
        pred = list(labels)
        pred[{"whole": 0, "public": public[0], "private": private[0]}[where]] = 1.2e154
        prediction.write_text("\n".join(repr(v) for v in pred) + "\n")
        score = rmse(pred, public if split else range(40))
        got = score_interval.intervals(task, task / "test" / "test_label", prediction, score,
                                       rmse(pred, private) if split else None, split)
        staged = (prediction.parent / score_interval.STAGED).exists()
        if where == "private":
            assert got.low is not None and math.isfinite(got.high) and got.private_low is None, got
            with open(prediction.parent / score_interval.STAGED, "rb") as fh:
                kept = np.load(fh)
            assert np.isnan(kept[private]).all() and kept[public].tolist() == [0.0] * len(public)
        else:
            assert got.low is None and got.note == score_interval.OVERFLOW, (where, got)
        assert staged is (where == "private"), where
        (prediction.parent / score_interval.STAGED).unlink(missing_ok=True)
    bad = score_interval.Intervals(1.0, math.inf, 2.0, math.nan, None).finite()  # where they are stored, too
    assert (bad.low, bad.high, bad.note) == (None, None, score_interval.OVERFLOW)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_json_leaving_the_harness_holds_finite_numbers_only(kind, request, state_root):
    """The gate where a non-finite number would leave: the API's answers and the store's JSON columns (PostgreSQL's
    json type refuses NaN and Infinity: the round's close failed there)."""
    import math

    from sqlalchemy import select

    from harness.core.settings import load_settings
    from harness.server.deps import FiniteJSONResponse
    from harness.state import Harness
    from harness.store.models import Contest
    if kind == "postgresql":
        request.getfixturevalue("postgres")
    body = json.loads(FiniteJSONResponse({"rows": [{"interval": [0.1, math.inf]}, {"p": math.nan}]}).body)
    assert body == {"rows": [{"interval": [0.1, None]}, {"p": None}]}
    h = Harness(load_settings())
    with h.tx() as db:
        db.add(Contest(name="c", source="x", spec={"x": math.inf, "y": [math.nan, 1.5]}))
    with h.tx() as db:
        assert db.scalar(select(Contest.spec).where(Contest.name == "c")) == {"x": None, "y": [None, 1.5]}


def test_a_prediction_crafted_to_cost_memory_costs_a_capped_child_not_the_scheduler(tmp_path):
    import resource
    import time

    from harness.scoring import score_interval
    n = 3000  # a class per example: f1's confusion cells grow as classes squared
    task = _lines_task(tmp_path, [f"c{i}" for i in range(n)], metric_name="f1")
    prediction = tmp_path / "prediction"
    prediction.write_text("\n".join(f"p{i}" for i in range(n)) + "\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    got = score_interval.intervals(task, task / "test" / "test_label", prediction, 0.0)
    assert time.monotonic() - start < score_interval.WALL_SECONDS + 10
    assert got.low is None and got.note.startswith("no interval")  # capped: a note, never a crash
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: this process untouched


def test_kept_values_follow_the_committed_grade_and_one_missing_entry_leaves_the_other_pairs_marked(tmp_path):
    from harness.core.enums import Direction
    from harness.scoring import board_ties, score_interval
    from harness.scoring.grade import prediction_path
    dirs = []
    for i, p in enumerate((0.9, 0.89, 0.5, 0.49)):
        run_dir = tmp_path / f"run{i}"
        graded = prediction_path(str(run_dir)).parent
        graded.mkdir(parents=True)
        if i != 1:  # entry 1 has no kept values (its prediction had none)
            with open(graded / score_interval.STAGED, "wb") as fh:  # (np.save on a path would add .npy)
                np.save(fh, (np.arange(200) < p * 200).astype(np.float64))
            score_interval.keep_values(prediction_path(str(run_dir)), keep=True)
        dirs.append(str(run_dir))
    probs = board_ties.beats_next(dirs, Direction.HIGHER)
    assert probs[0] is None and probs[1] is None and probs[2] is not None  # the pair 2-3 is still compared
    kept = prediction_path(dirs[0]).parent / score_interval.PER_EXAMPLE
    before = kept.read_bytes()
    with open(prediction_path(dirs[0]).parent / score_interval.STAGED, "wb") as fh:
        np.save(fh, np.zeros(200))
    score_interval.keep_values(prediction_path(dirs[0]), keep=False)  # a dry-run rescore: nothing changes
    assert kept.read_bytes() == before and not (kept.parent / score_interval.STAGED).exists()


VALUES_EVAL = '''
labels = open(a.test_label_path).read().split()
right = [1.0 if p == l else 0.0 for p, l in zip(open(a.prediction).read().split(), labels)]
open("per_example.txt", "w").write("\\n".join(map(str, WRITE)))
print(repr(sum(right) / len(right)))
'''


def _opaque_with_values(tmp_path, cli, write="right", extra=""):
    """The tiny task with an evaluator of its own (metric 'house-score') that writes per_example.txt."""
    task = make_tiny_task(tmp_path / "tiny")
    text = (task / "task.toml").read_text().replace('metric = "accuracy"', 'metric = "house-score"')
    (task / "task.toml").write_text(text + '\n[split]\nlabel = "lines"\nprediction = "lines"\n' + extra)
    head = "import argparse\np = argparse.ArgumentParser()\np.add_argument('--prediction'); " \
           "p.add_argument('--test_label_path')\na = p.parse_args()\n"
    (task / "evaluation.py").write_text(head + VALUES_EVAL.replace("WRITE", write))
    cli("dataset", "add", task, user=ORGANIZER)
    return task


def test_an_opaque_evaluator_that_writes_per_example_values_gets_intervals_and_ties(cli, tmp_path):
    _opaque_with_values(tmp_path, cli)
    _submit(cli, tmp_path, "alice", 36)
    _submit(cli, tmp_path, "bob", 37)  # the same predictions on this test set: a tie
    rows = cli.json("board", "tiny")
    preds = [int(x > 36) for x in TEST_NUMBERS]
    values = np.array([float(p == int(x > 50)) for p, x in zip(preds, TEST_NUMBERS)])
    from harness.scoring.uncertainty import interval_of_values
    expected = interval_of_values(values, lambda m: m, 0.95, 1000, 0)
    assert rows[0]["interval"] == [expected.low, expected.high] and rows[0]["interval_note"] is None, [r["interval_note"] for r in rows]
    assert rows[0]["tie"] == rows[1]["tie"] == "1 (all)"


def test_per_example_values_that_do_not_make_the_score_give_no_interval_and_say_why(cli, tmp_path):
    _opaque_with_values(tmp_path, cli, write="[0.5] * len(right)")
    _submit(cli, tmp_path, "alice", 35)
    [row] = cli.json("board", "tiny")
    assert row["interval"] is None and "per-example values do not make its score (mean)" in row["interval_note"]


def test_values_with_a_declared_finish_and_garbage_values(cli, tmp_path):
    _opaque_with_values(tmp_path, cli, write="['nan'] * len(right)", extra='[evaluator]\nper_example = "median"\n')
    _submit(cli, tmp_path, "alice", 35)
    [row] = cli.json("board", "tiny")
    assert "per_example must be one of mean, sqrt-mean, got 'median'" in row["interval_note"]
    from harness.scoring.score_interval import compute_from_values
    prediction = tmp_path / "graded" / "prediction"
    prediction.parent.mkdir()
    (prediction.parent / "evaluator_per_example.txt").write_text("nan\n" + "1\n" * 14)
    got = compute_from_values(tmp_path / "tiny", tmp_path / "tiny" / "test" / "test_label", prediction, 0.5, None,
                              None, "mean")
    assert got.low is None and "not one finite number per line" in got.note
    (prediction.parent / "evaluator_per_example.txt").write_text("1\n9\n")
    got = compute_from_values(tmp_path / "tiny", tmp_path / "tiny" / "test" / "test_label", prediction, 5 ** 0.5,
                              None, None, "sqrt-mean")  # one value per prediction line, not per test example
    assert got.low is None and "are not one per test example" in got.note
    (prediction.parent / "evaluator_per_example.txt").write_text("1\n" * 7 + "9\n" * 8)  # squared errors
    got = compute_from_values(tmp_path / "tiny", tmp_path / "tiny" / "test" / "test_label", prediction,
                              (79 / 15) ** 0.5, None, None, "sqrt-mean")
    assert got.note is None and 1 <= got.low <= (79 / 15) ** 0.5 <= got.high <= 3


def test_an_opaque_evaluators_values_serve_a_rounds_public_and_private_halves(cli, tmp_path):
    _opaque_with_values(tmp_path, cli)
    _cup(cli, tmp_path, {"red": "alice"})
    _submit(cli, tmp_path, "alice", 35)
    board = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)
    [row] = board["rows"]
    assert row["public_interval"][0] <= row["public"] <= row["public_interval"][1]
    assert row["private_interval"][0] <= row["private"] <= row["private_interval"][1]


F1_EVAL = """
import argparse
p = argparse.ArgumentParser()
p.add_argument("--prediction"); p.add_argument("--test_label_path")
a = p.parse_args()
y, f = open(a.test_label_path).read().split(), open(a.prediction).read().split()
scores = []
for c in sorted(set(y) | set(f)):
    tp = sum(1 for t, g in zip(y, f) if t == c and g == c)
    fp, fn = sum(1 for t, g in zip(y, f) if t != c and g == c), sum(1 for t, g in zip(y, f) if t == c and g != c)
    scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
print(repr(sum(scores) / len(scores)))
"""


def test_whole_sample_metrics_get_tie_marks_from_common_draws(cli, tmp_path):
    """f1 needs the whole sample: each graded submission keeps its scores on resamples drawn from the seed and
    the number of examples alone, so two submissions' rows are paired; identical predictions tie."""
    task = make_tiny_task(tmp_path / "tiny")
    text = (task / "task.toml").read_text().replace('metric = "accuracy"', 'metric = "f1"')
    (task / "task.toml").write_text(text + '\n[split]\nlabel = "lines"\nprediction = "lines"\n')
    (task / "evaluation.py").write_text(F1_EVAL)
    cli("dataset", "add", task, user=ORGANIZER)
    for user, threshold in (("alice", 36), ("bob", 37), ("carol", 10)):
        _submit(cli, tmp_path, user, threshold)
    rows = {r["user"]: r for r in cli.json("board", "tiny")}
    assert rows["alice"]["interval"] and rows["alice"]["score"] == rows["bob"]["score"], rows["alice"]["interval_note"]
    assert rows["alice"]["tie"] == rows["bob"]["tie"] == "1 (all)" and rows["alice"]["beats_next"] is not None
    assert "Tied" in cli("board", "tiny").stdout
    from harness.core.settings import load_settings
    from harness.scoring import board_ties
    from harness.scoring.score_interval import DRAWS, DRAWS_VERSION
    from harness.state import Harness
    from harness.store.models import Submission
    h = Harness(load_settings(user=ORGANIZER))
    try:
        with h.tx() as db:
            kept = board_ties.kept_path(db.get(Submission, rows["alice"]["submission"]).run.run_dir, DRAWS)
    finally:
        h.store.close()
    kept.rename(kept.with_name(f"common_draws.v{DRAWS_VERSION - 1}.npy"))  # draws of another version: not paired
    rows = {r["user"]: r for r in cli.json("board", "tiny")}
    assert rows["alice"]["tie"] is None and rows["alice"]["beats_next"] is None, rows["alice"]


def test_a_whole_sample_metrics_round_has_its_expected_shake_up_from_common_draws(cli, tmp_path):
    task = make_tiny_task(tmp_path / "tiny")
    text = (task / "task.toml").read_text().replace('metric = "accuracy"', 'metric = "f1"')
    (task / "task.toml").write_text(text + '\n[split]\nlabel = "lines"\nprediction = "lines"\n')
    (task / "evaluation.py").write_text(F1_EVAL)
    cli("dataset", "add", task, user=ORGANIZER)
    _cup(cli, tmp_path, {"red": "alice", "blue": "bob", "green": "carol"}, fraction=0.5)
    for user, threshold in (("alice", 36), ("bob", 60), ("carol", 10)):
        _submit(cli, tmp_path, user, threshold)
    shake = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)["shakeup"]
    assert shake["pool"] == "halves" and shake["p_value"] is None and set(shake["hold"]) == {"red", "blue", "green"}
    assert all(0 <= p <= 1 for p in shake["hold"].values()) and 0 <= shake["expected_moved"] <= 3
    out = cli("contest", "board", "tiny", "--private", user=ORGANIZER).stdout
    assert "Expected shake-up, resampling each half" in out


def test_common_draws_pair_like_a_joint_resample():
    from harness.scoring.resampling import common_draw_scores
    from harness.scoring.uncertainty import beats_probability, share_better
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 3, 3000)
    def guess(p):
        return np.where(rng.random(3000) < p, labels, rng.integers(0, 3, 3000))
    f1 = metric("f1")
    a, b = Records(labels, guess(0.62)), Records(labels, guess(0.60))
    rows = [common_draw_scores(f1.sample(r), 1000, 0) for r in (a, b)]
    assert rows[0][0] != rows[1][0] and np.array_equal(rows[0], common_draw_scores(f1.sample(a), 1000, 0))
    ours = share_better(np.sign(rows[0] - rows[1]))
    joint = beats_probability(f1, a, b, 1000, 5)  # one joint resample of both (another draw of the same law)
    assert abs(ours - joint) < 0.05, (ours, joint)
    assert share_better(np.sign(rows[0] - common_draw_scores(f1.sample(a), 1000, 0))) == 0.5


def test_the_interval_child_finds_this_harness_wherever_it_is_installed(tmp_path, monkeypatch):
    """Its environment is small (no PYTHONPATH of the caller's), yet it must import the harness that started it
    — on a GPU machine that is a folder on PYTHONPATH, not site-packages; and a child that fails says so."""
    import subprocess
    from pathlib import Path

    import harness
    from harness.scoring import capped_child, score_interval
    seen = {}

    def fake_run(argv, **kw):
        seen.update(kw["env"])
        return subprocess.CompletedProcess(argv, 1, "", "ModuleNotFoundError: No module named 'numpy'\n")
    monkeypatch.setattr(capped_child.subprocess, "run", fake_run)
    task = make_tiny_task(tmp_path / "tiny")
    (task / "task.toml").write_text((task / "task.toml").read_text() + '\n[split]\nlabel = "lines"\n'
                                    'prediction = "lines"\n')
    (tmp_path / "pred").write_text("1\n")
    got = score_interval.intervals(task, task / "test" / "test_label", tmp_path / "pred", 0.5)
    assert Path(seen["PYTHONPATH"]) / "harness" == Path(harness.__file__).resolve().parent
    assert set(seen) == {"PATH", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONPATH"}
    assert got.note == "no interval: computing it failed (exit 1)"
    import signal
    for code, why in ((score_interval.OUT_OF_MEMORY, "took too much memory"), (-signal.SIGXCPU, "took too long"),
                      (-signal.SIGSEGV, f"failed (signal {int(signal.SIGSEGV)})")):
        monkeypatch.setattr(capped_child.subprocess, "run",
                            lambda argv, code=code, **kw: subprocess.CompletedProcess(argv, code, "", ""))
        got = score_interval.intervals(task, task / "test" / "test_label", tmp_path / "pred", 0.5)
        assert got.note == f"no interval: computing it {why}", (code, got.note)
