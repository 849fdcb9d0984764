"""The declared metric library (harness.scoring.metric_library, metric_records): each built-in task's metric
computed from its label and prediction files equals what the task's own evaluation.py prints for the same files;
the other metrics equal straightforward reference computations; every sample scores a reweighting exactly as
the records with each example repeated (what the bootstrap relies on)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.core.enums import Direction
from harness.core.errors import UserError
from harness.scoring.metric_library import Kind, Records, metric
from harness.scoring.metric_records import Fields, read_aligned, task_records
from harness.scoring.splits import SplitFormat

TASKS = Path(__file__).resolve().parent.parent / "tasks"


def evaluator(task, prediction, label):
    r = subprocess.run([sys.executable, str(TASKS / task / "evaluation.py"), "--prediction", str(prediction),
                        "--test_label_path", str(label)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return float(r.stdout.strip())


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def agree(task, tmp_path, label, prediction, expected_metric):
    m, records = task_records(TASKS / task, label, prediction)
    assert m.name == expected_metric
    ours, theirs = m.score(records), evaluator(task, prediction, label)
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)
    return ours


def test_garbage_docs_accuracy_equals_the_evaluator(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 83)
    preds = np.where(rng.random(83) < 0.7, labels, 1 - labels)
    write_csv(tmp_path / "test_label", ["label"], [[v] for v in labels])
    (tmp_path / "pred").write_text("".join(f"{v}\n" for v in preds))
    score = agree("garbage-docs", tmp_path, tmp_path / "test_label", tmp_path / "pred", "accuracy")
    assert score == pytest.approx((labels == preds).mean()) and 0.5 < score < 0.9


def test_face_age_accuracy_equals_the_evaluator_in_any_row_order(tmp_path):
    rng = np.random.default_rng(2)
    names = [f"img{i:03d}.jpg" for i in range(97)]
    labels = rng.integers(0, 5, 97)
    preds = np.where(rng.random(97) < 0.5, labels, rng.integers(0, 5, 97))
    write_csv(tmp_path / "test_label", ["file_name", "age_class"], zip(names, labels))
    order = rng.permutation(97)
    write_csv(tmp_path / "pred", ["file_name", "age_class"], [(names[i], preds[i]) for i in order])
    score = agree("face-age", tmp_path, tmp_path / "test_label", tmp_path / "pred", "accuracy")
    assert score == pytest.approx((labels == preds).mean())


def test_bus_eta_rmse_equals_the_evaluator(tmp_path):
    rng = np.random.default_rng(3)
    ids = rng.permutation(np.arange(10, 400))[:120]
    truth = rng.uniform(30, 900, 120).round(1)
    preds = np.abs(truth + rng.normal(0, 40, 120))
    write_csv(tmp_path / "test_label", ["id", "travel_s"], zip(ids, truth))
    write_csv(tmp_path / "pred", ["id", "travel_s"], [(ids[i], preds[i]) for i in rng.permutation(120)])
    score = agree("bus-eta", tmp_path, tmp_path / "test_label", tmp_path / "pred", "rmse")
    assert 25 < score < 60
    assert metric("rmse").direction is Direction.LOWER


def test_landmark_gap_equals_the_evaluator_with_ties_and_missing_predictions(tmp_path):
    rng = np.random.default_rng(4)
    n = 150
    ids = [f"te{i:06d}" for i in range(n)]
    classes = np.where(rng.random(n) < 0.2, -1, rng.integers(0, 40, n))  # photos of no landmark: -1
    write_csv(tmp_path / "test_label", ["image_id", "class_id"], zip(ids, classes))
    predicted = rng.permutation(n)[:120]  # some images get no prediction
    rows = []
    for i in predicted:
        c = classes[i] if classes[i] >= 0 and rng.random() < 0.6 else rng.integers(0, 40)
        rows.append((ids[i], c, rng.choice([0.25, 0.5, 0.75, 0.9])))  # many ties in confidence: file order decides
    write_csv(tmp_path / "pred", ["image_id", "class_id", "confidence"], rows)
    score = agree("landmark", tmp_path, tmp_path / "test_label", tmp_path / "pred", "gap")
    assert 0.1 < score < 0.9


def test_playlist_ndcg_equals_the_evaluator(tmp_path):
    rng = np.random.default_rng(5)
    songs = list(range(3, 700))
    (tmp_path / "test_data").mkdir()
    (tmp_path / "test_data" / "song_meta.json").write_text(json.dumps([{"id": s} for s in songs]))
    hidden, pred = [], []
    for pid in rng.permutation(60):
        true = [int(s) for s in rng.choice(songs, size=int(rng.integers(0, 30)), replace=False)]
        hidden.append({"id": int(pid), "songs": true})
        guess = list(dict.fromkeys(true[: len(true) // 2] + [int(s) for s in rng.choice(songs, 150)]))[:100]
        rng.shuffle(guess)
        pred.append({"id": int(pid), "songs": guess})
    (tmp_path / "test_label").write_text(json.dumps(hidden))
    (tmp_path / "pred").write_text(json.dumps(pred[::-1]))
    score = agree("playlist", tmp_path, tmp_path / "test_label", tmp_path / "pred", "ndcg@100")
    assert 0.05 < score < 0.9


# -- the other metrics against plain references -------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_balanced_accuracy_and_macro_f1_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 6, 300)
    preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 7, 300))  # class 6 only ever predicted
    records = Records(labels, preds)
    assert metric("balanced_accuracy").score(records) == pytest.approx(sk.balanced_accuracy_score(labels, preds))
    assert metric("f1").score(records) == pytest.approx(sk.f1_score(labels, preds, average="macro"))
    assert metric("f1").score(records) != pytest.approx(sk.f1_score(labels, preds, average="micro"))


def _ranked_records(rng, n=80, k_pred=12):
    labels = [rng.choice(50, size=int(rng.integers(0, 8)), replace=False) for _ in range(n)]
    preds = np.array([rng.choice(50, size=k_pred, replace=False) for _ in range(n)])
    holder = np.empty(n, dtype=object)
    holder[:] = labels
    return Records(holder, preds), labels, preds


def test_map_at_k_and_ndcg_at_k_match_loop_references():
    rng = np.random.default_rng(7)
    records, labels, preds = _ranked_records(rng)
    for k in (1, 5, 10):
        aps, ndcgs = [], []
        for truth, ranked in zip(labels, preds):
            truth = set(truth.tolist())
            hits, total, dcg = 0, 0.0, 0.0
            for i, item in enumerate(ranked[:k], 1):
                if item in truth:
                    hits += 1
                    total += hits / i
                    dcg += 1 / np.log2(i + 1)
            ideal = sum(1 / np.log2(i + 1) for i in range(1, min(len(truth), k) + 1))
            aps.append(total / min(len(truth), k) if truth else 0.0)
            ndcgs.append(dcg / ideal if truth else 0.0)
        assert metric(f"map@{k}").score(records) == pytest.approx(np.mean(aps))
        assert metric(f"ndcg@{k}").score(records) == pytest.approx(np.mean(ndcgs))
    assert metric("map@5").score(records) != pytest.approx(metric("map@10").score(records))


def test_a_repeated_item_counts_once_in_a_ranked_list():
    records = Records(np.array([np.array([1, 2])], dtype=object), np.array([[1, 1, 2]]))
    assert metric("map@3").score(records) == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_ranked_items_past_int64_are_read_as_text():
    """Review of stop 51: an item of 2**63 or more overflowed the integer path (no interval at all) instead of
    being read as text, as any other item that is not a small integer is."""
    from harness.scoring.metric_records import build_records
    big = str(2 ** 64)
    records = build_records(metric("map@2"), [[big, "3"], ["5"]], [[big, "9"], ["7", "5"]])
    assert metric("map@2").score(records) == pytest.approx(((1 / 1) / 2 + (1 / 2) / 1) / 2)


def test_mae():
    records = Records(np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0]))
    assert metric("mae").score(records) == pytest.approx(4 / 3)
    assert metric("rmse").score(records) == pytest.approx(np.sqrt(10 / 3))


# -- reweighting (what the bootstrap uses) ----------------------------------------------------------------------
def _all_kinds(rng, n=60):
    labels = rng.integers(0, 4, n)
    preds = np.where(rng.random(n) < 0.6, labels, rng.integers(0, 4, n))
    cls = Records(labels, preds)
    real = Records(rng.normal(size=n), rng.normal(size=n))
    gap_labels = np.where(rng.random(n) < 0.2, -1, labels)
    gap_preds = np.where(rng.random(n) < 0.15, -1, preds)
    conf = np.where(gap_preds >= 0, rng.choice([0.2, 0.4, 0.6], n), np.nan)
    gapr = Records(gap_labels, gap_preds, conf, rng.permutation(n))
    ranked, _, _ = _ranked_records(rng, n)
    return [("accuracy", cls), ("balanced_accuracy", cls), ("f1", cls), ("rmse", real), ("mae", real),
            ("gap", gapr), ("map@5", ranked), ("ndcg@10", ranked)]


@pytest.mark.parametrize("name", ["accuracy", "balanced_accuracy", "f1", "rmse", "mae", "gap", "map@5", "ndcg@10"])
def test_weights_score_like_repeated_examples(name):
    rng = np.random.default_rng(8)
    records = dict(_all_kinds(rng))[name]
    m = metric(name)
    sample = m.sample(records)
    w = rng.multinomial(len(records), np.full(len(records), 1 / len(records)), size=4).astype(float)
    repeated = [m.score(records.take(np.repeat(np.arange(len(records)), row.astype(int)))) for row in w]
    assert sample.on_weights(w) == pytest.approx(repeated, rel=1e-12, abs=1e-12)
    assert sample.score() == pytest.approx(m.score(records))
    assert len(set(np.round(repeated, 12))) > 1  # the weights change the score


# -- the registry ------------------------------------------------------------------------------------------------
def test_metrics_declare_direction_and_kind():
    kinds = {n: metric(n).kind for n in ("accuracy", "rmse", "mae", "map@3", "ndcg@100", "balanced_accuracy",
                                         "f1", "gap")}
    assert {n for n, k in kinds.items() if k is Kind.MEAN} == {"accuracy", "rmse", "mae", "map@3", "ndcg@100"}
    assert metric("f1").direction is Direction.HIGHER and metric("mae").direction is Direction.LOWER
    assert "macro" in metric("f1").description
    assert metric(" NDCG@100 ").k == 100


@pytest.mark.parametrize("name, hint", [("acuracy", "accuracy"), ("rsme", "rmse"), ("ndgc@10", "ndcg@k"),
                                        ("map", "map@10"), ("ndcg@0", "ndcg@10")])
def test_unknown_metric_names_say_what_was_meant(name, hint):
    with pytest.raises(UserError, match=hint):
        metric(name)


def test_records_that_cannot_line_up_are_user_errors(tmp_path):
    write_csv(tmp_path / "label", ["id", "y"], [(1, 2.0), (2, 3.0)])
    write_csv(tmp_path / "pred", ["id", "y"], [(1, 2.5)])
    fmt = SplitFormat("csv", "csv", "id")
    with pytest.raises(UserError, match="no prediction"):
        read_aligned(metric("rmse"), tmp_path / "label", tmp_path / "pred", fmt)
    write_csv(tmp_path / "pred", ["id", "y"], [(1, 2.5), (2, 3), (2.0, 3)])
    with pytest.raises(UserError, match="duplicate"):
        read_aligned(metric("rmse"), tmp_path / "label", tmp_path / "pred", fmt)
    write_csv(tmp_path / "pred", ["id", "guess", "y"], [(2, 9, 3.5), (1, 9, 2.5)])
    records = read_aligned(metric("rmse"), tmp_path / "label", tmp_path / "pred", fmt, Fields(prediction="y"))
    assert records.predictions.tolist() == [2.5, 3.5]


def test_a_pack_with_extra_fields_names_its_prediction_field_in_its_split_table(tmp_path):
    """A prediction file with a column before the prediction (here `model`): without a declared field the library
    would read that column; `prediction_field` in [split] names the right one, as do label and confidence."""
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "task.toml").write_text('name = "extra"\nmetric = "rmse"\ndirection = "lower"\n[split]\nlabel = "csv"\n'
                                    'prediction = "csv"\nkey = "id"\nlabel_field = "eta"\n'
                                    'prediction_field = "eta"\n')
    write_csv(tmp_path / "label", ["id", "route", "eta"], [(1, 7, 2.0), (2, 8, 3.0)])
    write_csv(tmp_path / "pred", ["id", "model", "eta"], [(2, 99, 3.5), (1, 99, 2.5)])
    m, records = task_records(pack, tmp_path / "label", tmp_path / "pred")
    assert records.labels.tolist() == [2.0, 3.0] and records.predictions.tolist() == [2.5, 3.5]
    assert m.score(records) == pytest.approx(0.5)
    (pack / "task.toml").write_text((pack / "task.toml").read_text().replace('prediction_field = "eta"',
                                                                           'prediction_field = "guess"'))
    with pytest.raises(UserError, match="predictions: no 'guess' field"):
        task_records(pack, tmp_path / "label", tmp_path / "pred")
