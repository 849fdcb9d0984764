"""The other AI Rush 2022 tasks: bus-eta, landmark, face-age (round 1) and playlist (round 2). Each: deterministic build, prepare →
baseline run → submit → ranked, `submit -t`, a clear margin over a trivial answer, malformed predictions named."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ORGANIZER, REPO, run_session

from harness.scoring.evaluator import evaluate

TASKS = REPO / "tasks"
# task, baseline folder, its arguments for a quick run, scale, direction, minimal margin over the trivial answer
CASES = [
    ("bus-eta", "bus_eta_gbm", "--max_iter 100", 0.3, "lower", 0.4),
    ("bus-eta", "bus_eta_segment_mean", "", 0.3, "lower", 0.2),
    ("face-age", "face_age_cnn", "--epochs 6", 0.4, "higher", 0.15),
    ("landmark", "landmark_cnn", "--epochs 6", 0.4, "higher", 0.3),
    ("playlist", "playlist_item_knn", "", 0.2, "higher", 0.1),
    ("playlist", "playlist_autoencoder", "--epochs 20", 0.2, "higher", 0.05),
]


def trivial_prediction(task: str, dataset: Path, out: Path) -> Path:
    """The answer that needs no model: the training mean, the majority class, the most frequent landmark."""
    test = dataset / "test" / "test_data"
    if task == "bus-eta":
        mean = pd.read_csv(dataset / "train" / "train_data" / "trips.csv").travel_s.mean()
        ids = pd.read_csv(test / "trips.csv").id
        pd.DataFrame({"id": ids, "travel_s": mean}).to_csv(out, index=False)
    elif task == "face-age":
        majority = pd.read_csv(dataset / "train" / "train_label").age_class.mode()[0]
        names = sorted(p.name for p in (test / "images").iterdir())
        pd.DataFrame({"file_name": names, "age_class": majority}).to_csv(out, index=False)
    elif task == "playlist":  # popularity is the trivial answer here (and a baseline of its own)
        import json
        from collections import Counter
        train = json.loads((dataset / "train" / "train_data" / "train.json").read_text())
        popular = [s for s, _ in Counter(s for p in train for s in p["songs"]).most_common(200)]
        test = json.loads((test / "test.json").read_text())
        out.write_text(json.dumps([{"id": p["id"], "songs": [s for s in popular if s not in p["songs"]][:100]}
                                   for p in test]))
    else:
        top = pd.read_csv(dataset / "train" / "train_label").class_id.mode()[0]
        ids = sorted(p.stem for p in (test / "images").iterdir())
        pd.DataFrame({"image_id": ids, "class_id": top, "confidence": 1.0}).to_csv(out, index=False)
    return out


@pytest.mark.parametrize("task,baseline,args,scale,direction,margin", CASES)
def test_baseline_runs_submits_ranks_and_beats_trivial(cli, state_root, tmp_path, task, baseline, args, scale,
                                                       direction, margin):
    cli("dataset", "prepare", task, "--scale", scale, user=ORGANIZER)
    dataset = state_root / ".harness" / "datasets" / task
    name = run_session(cli, REPO / "submissions" / baseline, "-a", args, task=task)
    last = cli.json("model", "ls", name)[-1]["checkpoint"]
    dry = cli.json("submit", "-t", name, last)
    assert dry["status"] == "succeeded" and dry["dry_run"]
    result = cli.json("submit", name, last)
    assert result["status"] == "succeeded"
    board = cli.json("board", task)
    assert board[0]["session"] == name and board[0]["score"] == result["score"]
    trivial = evaluate(dataset / "evaluation.py", trivial_prediction(task, dataset, tmp_path / "trivial"),
                       dataset / "test" / "test_label", 60).score
    if direction == "lower":
        assert result["score"] < (1 - margin) * trivial, (result["score"], trivial)
    else:
        assert result["score"] > trivial + margin, (result["score"], trivial)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("task", ["bus-eta", "face-age", "landmark", "playlist"])
def test_build_is_deterministic_and_labels_stay_out_of_test_data(tmp_path, task):
    for out, seed in (("a", 0), ("b", 0), ("c", 1)):
        subprocess.run([sys.executable, str(TASKS / task / "build.py"), "--out", str(tmp_path / out), "--scale",
                        "0.05", "--seed", str(seed)], check=True, capture_output=True)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    test_files = [p for p in (tmp_path / "a" / "test" / "test_data").rglob("*") if p.is_file()]
    assert test_files and not any("label" in p.name for p in test_files)
    for csv in (p for p in test_files if p.suffix == ".csv"):
        assert not {"travel_s", "class_id", "age_class", "label"} & set(pd.read_csv(csv).columns)
    if task == "playlist":  # every hidden song is missing from the visible test playlist
        import json
        visible = {p["id"]: set(p["songs"]) for p in json.loads((tmp_path / "a/test/test_data/test.json").read_text())}
        hidden = json.loads((tmp_path / "a/test/test_label").read_text())
        assert all(h["songs"] and not set(h["songs"]) & visible[h["id"]] for h in hidden)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = {}
    for task in ("bus-eta", "face-age", "landmark", "playlist"):
        folder = tmp_path_factory.mktemp(task)
        subprocess.run([sys.executable, str(TASKS / task / "build.py"), "--out", str(folder), "--scale", "0.05"],
                       check=True, capture_output=True)
        out[task] = folder
    return out


MALFORMED = {
    "bus-eta": [("id,eta\n0,1\n", "expected columns id,travel_s"), ("id,travel_s\n0,-5\n", ">= 0"),
                ("id,travel_s\n0,1\n0,2\n", "duplicate id 0"), ("id,travel_s\n0,nan\n", "must be")],
    "face-age": [("file_name,age_class\n000000.png,7\n", "from 0 to 4"), ("a,b\n", "expected columns"),
                 ("file_name,age_class\n000000.png,1\n", "expected one row for each")],
    "landmark": [("image_id,class_id,confidence\nte000000,99,0.5\n", "from 0 to 39"),
                 ("image_id,class_id,confidence\nnope,1,0.5\n", "unknown image ids"),
                 ("image_id,class_id,confidence\nte000000,1,inf\n", "finite"),
                 ("image_id,class_id,confidence\nte000000,1,0.5\nte000000,2,0.4\n", "more than one prediction")],
    "playlist": [("{", "not JSON"), ("[1, 2]", "expected a JSON list"), ("[]", "expected one entry for each")],
}


@pytest.mark.parametrize("task", sorted(MALFORMED))
def test_malformed_predictions_are_named(built, tmp_path, task):
    dataset = built[task]
    for content, fragment in MALFORMED[task]:
        pred = tmp_path / "pred.csv"
        pred.write_text(content)
        result = evaluate(TASKS / task / "evaluation.py", pred, dataset / "test" / "test_label", 60)
        assert result.reason is not None and result.reason.value == "invalid_prediction", (content, result)
        assert fragment in result.message, (fragment, result.message)


def _evaluation_module(task):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"evaluation_{task.replace('-', '_')}",
                                                  TASKS / task / "evaluation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gap_rewards_confident_right_answers_first(tmp_path):
    gap = _evaluation_module("landmark").gap
    labels = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "class_id": [1, 2, 3, -1]})
    perfect = pd.DataFrame({"image_id": ["a", "b", "c"], "class_id": [1, 2, 3], "confidence": [0.9, 0.8, 0.7]})
    assert gap(labels, perfect) == 1.0
    wrong_first = pd.DataFrame({"image_id": ["d", "a", "b", "c"], "class_id": [5, 1, 2, 3],
                                "confidence": [0.99, 0.9, 0.8, 0.7]})
    assert gap(labels, wrong_first) == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    wrong_last = wrong_first.assign(confidence=[0.1, 0.9, 0.8, 0.7])
    assert gap(labels, wrong_last) == 1.0  # a low-confidence guess on a photo of none costs nothing
    assert np.isclose(gap(labels, perfect.iloc[:1]), 1 / 3)  # unanswered images count as misses


def test_face_age_parameter_cap_check(cli, state_root, tmp_path):
    cli("dataset", "prepare", "face-age", "--scale", "0.05", user=ORGANIZER)
    name = run_session(cli, REPO / "submissions" / "face_age_cnn", "-a", "--epochs 1", task="face-age")
    cli("model", "pull", name, "0", tmp_path / "ckpt")
    check = [sys.executable, str(TASKS / "face-age" / "check_params.py"), str(tmp_path / "ckpt")]
    ok = subprocess.run(check, capture_output=True, text=True)
    assert ok.returncode == 0 and "within the cap of 12000000" in ok.stdout
    n = int(ok.stdout.split()[0])
    assert 10_000 < n < 12_000_000
    over = subprocess.run(check + ["--max", str(n - 1)], capture_output=True, text=True)
    assert over.returncode == 1 and "OVER" in over.stdout
    manifest = (state_root / ".harness" / "datasets" / "face-age" / "task.toml").read_text()
    assert "max_params = 12000000" in manifest


def test_playlist_evaluator_names_bad_song_lists_and_scores_ndcg(built, tmp_path):
    import json
    dataset = built["playlist"]
    hidden = json.loads((dataset / "test" / "test_label").read_text())
    n_songs = len(json.loads((dataset / "test" / "test_data" / "song_meta.json").read_text()))

    def answer(fix):
        rows = []
        for h in hidden:
            rest = [s for s in range(n_songs) if s not in h["songs"]]
            rows.append({"id": h["id"], "songs": fix(h["songs"], rest)})
        pred = tmp_path / "pred.json"
        pred.write_text(json.dumps(rows))
        return evaluate(TASKS / "playlist" / "evaluation.py", pred, dataset / "test" / "test_label", 60)
    perfect = answer(lambda h, rest: (h + rest)[:100])
    assert perfect.ok and perfect.score == pytest.approx(1.0)
    assert answer(lambda h, rest: rest[:100]).score == 0.0
    for fix, fragment in ((lambda h, rest: rest[:99], "expected 100 songs"),
                          (lambda h, rest: [rest[0]] * 100, "duplicate songs"),
                          (lambda h, rest: rest[:99] + [10 ** 9], "unknown song ids")):
        bad = answer(fix)
        assert bad.reason.value == "invalid_prediction" and fragment in bad.message


def test_playlist_popularity_runs_submits_ranks_below_the_others(cli, state_root):
    cli("dataset", "prepare", "playlist", "--scale", "0.2", user=ORGANIZER)
    scores = {}
    for baseline, args in (("playlist_popularity", ""), ("playlist_item_knn", "")):
        user = baseline.replace("_", "-")
        name = cli("run", "-d", "playlist", "-a", args, REPO / "submissions" / baseline, user=user).stdout.split()[1]
        cli("logs", "-f", name, user=user)
        scores[baseline] = cli.json("submit", name, "0", user=user)["score"]
    board = cli.json("board", "playlist")
    assert [r["user"] for r in board] == ["playlist-item-knn", "playlist-popularity"]
    assert scores["playlist_popularity"] > 0.0


def test_playlist_ndcg_matches_the_textbook_definition():
    evaluation = _evaluation_module("playlist")
    rng = np.random.default_rng(0)
    hidden = [set(rng.choice(500, size=int(rng.integers(1, 30)), replace=False).tolist()) for _ in range(50)]
    pred = np.array([rng.choice(500, size=100, replace=False) for _ in range(50)])
    disc = 1 / np.log2(np.arange(2, 102))
    ref = np.mean([sum(disc[i] for i, s in enumerate(row) if s in h) / disc[:min(len(h), 100)].sum()
                   for row, h in zip(pred, hidden)])
    assert evaluation.ndcg(pred, hidden) == pytest.approx(ref)
