"""Organizer packs as NSML published them: a plain pack without task.toml, and loaders of each era."""
import json
import sqlite3

import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant, run_session

OLD_LOADER = '''
import os
from nsml import DATASET_PATH

def test_data_loader(root_path):
    return open(os.path.join(root_path, "test", "test_data")).read().split()
'''


def test_a_plain_pack_gets_its_manifest_from_flags(cli, tmp_path, nsml_folder):
    pack = make_tiny_task(tmp_path / "plain", name="plain")
    (pack / "task.toml").unlink()
    r = cli("dataset", "add", pack, user=ORGANIZER, code=2)
    assert "no task.toml" in r.stderr and "--name" in r.stderr
    r = cli("dataset", "add", pack, "--name", "plain", "--metric", "accuracy", "--direction", "higher",
            user=ORGANIZER)
    assert 'name = "plain"' in (pack / "task.toml").read_text() and f"wrote {pack / 'task.toml'}" in r.stdout
    row = [t for t in cli.json("dataset", "ls") if t["name"] == "plain"][0]
    assert row["metric"] == "accuracy" and row["direction"] == "higher"
    r = cli("dataset", "add", pack, "--replace", "--name", "other", user=ORGANIZER, code=2)
    assert "--name: 'other'" in r.stderr and "task.toml says 'plain'" in r.stderr
    # the same flags again (the organizer's script run twice) agree with the file written the first time
    r = cli("dataset", "add", pack, "--replace", "--name", "plain", "--metric", "accuracy", user=ORGANIZER)
    assert "Task plain is registered" in r.stdout and "wrote" not in r.stdout
    name = run_session(cli, nsml_folder, task="plain")
    assert cli.json("submit", name, "1")["status"] == "succeeded"


# infer as entries of 2018-2019 wrote it: it gets what test_data_loader returned (here: the numbers), and
# returns (confidence, label) pairs or plain labels
PAIRS_INFER = "        return [(0.9, int(int(x) > state['threshold'])) for x in path]"
PLAIN_INFER = "        return [int(int(x) > state['threshold']) for x in path]"
NSML_INFER = '        return [int(int(x) > state["threshold"]) for x in open(path).read().split()]'


@pytest.mark.parametrize("infer", [PAIRS_INFER, PLAIN_INFER], ids=["conf-label-pairs", "plain-labels"])
def test_an_older_loader_gets_nsmls_default_feed(cli, tmp_path, infer):
    """A pack with only test_data_loader (AI Starthon 2019, hackathon 2018): NSML called
    infer(test_data_loader(DATASET_PATH)) and wrote one prediction per line, the label of a pair."""
    pack = make_tiny_task(tmp_path / "old", name="old")
    (pack / "data_loader.py").write_text(OLD_LOADER)
    r = cli("dataset", "add", pack, user=ORGANIZER)
    assert "NSML's default" in r.stdout and "test_data_loader" in r.stdout  # announced, once, at add
    check = {row["check"]: row for row in cli.json("dataset", "check", "old", user=ORGANIZER)}
    assert check["loader"]["ok"] and "NSML's default" in check["loader"]["detail"]
    assert NSML_INFER in NSML_MAIN
    entry = participant(tmp_path / "entry", NSML_MAIN.replace(NSML_INFER, infer))
    name = run_session(cli, entry, task="old")
    dry = cli.json("submit", "-t", name, "1")
    assert dry["score"] == 1.0, dry
    scored = cli.json("submit", name, "1")
    assert scored["status"] == "succeeded" and scored["score"] == 1.0, scored
    assert cli.json("board", "old")[0]["score"] == 1.0
    rows = json.loads(cli("check", entry, "-d", "old", "-j").stdout)  # nsml check agrees
    assert all(r["ok"] for r in rows) and rows[-1]["step"] == "submit -t is scored", rows


def test_a_loader_with_neither_convention_is_refused_at_add(cli, tmp_path):
    pack = make_tiny_task(tmp_path / "none", name="none")
    (pack / "data_loader.py").write_text("def load_everything(path):\n    return path\n")
    r = cli("dataset", "add", pack, user=ORGANIZER, code=2)
    assert "neither feed_infer(output_file, infer_func) nor test_data_loader(root)" in r.stderr
    assert "load_everything" in r.stderr and "Traceback" not in r.stderr
    assert all(t["name"] != "none" for t in cli.json("dataset", "ls"))


