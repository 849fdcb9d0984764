"""Scaffolds: `nsml dataset init NAME` writes a task pack that `dataset check` passes and `dataset add` registers;
`nsml init` writes an entry that `nsml check` passes against it (one real smoke run: train to the first save,
then `submit -t`); both refuse a folder that has anything in it; README.md shows what they write."""
import json
import re

from helpers import ORGANIZER, REPO

from harness.service import scaffold


def test_a_scaffolded_pack_passes_dataset_check_and_registers(cli, tmp_path):
    out = cli("dataset", "init", "mytask").stdout
    pack = tmp_path / "mytask"
    assert f"written at {pack}" in out and "dataset add mytask" in out
    for rel in ("task.toml", "README.md", "data_loader.py", "evaluation.py", "train/train_data/train.csv",
                "train/train_label", "test/test_data", "test/test_label", "test_submit/test_data",
                "test_submit/test_label"):
        assert (pack / rel).is_file(), rel
    rows = json.loads(cli("dataset", "check", "mytask", "-j", user=ORGANIZER).stdout)  # a folder here, relative
    assert [r["check"] for r in rows if not r["ok"]] == [], rows
    assert {r["check"]: r["detail"] for r in rows}["evaluator on test_submit"].endswith(": 1")  # ran, not skipped
    cli("dataset", "add", "mytask", user=ORGANIZER)
    [task] = [t for t in cli.json("dataset", "ls") if t["name"] == "mytask"]
    assert task["prepared"] and task["metric"] == "accuracy" and task["direction"] == "higher"


def test_a_scaffolded_entry_passes_nsml_check_against_a_scaffolded_pack(cli, tmp_path, monkeypatch):
    cli("dataset", "init", "mytask", tmp_path / "packs" / "mytask")
    cli("dataset", "add", tmp_path / "packs" / "mytask", user=ORGANIZER)
    (tmp_path / "entry").mkdir()  # an empty folder is fine; `nsml init` with no FOLDER writes here
    monkeypatch.chdir(tmp_path / "entry")
    assert "main.py, requirements.txt" in cli("init").stdout
    monkeypatch.chdir(tmp_path)
    rows = json.loads(cli("check", "entry", "-d", "mytask", "-j").stdout)
    assert all(r["level"] == "pass" for r in rows), rows  # no warning either, static or smoke run
    assert {r["step"] for r in rows} >= {"training saves a checkpoint", "submit -t is scored"}


def test_both_refuse_a_folder_with_anything_in_it_and_bad_names(cli, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    for argv, flag in ((["init", "taken"], "FOLDER"), (["dataset", "init", "taken"], "NAME"),
                       (["dataset", "init", "other", "taken"], "FOLDER")):
        result = cli(*argv, code=2)
        assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
        assert result.output.startswith(f"Error: {flag}: taken is not empty"), result.output
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]  # nothing written or removed
    (tmp_path / "afile").write_text("x")
    assert "afile exists and is not a folder" in cli("init", "afile", code=2).output
    result = cli("dataset", "init", "no good", code=2)
    assert result.output.startswith("Error: NAME: 'no good' is not a task name") and not (tmp_path / "no good").exists()


def test_the_scaffolds_are_deterministic_and_test_ids_are_disjoint():
    a, b = scaffold.pack_files("mytask"), scaffold.pack_files("mytask")
    assert a == b and scaffold.pack_files("other")["test/test_data"] != a["test/test_data"]
    ids = [{line.split(",")[0] for line in a[f].splitlines()[1:]}
           for f in ("train/train_label", "test/test_label", "test_submit/test_label")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def _code_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"```[a-z]*\n(.*?)```", text, flags=re.S)]


def test_readme_shows_what_the_scaffolds_write():
    """README.md's first entry and first task pack are the scaffolds' own files, so the page cannot drift."""
    blocks = _code_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert scaffold.ENTRY_MAIN in blocks, "README.md: the main.py block is not what `nsml init` writes"
    assert scaffold.pack_files("mytask")["task.toml"] in blocks, \
        "README.md: the task.toml block is not what `nsml dataset init mytask` writes"


def test_an_empty_folder_of_another_account_is_refused(tmp_path, monkeypatch):
    """An empty folder planted by another account (in a shared /tmp, say) is not written into."""
    import os

    import pytest

    from harness.core.errors import UserError
    planted = tmp_path / "planted"
    planted.mkdir()
    monkeypatch.setattr(scaffold.os, "getuid", lambda: os.stat(planted).st_uid + 1)  # as if it were another's
    with pytest.raises(UserError, match="belongs to another account"):
        scaffold.init_entry(planted)
    assert list(planted.iterdir()) == []
