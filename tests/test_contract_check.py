"""`nsml check`: static contract checks with file:line, then a smoke run (train to the first save, submit -t)."""
import json
from dataclasses import replace

import pytest
from helpers import NSML_MAIN, ORGANIZER, REPO, make_tiny_task, participant, run_session

BASELINES = sorted(p.name for p in (REPO / "submissions").iterdir() if (p / "main.py").exists())

# Each case: what the static checks find (a warning: reading code cannot tell whether a line runs), and the
# verdict, which is what run + submit -t do: the failing step, or None when the entry is scored anyway.
CASES = {
    "no bind": (NSML_MAIN.replace("    nsml.bind(save, load, infer)\n", "    pass\n"), "nsml.bind", "no nsml.bind",
                "training saves a checkpoint"),  # nsml.save has no save function to call
    "reads before paused": (NSML_MAIN.replace('''    state = {"threshold": cfg.threshold, "epochs_done": 0}''',
                                              '''    state = {"threshold": cfg.threshold, "epochs_done": 0}
    rows = open(os.path.join(DATASET_PATH, "train", "train_label")).read().split()'''),
                            "nsml.paused", "main.py:", "submit -t is scored"),
    "infer takes nothing": (NSML_MAIN.replace("    def infer(path, **kwargs):", "    def infer():"), "infer",
                            "takes no argument", "submit -t is scored"),
    # after the saves: the session ends in an error, its checkpoints are scored
    "another task's data path": (NSML_MAIN.replace('''    print("done training", state)''',
                                                   '''    print("done training", open("/data/other/train/train_label").read()[:5])'''),
                                 "data paths", "'/data/other/train/train_label' at main.py:", None),
    "never saves": (NSML_MAIN.replace("            nsml.save(epoch)\n", ""), None, None, "training saves a checkpoint"),
    "infer crashes": (NSML_MAIN.replace('''        return [int(int(x) > state["threshold"]) for x in open(path).read().split()]''',
                                        '''        raise RuntimeError("infer is broken")'''),
                      None, None, "submit -t is scored"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_static_findings_warn_and_the_smoke_run_decides(cli, tiny_task, tmp_path, case):
    source, step, fragment, failing = CASES[case]
    folder = participant(tmp_path / case.replace(" ", "-"), source)
    r = cli("check", folder, "-d", "tiny", "-j", "--time-limit", "60", code=1 if failing else 0)
    rows = {row["step"]: row for row in json.loads(r.stdout)}
    if step:
        assert rows[step]["level"] == "warn" and rows[step]["ok"] and fragment in rows[step]["evidence"], rows[step]
        assert rows[step]["fix"]
    assert "submit -t is scored" in rows or failing == "training saves a checkpoint"  # the smoke run ran
    bad = [name for name, row in rows.items() if row["level"] == "FAIL"]
    assert bad == ([failing] if failing else []), rows
    if failing:
        assert rows[failing]["fix"] and not rows[failing]["ok"]


def test_a_crash_at_import_shows_the_traceback_not_advice(cli, tiny_task, tmp_path):
    folder = participant(tmp_path / "missing-package", "import not_a_package_anywhere\n" + NSML_MAIN)
    r = cli("check", folder, "-d", "tiny", "-j", "--time-limit", "60", code=1)
    row = {row["step"]: row for row in json.loads(r.stdout)}["training saves a checkpoint"]
    assert "No module named 'not_a_package_anywhere'" in row["evidence"], row
    assert "exit_code" in row["evidence"] and "nsml logs" in row["fix"] and "early" not in row["fix"]


EVALUATION_MODULE = '''
def accuracy(pred, gold):
    return sum(a == b for a, b in zip(pred, gold)) / max(1, len(gold))

if __name__ == "__main__":
    print(accuracy(open("/data/tiny/test/test_label").read().split(), open("/data/other/x").read().split()))
'''


def test_paths_in_an_imported_modules_main_block_and_the_tasks_own_mount_are_not_failures(cli, tiny_task,
                                                                                           tmp_path):
    """Entries import the organizer's metric from evaluation.py; its __main__ block never runs on import. A
    path under /data/TASK is the task's own mount, there as on NSML."""
    folder = participant(tmp_path / "imports-metric", NSML_MAIN.replace(
        "import nsml\n", "import nsml\nfrom evaluation import accuracy\n").replace(
        '''    print("done training", state)''', '''    print("done training", open("/data/tiny/train/train_label").read()[:5])'''))
    (folder / "evaluation.py").write_text(EVALUATION_MODULE)
    rows = {r["step"]: r for r in json.loads(cli("check", folder, "-d", "tiny", "-j").stdout)}
    paths = rows["data paths"]
    assert paths["level"] == "pass" and "evaluation.py:6" in paths["evidence"] and "__main__" in paths["evidence"]
    assert "task's own mount (/data/tiny)" in paths["evidence"]
    assert rows["submit -t is scored"]["level"] == "pass"


def test_check_sessions_are_hidden_and_take_no_session_number(cli, tiny_task, nsml_folder):
    """Code loads `session=USER/TASK/14` by number: a check must not use up the participant's numbers."""
    rows = json.loads(cli("check", nsml_folder, "-d", "tiny", "-j").stdout)
    saved = next(r for r in rows if r["step"] == "training saves a checkpoint")["evidence"]
    assert saved.startswith("alice/tiny/check-1 saved"), saved
    assert cli.json("ps", "-a") == []
    assert run_session(cli, nsml_folder) == "alice/tiny/1"
    json.loads(cli("check", nsml_folder, "-d", "tiny", "-j").stdout)
    assert [s["name"] for s in cli.json("ps", "-a")] == ["alice/tiny/1"]
    assert run_session(cli, nsml_folder) == "alice/tiny/2"
    assert "train files:" in cli("logs", "alice/tiny/check-2").stdout  # addressable by its name


def test_a_bad_requirement_line_is_named(cli, tiny_task, nsml_folder):
    (nsml_folder / "requirements.txt").write_text("numpy\nx @ git+https://example.invalid/x\n")
    rows = {r["step"]: r for r in json.loads(cli("check", nsml_folder, "-d", "tiny", "-j", code=1).stdout)}
    assert not rows["requirements"]["ok"] and "requirements.txt:2" in rows["requirements"]["evidence"]


def test_a_good_entry_passes_every_step(cli, tiny_task, nsml_folder):
    r = cli("check", nsml_folder, "-d", "tiny")
    assert "FAIL" not in r.stdout and "warn" not in r.stdout and "submit -t is scored" in r.stdout


def test_the_smoke_runs_default_time_keeps_within_a_short_tasks_limit(cli, tmp_path, nsml_folder):
    pack = make_tiny_task(tmp_path / "packs" / "short", name="short")
    with open(pack / "task.toml", "a") as fh:
        fh.write("[limits]\nsession_seconds = 120\n")
    cli("dataset", "add", pack, user=ORGANIZER)
    assert "submit -t is scored" in cli("check", nsml_folder, "-d", "short").stdout  # 300 s would be over 120 s
    refused = cli("check", nsml_folder, "-d", "short", "--time-limit", "200", code=2).output
    assert "--time-limit: 200 s is over this task's limit of 120 s" in refused


@pytest.mark.parametrize("baseline", BASELINES)
def test_every_baseline_passes_the_static_checks(baseline):
    from harness.service.check import Level, static_checks
    steps = static_checks(REPO / "submissions" / baseline, "main.py", "garbage-docs")
    assert all(s.level is Level.PASS for s in steps), [s for s in steps if s.level is not Level.PASS]


@pytest.mark.parametrize("baseline,args", [("garbage_docs_majority", ""), ("garbage_docs_ngram", "")])
def test_baselines_pass_the_smoke_run(cli, baseline, args):
    cli("dataset", "prepare", "garbage-docs", "--scale", "0.05", user=ORGANIZER)
    r = cli("check", REPO / "submissions" / baseline, "-d", "garbage-docs", "-j", "-a", args)
    assert all(row["ok"] for row in json.loads(r.stdout))


def test_check_session_names_round_trip_in_one_grammar():
    from harness.core.errors import UserError
    from harness.core.names import is_check, parse_session_name, session_folder, session_name
    assert parse_session_name("alice/tiny/check-3") == ("alice", "tiny", -3)
    assert session_name("alice", "tiny", -3) == "alice/tiny/check-3" and session_folder(-3) == "check-3"
    assert parse_session_name("alice/tiny/14") == ("alice", "tiny", 14) and not is_check(14) and is_check(-1)
    for bad in ("alice/tiny/check-0", "alice/tiny/check-", "alice/tiny/-3", "alice/tiny/check-x"):
        with pytest.raises(UserError):
            parse_session_name(bad)


def test_a_check_session_is_for_dry_runs_only(cli, tiny_task, nsml_folder):
    json.loads(cli("check", nsml_folder, "-d", "tiny", "-j").stdout)
    ckpt = cli.json("model", "ls", "alice/tiny/check-1")[0]["checkpoint"]
    r = cli("submit", "alice/tiny/check-1", ckpt, code=2)
    assert "is a session of `nsml check`" in r.stderr and "nsml run" in r.stderr
    assert cli.json("board", "tiny") == []


READS = {  # entry source → the line of its first data read before nsml.paused() (None: none)
    "literal": ("import json, nsml\nrows = json.load(open('/data/t/train/train_data/a.json'))\nnsml.paused()\n", 2),
    "bound name": ("import os, nsml\nfrom nsml import DATASET_PATH\nTRAIN = os.path.join(DATASET_PATH, 'train')\n"
                   "x = 1\nfiles = os.listdir(TRAIN)\nnsml.paused()\n", 5),
    "module helper": ("import nsml\nfrom nsml import DATASET_PATH\ndef load():\n    return open(DATASET_PATH + '/a')\n"
                      "data = load()\nnsml.paused()\n", 5),
    "in main()": ("import nsml, pandas\nfrom nsml import DATASET_PATH\ndef main():\n    a = 1\n"
                  "    df = pandas.read_csv(f'{DATASET_PATH}/train/train_data')\n    nsml.paused(scope=locals())\n"
                  "main()\n", 5),
    "nested infer": ("import nsml\nfrom nsml import DATASET_PATH\ndef bind_model(m):\n    def infer(p):\n"
                     "        return open(DATASET_PATH).read()\n    nsml.bind(infer=infer)\nbind_model(1)\n"
                     "nsml.paused()\nopen(DATASET_PATH)\n", None),
    "attribute set, object passed": ("import os, argparse, nsml\nfrom nsml import DATASET_PATH\n"
                                     "args = argparse.ArgumentParser().parse_args()\n"
                                     "args.train_path = os.path.join(DATASET_PATH, 'train')\nmodel = build(args)\n"
                                     "model.to(args.device)\nnsml.paused()\n", None),  # (AI Rush 2022's template)
    "attribute read": ("import os, pandas, nsml\nfrom nsml import DATASET_PATH\nargs = object()\n"
                       "args.train_path = os.path.join(DATASET_PATH, 'train')\n"
                       "df = pandas.read_csv(args.train_path)\nnsml.paused()\n", 5),
    "paths only": ("import os, nsml\nfrom nsml import DATASET_PATH\nP = os.path.join(DATASET_PATH, 'x')\n"
                   "print(P)\nnsml.paused()\n", None),
}


@pytest.mark.parametrize("case", sorted(READS))
def test_a_data_read_before_paused_is_found_however_the_path_is_spelled(case):
    import ast

    from harness.service.check import _first_read
    source, line = READS[case]
    tree = ast.parse(source)
    paused = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "paused")
    found = _first_read(tree, paused)
    assert (found.lineno if found is not None else None) == line


def test_an_entry_nested_past_the_parser_is_one_line(cli, tiny_task, tmp_path):
    deep = participant(tmp_path / "deep", "from nsml import DATASET_PATH\nx = open(DATASET_PATH + "
                       + "+".join(["'a'"] * 50_000) + ")\n")
    r = cli("check", deep, "-d", "tiny", code=2)
    assert r.stderr == "Error: main.py: does not parse: nested too deeply to read\n", r.output
    (deep / "main.py").write_text("x = 1\0\n")
    assert "main.py: does not parse: source code string cannot contain null bytes" in \
        cli("check", deep, "-d", "tiny", code=2).stderr


def test_the_environment_row_describes_the_runtime_the_smoke_run_uses(tmp_path, monkeypatch):
    """Under docker a session's environment is an image built at launch: the task's own image is used as it is
    (imports choose no era there), and a torch pin the process runtime refuses is pip's to install; a line pip
    could never read fails either way. And `auto` checks where `run` would run: docker when an engine answers."""
    from harness.core.settings import load_settings
    from harness.runtime import docker_runtime
    from harness.service.check import Level, smoke_runtime, static_checks
    settings = load_settings()
    old = participant(tmp_path / "old", NSML_MAIN.replace("import nsml\n", "import nsml\nfrom transformers import "
                                                                           "AdamW  # noqa\n", 1))

    def row(folder, docker=None):
        return next(s for s in static_checks(folder, "main.py", "tiny", settings.root, docker)
                    if s.step == "requirements")
    assert "era transformers4" in row(old).evidence  # the process runtime: the era the import calls for
    assert "era transformers4" in row(old, (settings, None)).evidence  # docker's default image: the same era
    own = row(old, (settings, "org/task-image:1"))
    assert own.level == Level.PASS and "image org/task-image:1" in own.evidence and "era" not in own.evidence
    pinned = participant(tmp_path / "pinned", NSML_MAIN)
    (pinned / "requirements.txt").write_text("torch==1.4.0\n")
    assert row(pinned).level == Level.FAIL and "torch" in row(pinned).evidence
    assert row(pinned, (settings, None)).level == Level.PASS
    assert "requirements.txt installed into the image at launch" in row(pinned, (settings, None)).evidence
    (pinned / "requirements.txt").write_text("torch===1.4.0\n")
    assert row(pinned, (settings, None)).level == Level.FAIL and "requirements.txt" in row(pinned, (settings,
                                                                                                   None)).evidence
    monkeypatch.setattr(docker_runtime, "engine_answers", lambda: True)
    assert smoke_runtime(replace(settings, runtime="auto")) == "docker"
    monkeypatch.setattr(docker_runtime, "engine_answers", lambda: False)
    assert smoke_runtime(replace(settings, runtime="auto")) == "process"