def test_an_older_loader_failing_before_infer_is_the_organizers(cli, tmp_path, nsml_folder):
    """The loader probe runs an older loader the way a submit does: a test_data_loader that cannot read its
    data is a loader_error, not counted."""
    pack = make_tiny_task(tmp_path / "old-broken", name="old-broken")
    (pack / "data_loader.py").write_text(OLD_LOADER.replace('"test_data"', '"test_data.csv"'))
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, nsml_folder, task="old-broken")
    result = cli.json("submit", name, "1", code=1)
    assert result["reason"] == "loader_error" and result["counted"] is False, result


def test_builtin_tasks_show_metric_and_direction_before_they_are_prepared(cli):
    rows = {t["name"]: t for t in cli.json("dataset", "ls", user=ORGANIZER)}  # (who prepares them)
    assert rows["bus-eta"]["prepared"] is False and rows["bus-eta"]["metric"] == "rmse"
    assert rows["bus-eta"]["direction"] == "lower" and rows["garbage-docs"]["direction"] == "higher"


BROKEN_LOADER = '''
import os
from nsml import DATASET_PATH

def feed_infer(output_file, infer_func):
    index = open(os.path.join(DATASET_PATH, "test", "test_index.csv")).read()  # the organizer forgot the file
    preds = infer_func(os.path.join(DATASET_PATH, "test", "test_data"))
    with open(output_file, "w") as fh:
        fh.write("\\n".join(str(p) for p in preds))
'''

LATE_BROKEN_LOADER = BROKEN_LOADER.replace(
    '    index = open(os.path.join(DATASET_PATH, "test", "test_index.csv")).read()  # the organizer forgot the file\n', '')\
    .replace('fh.write(', 'fh.write({"a": 1}["b"] + ')  # fails after infer returned: cannot be told from infer's doing


def test_a_loader_that_fails_before_infer_is_loader_error_not_counted_and_not_echoed(cli, tmp_path, nsml_folder,
                                                                                     state_root):
    """The harness's own probe of the loader (no participant code) fails too: the organizer's fault, never
    counted; the participant reads the harness's words, organizers the loader's traceback."""
    pack = make_tiny_task(tmp_path / "buggy", name="buggy")
    (pack / "data_loader.py").write_text(BROKEN_LOADER)
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, nsml_folder, task="buggy")
    for _ in range(2):  # quota 1 per hour: a loader error is never counted
        result = cli.json("submit", name, "1", code=1)
        assert result["reason"] == "loader_error" and result["counted"] is False, result
        assert "test_index.csv" not in result["message"] and "organizers see why" in result["message"]
    with sqlite3.connect(state_root / "leaderboard.db") as db:  # what organizers read: the loader's own words
        kept = db.execute("SELECT message FROM submissions WHERE id = ?", (result["id"],)).fetchone()[0]
    assert "test_index.csv" in kept and "before infer was called" in kept
    # an infer that raises inside the same loader is still the participant's failure
    broken = participant(tmp_path / "broken-infer", NSML_MAIN.replace(
        '        return [int(int(x) > state["threshold"]) for x in open(path).read().split()]',
        '        raise ValueError("my infer is broken")'))
    other = run_session(cli, broken, task="buggy")
    result = cli.json("submit", "-t", other, "1", code=1)
    assert result["reason"] == "loader_error"  # the probe fails before infer whatever infer does


def test_a_loader_claim_from_an_environment_of_its_own_is_never_believed(cli, tmp_path, nsml_folder):
    """The probe runs in the harness's own environment: a run in an environment the participant chose (here
    its own requirements) could fail the loader for reasons of that environment, so its claim is not believed,
    however the probe ends (the hostile review: `os._exit(86)` from a requirements venv was a free submit)."""
    pack = make_tiny_task(tmp_path / "buggy2", name="buggy2")
    (pack / "data_loader.py").write_text(BROKEN_LOADER)
    cli("dataset", "add", pack, user=ORGANIZER)
    (nsml_folder / "requirements.txt").write_text("six==1.16.0\n")
    name = run_session(cli, nsml_folder, task="buggy2")
    result = cli.json("submit", name, "1", code=1)
    assert result["reason"] == "exit_code" and result["counted"] is True, result
    assert "environment of its own" in result["message"] and "test_index" not in result["message"]


