"""Every failure has a name: stop, timeout, exit code, memory, and each way a submit can fail."""
import os
import re
import time

import psutil
from helpers import ORGANIZER, participant, run_session

FAULTY = '''
import argparse, os, subprocess, sys, time
import nsml
from nsml import DATASET_PATH

p = argparse.ArgumentParser()
p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
p.add_argument("--iteration", default="0")
p.add_argument("--fault", default="none")
cfg = p.parse_args()

def infer(path, **kw):
    n = len(open(path).read().split())
    if cfg.fault == "short": return [0] * (n - 1)
    if cfg.fault == "nan": return ["nan"] * n
    if cfg.fault == "crash_scorer": return ["crash"] * n
    if cfg.fault == "infer_sleep": time.sleep(60)
    if cfg.fault == "infer_raise": raise ValueError("bad model")
    return [0] * n

nsml.bind(save=lambda d: open(os.path.join(d, "m"), "w").write("x"), load=lambda d: None, infer=infer)
if cfg.pause and cfg.fault != "no_output":
    nsml.paused(scope=locals())
if cfg.mode == "train":
    nsml.save(0)
    print("saved", flush=True)
    if cfg.fault == "sleep":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        open("child.pid", "w").write(str(child.pid))
        print("child", child.pid, flush=True)
        time.sleep(300)
    if cfg.fault == "exit":
        sys.exit(3)
    if cfg.fault == "memory":
        blocks = []
        for _ in range(100):
            blocks.append(bytearray(20 * 1024 * 1024))
            time.sleep(0.05)
'''


def _folder(tmp_path):
    return participant(tmp_path / "faulty", FAULTY)


def _session(cli, name):
    return [r for r in cli.json("ps", "-a") if r["name"] == name][0]


