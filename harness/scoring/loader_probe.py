"""Whose fault a submit's loader failure is — decided by the harness, never by the run.

A submit run that says "the task's data_loader.py failed" (the in-session module exits with LOADER_ERROR_EXIT)
is participant code talking: it could say so of any failure to make a real submit uncounted. So the harness
checks the claim itself. It runs the task's own data_loader.py in a process of its own, with the run's test
inputs and no participant code, the way a submit runs it (nsml.legacy: its feed_infer, or NSML's default over
its test_data_loader), with a probe `infer` that stops the loader the moment it is called. If the loader fails *before* it calls infer (importing it, finding or reading its data), the failure is
the organizer's: confirmed, not counted, and the loader's traceback is kept for organizers. If the loader
reaches infer, nothing the organizer wrote failed on its own, and the run's failure is the participant's (a
crash after infer returned cannot be told from one caused by what infer returned, which the participant
controls). Results are kept per loader file and test inputs (in memory, and in CACHE_DIR when one is given, so
a scheduler that restarts does not probe again).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.core.enums import FailureReason, RunStatus
from harness.core.safefs import write_whole
from harness.core.settings import inherited_environment
from harness.resources import SESSION_SDK
from harness.runtime import Outcome
from harness.taskpacks import layout

log = logging.getLogger("harness.scoring.loader_probe")
CLAIM_EXIT = 86  # the in-session module's exit when it says the loader failed (nsml.LOADER_ERROR_EXIT)
CLAIM_REFUSED = f"exit code {CLAIM_EXIT}: the run blamed the task's loader, but"  # the harness's words (shown)
REACHED_EXIT = 0  # the loader called infer: it works as far as the harness can tell
FAILED_EXIT = 3  # the loader raised before it called infer
PROBE_SECONDS = 60
MAX_DETAIL = 2000

_PROBE = r'''
import importlib.util, sys, traceback
class _Reached(BaseException):
    pass
def _infer(*args, **kwargs):
    raise _Reached()
try:
    spec = importlib.util.spec_from_file_location("data_loader", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    sys.modules["data_loader"] = module
    spec.loader.exec_module(module)
    from nsml import legacy
    legacy.feed(module, sys.argv[2], _infer, sys.argv[3])
except _Reached:
    sys.exit(0)
except BaseException:
    traceback.print_exc()
    sys.exit(3)
sys.exit(0)
'''


@dataclass(frozen=True)
class Verdict:
    confirmed: bool  # the loader fails with no participant code: the organizer's fault
    detail: str  # the loader's own output (organizers only: it may quote the hidden test inputs)


_cache: dict[tuple[str, str], Verdict] = {}
_probing: dict[tuple[str, str], threading.Lock] = {}  # one probe of a loader and its inputs at a time: claims
_probing_lock = threading.Lock()  # judged at once in the scoring threads wait for the first one's verdict


def probe_environment(settings, runtime: str, environment: str | None) -> bool:
    """Whether the probe's environment (the harness's own Python) is the run's, so that its verdict speaks for
    the run: a process run with neither an era nor requirements of its own, or a docker run in the default
    session image (built from the harness's Dockerfile) as it is. In any other environment a loader can fail for
    reasons of that environment (an era's numpy, a participant's pins) that the probe cannot see, and a claim
    the harness cannot check is never believed (the participant chose that environment)."""
    from harness.runtime.process import ERA_MARK, SESSION_ENV_MARK
    environment = environment or ""
    if runtime == "process":
        return ERA_MARK not in environment and SESSION_ENV_MARK not in environment
    if runtime == "docker":
        return environment.startswith(f"{settings.docker_image} (")
    return False


def _probe_version() -> str:
    """The probe's own code, in its cache key: a verdict of an older probe (or feed) is never reused."""
    from harness.resources import SESSION_SDK as sdk
    text = _PROBE + (Path(sdk) / "nsml" / "legacy.py").read_text()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _key(loader: Path, test_data: Path) -> tuple[str, str]:
    st = test_data.stat()
    return f"{_digest(loader)}:{_probe_version()}", f"{test_data.resolve()}:{st.st_mtime_ns}:{st.st_size}"


def probe(loader: Path, test_data: Path, task: str, cache_dir: Path | None = None) -> Verdict:
    """Run LOADER (the task's data_loader.py) on TEST_DATA with the probe infer; see the module's text."""
    key = _key(loader, test_data)
    with _probing_lock:
        lock = _probing.setdefault(key, threading.Lock())
    with lock:
        return _probed(key, loader, test_data, task, cache_dir)


def _probed(key: tuple[str, str], loader: Path, test_data: Path, task: str, cache_dir: Path | None) -> Verdict:
    if key in _cache:
        return _cache[key]
    stored = cache_dir / (hashlib.sha256("\0".join(key).encode()).hexdigest() + ".json") if cache_dir else None
    if stored is not None and stored.is_file():
        try:
            data = json.loads(stored.read_text())
            _cache[key] = Verdict(bool(data["confirmed"]), str(data["detail"]))
            return _cache[key]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    work = Path(tempfile.mkdtemp(prefix="nsml-loader-probe-"))
    try:
        view = work / "data" / task / "test"
        view.mkdir(parents=True)
        (view / layout.TEST_DATA).symlink_to(test_data.resolve(), target_is_directory=test_data.is_dir())
        env = {"PATH": inherited_environment().get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SESSION_SDK),
               "HOME": str(work), "PYTHONDONTWRITEBYTECODE": "1",  # nothing written beside the task's loader
               "NSML_SESSION": f"harness/{task}/probe", "NSML_DATASET_NAME": task,
               "NSML_DATASET_PATH": str(work / "data" / task), "NSML_MODE": "submit",
               "NSML_OUTPUT_FILE": str(work / "prediction"), "NSML_DATA_LOADER": str(loader)}
        try:
            proc = subprocess.run([sys.executable, "-c", _PROBE, str(loader), str(work / "prediction"),
                                   str(work / "data" / task)], cwd=work,
                                  env=env, capture_output=True, timeout=PROBE_SECONDS, start_new_session=True)
            code, out = proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            code, out = -1, f"the loader did not reach infer within {PROBE_SECONDS} s"
        verdict = Verdict(code == FAILED_EXIT, out.strip()[-MAX_DETAIL:])  # a timeout is not confirmed
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _cache[key] = verdict
    if stored is not None:
        try:  # (the loader's own output: kept 0600, as the run folders are)
            stored.parent.mkdir(parents=True, exist_ok=True)
            write_whole(stored, json.dumps({"confirmed": verdict.confirmed, "detail": verdict.detail}), 0o600)
        except OSError as exc:  # the verdict stands; it is only not kept past a restart
            log.warning("loader probe verdict not stored: %s", exc)
    return verdict