def test_probe_verdicts_are_kept_per_version_of_the_probe(monkeypatch, tmp_path):
    from harness.scoring import loader_probe
    loader, data = tmp_path / "data_loader.py", tmp_path / "test_data"
    loader.write_text("def test_data_loader(root):\n    return root\n")
    data.write_text("1\n")
    before = loader_probe._key(loader, data)
    monkeypatch.setattr(loader_probe, "_PROBE", loader_probe._PROBE + "\n# changed\n")
    assert loader_probe._key(loader, data) != before  # an older probe's verdict is never reused


def test_a_loader_failing_after_infer_returned_is_the_participants_failure(cli, tmp_path, nsml_folder):
    pack = make_tiny_task(tmp_path / "late", name="late")
    (pack / "data_loader.py").write_text(LATE_BROKEN_LOADER)
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, nsml_folder, task="late")
    result = cli.json("submit", name, "1", code=1)
    assert result["reason"] == "exit_code" and result["counted"] is True, result
    assert "KeyError" not in result["message"] and "reached infer" in result["message"]  # the harness's words only


STARTHON_2019_EVAL = '''
import argparse
p = argparse.ArgumentParser()
p.add_argument("--prediction", type=str)
args = p.parse_args()
labels = open("/data/starthon/test/test_label").read().split()   # the fixed path every 2019 evaluator used
preds = open(args.prediction).read().split()
print(sum(a == b for a, b in zip(preds, labels)) / len(labels))
'''

CUSTOM_EVAL = '''
import argparse
p = argparse.ArgumentParser()
p.add_argument("--pred"); p.add_argument("--gt")
args = p.parse_args()
labels, preds = open(args.gt).read().split(), open(args.pred).read().split()
print(sum(a == b for a, b in zip(preds, labels)) / len(labels))
'''



def test_a_2019_evaluator_reads_labels_from_the_fixed_path(cli, tmp_path, nsml_folder, runtime):
    pack = make_tiny_task(tmp_path / "starthon", name="starthon")
    (pack / "evaluation.py").write_text(STARTHON_2019_EVAL)
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, nsml_folder, task="starthon")
    assert cli.json("submit", "-t", name, "1")["score"] == 1.0  # test_submit's labels at the fixed path
    scored = cli.json("submit", name, "1")
    assert scored["status"] == "succeeded" and 0.5 < scored["score"] <= 1.0, scored
    assert cli.json("board", "starthon")[0]["score"] == scored["score"]


def test_evaluator_args_from_the_manifest(cli, tmp_path, nsml_folder):
    pack = make_tiny_task(tmp_path / "custom", name="custom")
    (pack / "evaluation.py").write_text(CUSTOM_EVAL)
    with open(pack / "task.toml", "a") as fh:
        fh.write('[evaluator]\nargs = ["--pred", "{prediction}", "--gt", "{label}"]\n')
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, nsml_folder, task="custom")
    assert cli.json("submit", "-t", name, "1")["score"] == 1.0
    (pack / "task.toml").write_text((pack / "task.toml").read_text().replace('"{label}"', '"{labels}"'))
    r = cli("dataset", "add", pack, "--replace", user=ORGANIZER, code=2)
    assert "evaluator.args" in r.stderr and "unknown placeholder" in r.stderr


def test_dataset_check_reports_each_step(cli, tmp_path, tiny_task):
    r = cli("dataset", "check", "tiny", code=2)  # it runs the pack's evaluator here: organizers only
    assert "organizer command" in r.stderr
    ok = cli.json("dataset", "check", "tiny", user=ORGANIZER)
    assert [r["check"] for r in ok] == ["layout", "loader", "manifest", "evaluator convention", "test_submit",
                                        "evaluator on test_submit"]
    assert all(r["ok"] for r in ok)
    broken = make_tiny_task(tmp_path / "old", name="old")
    (broken / "data_loader.py").write_text("def feed_infer(output_file):\n    pass\n")
    r = cli("dataset", "check", broken, "-j", code=1, user=ORGANIZER)
    assert "feed_infer must take (output_file, infer_func)" in r.stdout


