"""A run may chmod what it writes. A harness that runs as root reads and removes it anyway; one that runs as an
ordinary account (as a contest machine's should) cannot, and must not be fooled by it: a prediction or an events
file the run made unreadable is the run's doing (counted), never a crash of the harness's scoring that counts
against no quota; and folders it made unwritable still go when it ends (attacker review). Each check runs in a
process without the capabilities that let root ignore file permissions, so CI (root) sees what a plain account
sees."""
import os
import subprocess
import sys
import textwrap

import pytest

from harness.core.enums import FailureReason
from harness.scoring.grade import prediction_path, take_prediction


def _unprivileged(code: str) -> str:
    """CODE's output, run as this account without CAP_DAC_OVERRIDE and its kin (a root harness's)."""
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    if os.geteuid() == 0:
        argv = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _unreadable(run_dir, rel: str, text: str) -> None:
    """A file the run wrote at RUN_DIR/REL, then made unreadable (chmod 0)."""
    (run_dir / rel).parent.mkdir(parents=True)
    (run_dir / rel).write_text(text)
    os.chmod(run_dir / rel, 0)


def test_an_unreadable_prediction_is_the_runs_invalid_prediction(tmp_path):
    run_dir = tmp_path / "run"
    _unreadable(run_dir, "output/prediction", "0\n")
    out = _unprivileged(f"""
        from harness.core.settings import load_settings
        from harness.scoring.grade import take_prediction
        got = take_prediction(load_settings(), {str(run_dir)!r})
        print(got.reason.value, "|", got.message)
    """)
    reason, message = out.strip().split(" | ")
    assert reason == FailureReason.INVALID_PREDICTION.value and "cannot be read" in message, out
    assert FailureReason(reason).harness_fault is False  # counted, as every choice the run makes is
    os.chmod(run_dir / "output" / "prediction", 0o644)  # (the same file, readable: taken)
    from harness.core.settings import load_settings
    assert take_prediction(load_settings(), str(run_dir)) is None and prediction_path(str(run_dir)).is_file()


def test_an_unreadable_events_file_is_noted_and_the_pass_goes_on(tmp_path):
    run_dir = tmp_path / "run"
    _unreadable(run_dir, "nsml/events.jsonl", '{"type": "metric", "step": 1, "values": {"loss": 1}}\n')
    out = _unprivileged(f"""
        from harness.runs.events import collect
        got = collect({str(run_dir)!r}, 0, None)
        print(got.end, got.notes)
    """)
    assert out.startswith("0 ") and "cannot be read" in out, out


@pytest.mark.parametrize("mode", [0o500, 0o000, 0o100, 0o300])
@pytest.mark.parametrize("top", [False, True])
def test_folders_a_run_made_unwritable_go_when_it_ends(tmp_path, mode, top):
    run_dir = tmp_path / "run"
    folder = run_dir / "app" / "junk" / "deeper"
    folder.mkdir(parents=True)
    (folder / "blob").write_bytes(b"x" * (1 << 20))
    (run_dir / "app" / "junk" / "blob").write_bytes(b"x" * (1 << 20))
    os.symlink("/etc", run_dir / "app" / "junk" / "out")  # (never followed: /etc keeps its modes)
    before = os.stat("/etc").st_mode
    os.chmod(folder, mode)
    os.chmod(run_dir / "app" / "junk", mode)
    if top:  # (the folder removed itself: its /tmp, its output folder)
        os.chmod(run_dir / "app", mode)
    _unprivileged(f"""
        from harness.core.safefs import remove_tree
        remove_tree({str(run_dir / "app")!r})
    """)
    assert not (run_dir / "app").exists() and os.stat("/etc").st_mode == before