def is_claim(outcome: Outcome) -> bool:
    """Whether a submit run's OUTCOME (runtime.Outcome) says the task's loader failed: to be judged (`judge`)."""
    return outcome.reason is FailureReason.EXIT_CODE and outcome.exit_code == CLAIM_EXIT


def judge(settings, runtime: str, environment: str | None, task_path: Path, dry_run: bool, task: str,
          ended: Outcome) -> Outcome:
    """The end (runtime.Outcome) of a submit run that ENDED blaming the task's loader: the loader's failure, not
    counted, only when the harness's own probe of it, with no participant code, fails too — in the environment the
    run had; then the loader's output is kept for organizers. Called off the scheduler's loop (it may take
    PROBE_SECONDS)."""
    def refused(why: str):
        return Outcome(RunStatus.FAILED, FailureReason.EXIT_CODE, ended.exit_code, f"{CLAIM_REFUSED} {why}")
    if not probe_environment(settings, runtime, environment):
        return refused("it ran in an environment of its own (an era or its requirements), where the harness "
                       "cannot tell the loader's failure from the entry's")
    try:
        verdict = probe(layout.loader(task_path), layout.submit_data(task_path, dry_run), task,
                        settings.state_dir / "loader-probes")
    except Exception as exc:  # noqa: BLE001 - an unreadable pack: the run's failure stands as it is
        log.warning("loader probe of task %s failed: %s", task, exc)
        return ended
    if not verdict.confirmed:
        return refused("the harness's own run of data_loader.py reached infer")
    return Outcome(RunStatus.FAILED, FailureReason.LOADER_ERROR, ended.exit_code,
                   f"the task's data_loader.py failed before infer was called (not counted): {verdict.detail}")