NEEDS_SIX_EVAL = CUSTOM_EVAL.replace("import argparse", "import argparse\nimport six  # not in the harness's env")


def test_evaluator_requirements_are_installed_once_for_the_task(cli, tmp_path, nsml_folder, state_root):
    pack = make_tiny_task(tmp_path / "needs-six", name="needs-six")
    (pack / "evaluation.py").write_text(NEEDS_SIX_EVAL)
    with open(pack / "task.toml", "a") as fh:
        fh.write('[evaluator]\nargs = ["--pred", "{prediction}", "--gt", "{label}"]\nrequirements = ["six==1.16.0"]\n')
    cli("dataset", "add", pack, user=ORGANIZER)
    envs = list((state_root / ".harness" / "envs").glob("*.ready"))
    assert len(envs) == 1  # built at dataset add
    name = run_session(cli, nsml_folder, task="needs-six")
    assert cli.json("submit", "-t", name, "1")["score"] == 1.0
    assert list((state_root / ".harness" / "envs").glob("*.ready")) == envs
    (pack / "task.toml").write_text((pack / "task.toml").read_text().replace('"six==1.16.0"', '"six @ http://x/y"'))
    r = cli("dataset", "add", pack, "--replace", user=ORGANIZER, code=2)
    assert "evaluator.requirements:1" in r.stderr


@pytest.mark.docker
def test_a_2019_evaluator_in_a_container_where_bubblewrap_is_not_used(cli, tmp_path, nsml_folder, state_root,
                                                                      docker_ready):
    """On a machine with a Docker engine but no bubblewrap, the fixed-path evaluator runs in a container of the
    session image (forced here with evaluator_isolation = "docker")."""
    (state_root / "harness.toml").write_text('evaluator_isolation = "docker"\n')
    pack = make_tiny_task(tmp_path / "starthon", name="starthon")
    (pack / "evaluation.py").write_text(STARTHON_2019_EVAL)
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, nsml_folder, task="starthon")
    assert cli.json("submit", "-t", name, "1")["score"] == 1.0
    scored = cli.json("submit", name, "1")
    assert scored["status"] == "succeeded" and 0.5 < scored["score"] <= 1.0, scored


def test_dataset_add_refuses_a_pack_that_cannot_score(cli, tmp_path):
    no_dry = make_tiny_task(tmp_path / "nodry", name="nodry")
    import shutil
    shutil.rmtree(no_dry / "test_submit")
    r = cli("dataset", "add", no_dry, user=ORGANIZER, code=2)
    assert "test_submit" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    crashing = make_tiny_task(tmp_path / "crashing", name="crashing")
    (crashing / "evaluation.py").write_text("raise SystemExit('evaluator bug: no such column')\n")
    with open(crashing / "task.toml", "a") as fh:
        fh.write('[split]\nlabel = "lines"\nprediction = "lines"\n')
    r = cli("dataset", "add", crashing, user=ORGANIZER, code=2)
    assert "evaluator on test_submit" in r.stderr and "evaluator bug" in r.stderr
    assert all(t["name"] not in ("nodry", "crashing") for t in cli.json("dataset", "ls"))


@pytest.mark.docker
def test_a_2019_evaluator_with_requirements_scores_a_docker_run(cli, tmp_path, nsml_folder, monkeypatch,
                                                               docker_ready):
    """Its requirements live in a host environment: it is scored under bubblewrap even for a docker run."""
    monkeypatch.setenv("HARNESS_RUNTIME", "docker")
    pack = make_tiny_task(tmp_path / "starthon", name="starthon")
    (pack / "evaluation.py").write_text("import six\n" + STARTHON_2019_EVAL)
    with open(pack / "task.toml", "a") as fh:
        fh.write('[evaluator]\nrequirements = ["six==1.16.0"]\n')
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, nsml_folder, task="starthon")
    assert cli.json("submit", "-t", name, "1")["score"] == 1.0


