"""Who may queue what, and in which order the queue is served: a refused `run` costs the service nothing (no
environment is built for it), one participant's full queue does not hold the others' runs back, and every run
has a memory limit."""
import pytest
from helpers import participant

from harness.core.errors import UserError
from harness.core.settings import load_settings
from harness.runs.create import RunOptions
from harness.runtime import environments
from harness.service.sessions import start_session
from harness.state import Harness

SLEEP = '''
import argparse, time
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
time.sleep(30)
'''


def test_a_refused_run_builds_no_environment(state_root, tiny_task, tmp_path, monkeypatch):
    """Over the queue limit (or outside a round's gate) `run` is refused before its requirements are installed:
    a participant cannot make the server build environments it will never run."""
    (state_root / "harness.toml").write_text("gpus = 1\n[limits]\nqueued_per_user = 1\n")
    folder = participant(tmp_path / "code", SLEEP)
    (folder / "requirements.txt").write_text("some-package-that-would-be-built==1.0\n")
    built = []
    monkeypatch.setattr(environments, "for_code", lambda *a, **k: built.append(a) or None)
    h = Harness(load_settings())
    start_session(h, "tiny", str(folder), opts=RunOptions(gpus=1))  # queued (the scheduler is not asked here)
    assert len(built) == 1
    with pytest.raises(UserError, match="queue limit reached: 1 of your runs are waiting"):
        start_session(h, "tiny", str(folder), opts=RunOptions(gpus=1))
    with pytest.raises(UserError, match="-c/--cpus: must be between"):
        start_session(h, "tiny", str(folder), opts=RunOptions(cpus=0))
    assert len(built) == 1