def _wait_for(predicate, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_stop_kills_the_process_group_and_keeps_logs(cli, tiny_task, tmp_path, state_root):
    (state_root / "harness.toml").write_text('[process]\nsandbox = "none"\n')  # its pids are the host's
    name = run_session(cli, _folder(tmp_path), "-a", "--fault sleep", wait=False)
    assert _wait_for(lambda: "child" in cli("logs", name).stdout)
    child_pid = int(cli("logs", name).stdout.split("child")[1].split()[0])
    assert psutil.pid_exists(child_pid)
    assert "is stopping" in cli("stop", name).stdout
    r = cli("logs", "-f", name, code=1)
    assert "saved" in r.stdout and "stopped" in r.stderr
    row = _session(cli, name)
    assert row["status"] == "stopped" and row["reason"] == "stopped"
    assert _wait_for(lambda: not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == "zombie")
    assert cli.json("model", "ls", name)[0]["checkpoint"] == "0"  # nothing lost


def test_time_limit_ends_runaway_code_with_timeout(cli, tiny_task, tmp_path):
    name = run_session(cli, _folder(tmp_path), "-a", "--fault sleep", "--time-limit", "2", code=1)
    row = _session(cli, name)
    assert row["status"] == "failed" and row["reason"] == "timeout"
    assert "saved" in cli("logs", name).stdout


def test_non_zero_exit_is_named(cli, tiny_task, tmp_path):
    name = run_session(cli, _folder(tmp_path), "-a", "--fault exit", code=1)
    row = _session(cli, name)
    assert row["reason"] == "exit_code" and row["exit_code"] == 3


def test_memory_limit_is_oom(cli, tiny_task, tmp_path):
    name = run_session(cli, _folder(tmp_path), "-a", "--fault memory", "--memory", "150M", code=1)
    row = _session(cli, name)
    assert row["reason"] == "oom", row


def _submit_fault(cli, tmp_path, fault, *flags):
    name = run_session(cli, _folder(tmp_path), "-a", f"--fault {fault}")
    return cli.json("submit", name, "0", *flags, code=1)


def test_submit_failures_are_named_and_never_ranked(cli, tiny_task, tmp_path, state_root):
    (tiny_task / "task.toml").write_text((tiny_task / "task.toml").read_text().replace("quota = 1", "quota = 0"))
    cases = {"no_output": "missing_output", "short": "invalid_prediction", "nan": "invalid_prediction",
             "crash_scorer": "scorer_error", "infer_raise": "exit_code"}
    for fault, reason in cases.items():
        result = _submit_fault(cli, tmp_path / fault, fault)
        assert (result["status"], result["reason"]) == ("failed", reason), (fault, result)
        assert result["score"] is None
        if reason == "exit_code":  # code that reads the test inputs chooses its exit code: not told of a real submit
            assert "does not say which" in result["message"] and "code 1" not in result["message"], result
            from harness.core.settings import load_settings
            from harness.service.submits import submission_info
            from harness.state import Harness
            seen = submission_info(Harness(load_settings(user=ORGANIZER)), result["id"])["message"]
            assert "exited with code 1" in seen, seen  # organizers read it
    result = _submit_fault(cli, tmp_path / "slow", "infer_sleep", "--time-limit", "2")
    assert result["reason"] == "timeout"
    assert cli.json("board", "tiny") == []
    r = cli("submit", "alice/tiny/1", "0", code=1)
    assert re.match(r"Error: submission \d+ failed: missing_output", r.stderr), r.stderr
    assert "To see the infer log, run it on test_submit: nsml submit -t alice/tiny/1 0" in r.stderr



def test_an_evaluator_crash_leaves_its_last_lines_in_the_submits_log_for_its_readers(cli, tiny_task, tmp_path):
    """The message is one line (where the evaluator failed, and its last); its traceback goes to the end of the
    submit's log: an organizer's to read for a real submit (it may quote labels), the participant's for a dry run."""
    real = _submit_fault(cli, tmp_path / "real", "crash_scorer")
    log = cli("logs", "--submission", str(real["id"]), user=ORGANIZER).stdout
    assert "[harness] evaluation.py failed at evaluation.py:" in log and "the evaluator's last lines:" in log, log
    assert "Traceback (most recent call last):" in log and "RuntimeError: evaluator bug" in log, log
    theirs = cli("logs", "--submission", str(real["id"]))
    assert "Traceback" not in theirs.output and "shown to organizers only" in theirs.stderr
    dry = cli.json("submit", "-t", real["session"], "0", code=1)
    assert dry["reason"] == "scorer_error"
    assert "RuntimeError: evaluator bug" in cli("logs", "--submission", str(dry["id"])).stdout


SPARSE_INFER = '''
import argparse, os
import nsml
p = argparse.ArgumentParser()
p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
p.add_argument("--iteration", default="0")
cfg = p.parse_args()

def infer(path, **kw):
    with open(os.path.join(os.environ["NSML_NFS_OUTPUT"], "x"), "wb") as fh:
        fh.truncate(LIMIT + (12345 << 16))  # sparse: no disk, counted at its size: a figure the run chose
    return [0] * len(open(path).read().split())

nsml.bind(save=lambda d: open(os.path.join(d, "m"), "w").write("x"), load=lambda d: None, infer=infer)
if cfg.pause:
    nsml.paused(scope=locals())
nsml.save(0)
'''


def test_a_real_submits_failure_carries_no_figure_the_run_chose(cli, tiny_task, tmp_path, state_root):
    """The infer reads the test inputs: a size it writes, a link count, an exit code could each carry them."""
    limit = 64 << 20
    (state_root / "harness.toml").write_text(f"[limits]\nscratch_bytes = {limit}\n")
    name = run_session(cli, participant(tmp_path / "sparse", SPARSE_INFER.replace("LIMIT", str(limit))))
    result = cli.json("submit", name, "0", code=1)
    assert result["reason"] == "disk_quota" and "does not say how much" in result["message"], result
    assert not re.search(r"\d{5,}", result["message"]), result
    dry = cli.json("submit", "-t", name, "0", code=1)  # test_submit is not secret: its figure is shown
    assert re.search(r"wrote \d+ bytes", dry["message"]), dry

    from harness.core.settings import load_settings
    from harness.scoring.grade import take_prediction
    from harness.service.permissions import submission_message
    settings = load_settings(user="alice")
    run = tmp_path / "run"
    (run / "output").mkdir(parents=True)
    with open(run / "output" / "prediction", "wb") as fh:
        fh.truncate(settings.prediction_bytes + 0xABCDE)
    why = _why(take_prediction(settings, str(run)))
    assert "over the" in why[1] and str(settings.prediction_bytes + 0xABCDE) not in why[1], why  # (dry runs read it)
    assert submission_message(settings, False, *why).endswith("(submit -t says what it found instead)")
    os.truncate(run / "output" / "prediction", 10)
    for i in range(7):
        os.link(run / "output" / "prediction", run / "output" / f"l{i}")
    why = _why(take_prediction(settings, str(run)))
    assert "more than one hard link" in why[1] and "8" not in why[1], why


def _why(grade):
    return grade.reason, grade.message