def test_task_toml_keys_are_checked_with_the_closest_valid_one(cli, tmp_path):
    from helpers import ORGANIZER, make_tiny_task
    folder = make_tiny_task(tmp_path / "typo")
    manifest = folder / "task.toml"
    good = manifest.read_text()
    for extra, expected in (('metrik = "x"\n', "metrik: unknown key; did you mean 'metric'?"),
                            ('[submit]\nquta = 2\n', "[submit] quta: unknown key; did you mean 'quota'?"),
                            ('network = "yes"\n', "network: expected true or false, got 'yes'"),
                            ('[limits]\nquota = 2\n', "[limits] quota: this key belongs under [submit]")):
        text = extra + good if not extra.startswith("[") else good + "\n" + extra
        if extra.startswith("[submit]") and "[submit]" in good:
            text = good.replace("[submit]\n", "[submit]\nquta = 2\n")
        manifest.write_text(text)
        out = cli("dataset", "add", folder, user=ORGANIZER, code=2)
        assert expected in out.stderr and str(manifest) in out.stderr and out.stderr.count("\n") == 1, out.stderr
    manifest.write_text(good + '\n[rules]\nmax_params = 12000000\n')  # the organizers' own table is theirs
    cli("dataset", "add", folder, user=ORGANIZER)


def test_dataset_add_notes_come_back_over_http(remote_cli, tmp_path):
    """The same notes through a server (the pack arrives as a tar and is kept in the server's state root)."""
    pack = make_tiny_task(tmp_path / "old", name="old")
    (pack / "data_loader.py").write_text(OLD_LOADER)
    (pack / "task.toml").unlink()
    r = remote_cli("dataset", "add", pack, "--name", "old", "--metric", "accuracy", "--direction", "higher",
                   user=ORGANIZER)
    assert "Task old is registered" in r.stdout and "NSML's default" in r.stdout and "wrote" in r.stdout
    assert not (pack / "task.toml").exists()  # written in the server's copy, never in the organizer's folder


NPY_LOADER = '''
import os
import numpy as np
from nsml import DATASET_PATH

def feed_infer(output_file, infer_func):
    preds = infer_func(os.path.join(DATASET_PATH, "test", "test_data"))
    with open(output_file, "wb") as fh:
        np.save(fh, np.array(preds, dtype=np.int64))
'''

NPY_EVAL = '''
import argparse
import numpy as np
p = argparse.ArgumentParser()
p.add_argument("--prediction"); p.add_argument("--test_label_path")
a = p.parse_args()
labels = np.array([int(x) for x in open(a.test_label_path).read().split()])
preds = np.load(a.prediction)
print(float((preds == labels).mean()))
'''


def test_submit_t_describes_a_binary_prediction_instead_of_printing_it(cli, tmp_path, nsml_folder):
    """Loaders of AI Rush 2021 wrote predictions with np.save: `submit -t` describes such a file in one line."""
    pack = make_tiny_task(tmp_path / "npy", name="npy")
    (pack / "data_loader.py").write_text(NPY_LOADER)
    (pack / "evaluation.py").write_text(NPY_EVAL)
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, nsml_folder, task="npy")
    r = cli("submit", "-t", name, "1")
    assert "Score: 1.0" in r.stdout
    assert "numpy .npy array" in r.stderr and "shape (2,)" in r.stderr and "dtype <i8" in r.stderr, r.stderr
    assert "NUMPY" not in r.stderr and "\ufffd" not in r.stderr


