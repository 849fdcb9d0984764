"""Per-session Python environments in the process runtime: requirements.txt / install_requires → a venv per
requirements hash (uv), layered over the harness's environment, cached and reused."""
import pytest
from helpers import participant, run_session

MAIN = '''
import argparse, os
import numpy          # from the harness's environment, under the session's own
import six            # only in the session's environment
import nsml
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.add_argument("--pause", default=0)
a = p.parse_args()
print("six", six.__version__, "numpy", numpy.__version__)
'''


@pytest.fixture
def pinned(tmp_path):
    folder = participant(tmp_path / "pinned", MAIN)
    (folder / "requirements.txt").write_text("#nsml: some/image:1.0\nsix==1.16.0  # an older one\n")
    return folder


def test_requirements_get_their_own_environment_built_once(cli, tiny_task, pinned, tmp_path, state_root):
    r = cli("run", "-d", "tiny", pinned)
    assert "era harness: #nsml: some/image:1.0 is not an image this machine offers" in r.stderr  # said, with the reason
    name = r.stdout.split()[1]
    cli("logs", "-f", name)
    assert "six 1.16.0 numpy" in cli("logs", name).stdout
    envs = list((state_root / ".harness" / "envs").glob("*.ready"))
    assert len(envs) == 1
    again = participant(tmp_path / "again", MAIN)
    (again / "requirements.txt").write_text("six==1.16.0\n")  # the same requirements: the same environment
    run_session(cli, again)
    assert list((state_root / ".harness" / "envs").glob("*.ready")) == envs


def test_a_requirement_that_would_run_code_is_refused_at_run(cli, tiny_task, pinned, state_root):
    (pinned / "requirements.txt").write_text("six==1.16.0\nevil @ http://127.0.0.1:9/evil.tar.gz\n")
    r = cli("run", "-d", "tiny", pinned, code=2)
    assert "requirements.txt:2" in r.stderr and "Traceback" not in r.output
    assert not list((state_root / ".harness" / "sessions").rglob("code"))


def test_code_pinned_to_an_older_transformers_runs_unchanged(cli, tiny_task, tmp_path):
    """Issue 12's case: `from transformers import AdamW` (gone from newer releases) with the harness's torch."""
    folder = participant(tmp_path / "old-hf", '''
import argparse
import torch
from transformers import AdamW, __version__
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
print("transformers", __version__, "torch", torch.__version__, AdamW.__name__)
''')
    (folder / "requirements.txt").write_text("transformers==4.46.3\n")
    name = run_session(cli, folder)
    log = cli("logs", name).stdout
    assert "transformers 4.46.3 torch 2.13.0" in log and "AdamW" in log
