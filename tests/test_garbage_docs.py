"""The garbage-docs task: offline, deterministic, disjoint splits; its baselines run → submit → rank."""
import csv
import hashlib
from pathlib import Path

import pytest
from helpers import ORGANIZER, REPO, run_session

BUILD = REPO / "tasks" / "garbage-docs" / "build.py"


def _rows(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _digest(folder: Path):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import subprocess
    import sys
    out = tmp_path_factory.mktemp("gd") / "a"
    subprocess.run([sys.executable, str(BUILD), "--out", str(out)], check=True)
    return out


def test_layout_labels_and_balance(built):
    train = _rows(built / "train" / "train_data" / "train_data")
    valid = _rows(built / "train" / "train_data" / "valid_data")
    test = _rows(built / "test" / "test_data")
    labels = _rows(built / "test" / "test_label")
    assert (built / "train" / "train_label").exists() and (built / "test_submit" / "test_data").exists()
    assert set(train[0]) == {"contents", "label"} and set(test[0]) == {"contents"}  # no labels in test_data
    assert len(test) == len(labels) == 600
    assert sum(int(r["label"]) for r in labels) == 300  # balanced test
    assert sum(int(r["label"]) for r in train) / len(train) == pytest.approx(0.25, abs=0.01)  # 3 : 1
    assert len(valid) == 300
    assert max(len(r["contents"]) for r in train + test) <= 2000
    assert all(len(r["contents"].split()) >= 4 for r in train)


def test_train_and_test_come_from_disjoint_text(built):
    train = _rows(built / "train" / "train_data" / "train_data")
    test = _rows(built / "test" / "test_data")
    normal_train = {r["contents"] for r in train if r["label"] == "0"}
    test_words = [set(r["contents"].split(". ")) for r in test]
    train_sentences = {s for doc in normal_train for s in doc.split(". ") if len(s) > 40}
    shared = sum(1 for sents in test_words for s in sents if s in train_sentences)
    assert shared == 0


def test_nonsense_is_a_shuffle_of_real_words(built):
    train = _rows(built / "train" / "train_data" / "train_data")
    vocab = {w for r in train if r["label"] == "0" for w in r["contents"].split()}
    bad = [r["contents"] for r in train if r["label"] == "1"]
    known = sum(w in vocab for doc in bad for w in doc.split()) / sum(len(doc.split()) for doc in bad)
    assert known > 0.9  # same words, different order


def test_build_is_deterministic_and_seeded(built, tmp_path):
    import subprocess
    import sys
    subprocess.run([sys.executable, str(BUILD), "--out", str(tmp_path / "b")], check=True)
    subprocess.run([sys.executable, str(BUILD), "--out", str(tmp_path / "c"), "--seed", "1"], check=True)
    assert _digest(built) == _digest(tmp_path / "b")
    assert _digest(built) != _digest(tmp_path / "c")


def test_prepare_with_own_corpus_and_scale(cli, tmp_path, state_root):
    src = (REPO / "tasks" / "garbage-docs" / "build.py")  # any text works; use Korean prose from konlpy
    import importlib.util
    base = Path(list(importlib.util.find_spec("konlpy").submodule_search_locations)[0]) / "data" / "corpus"
    corpus = base / "kolaw" / "constitution.txt"
    assert src.exists()
    out = cli("dataset", "prepare", "garbage-docs", "--scale", "0.1", "--corpus", corpus, user=ORGANIZER).stdout
    assert "is prepared" in out
    ds = state_root / ".harness" / "datasets" / "garbage-docs"
    assert len(_rows(ds / "test" / "test_data")) == 60
    assert (ds / "data_loader.py").exists() and (ds / "evaluation.py").exists()
    empty = tmp_path / "empty.txt"
    empty.write_text("짧다.")
    r = cli("dataset", "prepare", "garbage-docs", "--corpus", empty, "--replace", code=2, user=ORGANIZER)
    assert "no usable text" in r.stderr


def test_evaluator_rejects_malformed_predictions(built, tmp_path):
    from harness.scoring.evaluator import evaluate
    evaluation = REPO / "tasks" / "garbage-docs" / "evaluation.py"
    label = built / "test" / "test_label"
    pred = tmp_path / "pred"
    pred.write_text("0\n" * 600)
    assert evaluate(evaluation, pred, label, 60).score == 0.5
    pred.write_text("0\n" * 599)
    r = evaluate(evaluation, pred, label, 60)
    assert r.reason.value == "invalid_prediction" and "expected 600 lines" in r.message
    pred.write_text("0\n" * 599 + "2\n")
    assert "line 600: expected 0 or 1" in evaluate(evaluation, pred, label, 60).message


@pytest.mark.parametrize("baseline,args", [("garbage_docs_majority", ""),
                                          ("garbage_docs_lstm", "--epochs 1 --hidden_dim 16 --max_words 50")])
def test_baselines_run_submit_rank(cli, baseline, args):
    from helpers import run_session
    cli("dataset", "prepare", "garbage-docs", "--scale", "0.2", user=ORGANIZER)
    name = run_session(cli, REPO / "submissions" / baseline, "-a", args, task="garbage-docs")
    assert cli.json("model", "ls", name)
    assert "valid/acc" in cli.json("ps", "-a")[0]["summary"]
    result = cli.json("submit", name, "0")
    assert result["status"] == "succeeded" and 0.0 <= result["score"] <= 1.0
    if baseline == "garbage_docs_majority":
        assert result["score"] == 0.5  # the balanced test set
    assert cli.json("board", "garbage-docs")[0]["session"] == name


def test_electra_then_electra_cnn_two_sessions(cli):
    """The seed's second and third tries: fine-tune ELECTRA in one session, then in another session load its
    checkpoint across sessions, freeze the encoder and train a CNN head — then submit and rank."""
    cli("dataset", "prepare", "garbage-docs", "--scale", "0.1", user=ORGANIZER)
    tiny = "--epochs 1 --hidden 32 --layers 1 --heads 2 --max_len 32 --vocab_size 500"
    electra = run_session(cli, REPO / "submissions" / "garbage_docs_electra", "-a", tiny, task="garbage-docs")
    assert [c["checkpoint"] for c in cli.json("model", "ls", electra)] == ["0"]
    cnn = run_session(cli, REPO / "submissions" / "garbage_docs_electra_cnn", "-a",
                      f"--epochs 1 --max_len 32 --load_session {electra} --load_checkpoint 0", task="garbage-docs")
    ckpt = cli.json("model", "ls", cnn)[0]
    assert "valid/balanced_acc" in ckpt["summary"]
    result = cli.json("submit", cnn, "0")
    assert result["status"] == "succeeded" and 0.0 <= result["score"] <= 1.0
    assert cli.json("board", "garbage-docs")[0]["session"] == cnn
    missing = run_session(cli, REPO / "submissions" / "garbage_docs_electra_cnn", "-a",
                          "--epochs 1 --load_session alice/garbage-docs/99 --load_checkpoint 0", task="garbage-docs",
                          code=1)
    assert "no checkpoint '0' of session alice/garbage-docs/99" in cli("logs", missing).stdout


def test_electra_pretrained_path_loads_a_local_model(cli, tmp_path):
    """The code path of users with weights (e.g. a koELECTRA copy): -a "--pretrained PATH", no hub access. The
    weights travel with the code (a sandboxed run sees no host path but its own)."""
    import shutil

    from transformers import BertTokenizerFast, ElectraConfig, ElectraForSequenceClassification
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"가나다라마바사아자차카타파하"]))
    code = tmp_path / "electra-code"
    shutil.copytree(REPO / "submissions" / "garbage_docs_electra", code)
    local = code / "my-electra"
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(local)
    cfg = ElectraConfig(vocab_size=19, embedding_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=40)
    ElectraForSequenceClassification(cfg).save_pretrained(local)
    cli("dataset", "prepare", "garbage-docs", "--scale", "0.05", user=ORGANIZER)
    name = run_session(cli, code, "-a", "--pretrained my-electra --epochs 1 --max_len 32", task="garbage-docs")
    assert cli.json("submit", "-t", name, "0")["status"] == "succeeded"