def test_hostile_npy_headers_are_described_in_one_line(tmp_path):
    """The prediction file is written by participant code: a hostile .npy header (deep nesting, 10**400, NaN,
    markup, a lying length, truncation) is one plain line, never an exception or a hang."""
    from harness.service.submits import _head
    headers = ["(" * 500 + ")" * 500, "{'descr': '<i8', 'shape': (10**400,)}", "{'descr': nan, 'shape': ()}",
               "{'descr': '<script>alert(1)</script>', 'shape': (1,)}", "{'shape': [[[[]]]], 'descr': 1}", "{" * 900]
    for i, header in enumerate(headers):
        body = header.encode()
        for length in (len(body), 65535, 0):
            path = tmp_path / f"p{i}-{length}"
            path.write_bytes(b"\x93NUMPY\x01\x00" + length.to_bytes(2, "little") + body + b"\x00" * 64)
            got = _head(path, 10)
            assert len(got) == 1 and "\n" not in got[0] and got[0].startswith("(a "), got
    (tmp_path / "short").write_bytes(b"\x93NUMPY")
    assert _head(tmp_path / "short", 10)[0].startswith("(a binary file of 6 bytes")


SLOW_LOADER = BROKEN_LOADER.replace(
    '    index = open(os.path.join(DATASET_PATH, "test", "test_index.csv")).read()  # the organizer forgot the file\n',
    '    import time\n    time.sleep(12)  # (it reads and prepares the whole test set first)\n')
CLAIMS = NSML_MAIN.replace("    cfg = p.parse_args()\n", "    cfg = p.parse_args()\n    if cfg.mode == 'test':\n"
                           "        sys.exit(86)  # 'the task's loader failed' (nsml.LOADER_ERROR_EXIT)\n")


def test_a_loader_claim_is_judged_off_the_schedulers_loop(cli, tmp_path, state_root):
    """The probe of a loader that takes longer than the lease to reach infer renewed no heartbeat in the scheduler's
    pass: any command then ended the scheduler as hung, and every user's running run failed as lost (the hostile
    review of stop 48). It is judged in a worker thread: bob's run goes on, and alice's claim is still judged."""
    import subprocess
    import sys
    import time
    assert CLAIMS != NSML_MAIN
    (state_root / "harness.toml").write_text("[scheduler]\nlease_seconds = 4\n")
    pack = make_tiny_task(tmp_path / "slow", name="slow")
    (pack / "data_loader.py").write_text(SLOW_LOADER)
    cli("dataset", "add", pack, user=ORGANIZER)
    alice = run_session(cli, participant(tmp_path / "alice", CLAIMS), task="slow")
    bob = cli("run", "-d", "slow", "-e", "main.py", "-a", "--epochs 60 --sleep 1",
              participant(tmp_path / "bob", NSML_MAIN), user="bob").stdout.split()[1]
    submit = subprocess.Popen([sys.executable, "-m", "harness", "submit", "-j", alice, "1"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        while submit.poll() is None:  # each command checks the heartbeats (scheduler.lease.recover_if_orphaned)
            [row] = [r for r in cli.json("ps", "-a", user="bob") if r["name"] == bob]
            assert row["status"] in ("queued", "running"), row
            time.sleep(1)
        result = json.loads(submit.stdout.read())
    finally:
        submit.kill()
    assert result["reason"] == "exit_code" and "reached infer" in result["message"], result
    [row] = [r for r in cli.json("ps", "-a", user="bob") if r["name"] == bob]
    assert row["status"] == "running", row
    cli("stop", bob, user="bob")


def test_claims_judged_at_once_share_one_probe(monkeypatch, tmp_path):
    """Claims are judged in the scoring threads, so several can reach the probe at once: they wait for one probe's
    verdict (each ran its own, and their stores raced on one temporary file: the hostile review of stop 48)."""
    import subprocess
    import time
    from concurrent.futures import ThreadPoolExecutor

    from harness.scoring import loader_probe
    loader, data, cache = tmp_path / "data_loader.py", tmp_path / "test_data", tmp_path / "probes"
    loader.write_text("def test_data_loader(root):\n    return root\n")
    data.write_text("1\n")
    calls, real = [], subprocess.run

    def counted(*args, **kwargs):
        calls.append(1)
        time.sleep(0.3)
        return real(*args, **kwargs)
    monkeypatch.setattr(loader_probe.subprocess, "run", counted)
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda _: loader_probe.probe(loader, data, "t", cache), range(4)))
    assert len(calls) == 1 and len(set(verdicts)) == 1 and not verdicts[0].confirmed
    assert [p.suffix for p in cache.iterdir()] == [".json"]  # (no temporary file left)
