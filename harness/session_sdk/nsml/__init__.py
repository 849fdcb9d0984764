"""The `nsml` module that participant code imports inside a harness session.

It implements NSML's surface (bind, save, load, report, paused, infer and the constants) on top of plain files:
checkpoints are folders under the session's checkpoint directory and every event (a report, a saved
checkpoint) is one JSON line appended to the run's events file, which the harness reads.  Outside a session it
behaves like NSML's local stub: the calls do nothing harmful.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import time

from . import constants
from .constants import (  # noqa: F401
    DATASET_NAME,
    DATASET_PATH,
    GPU_NUM,
    HAS_DATASET,
    IS_DATASET,
    IS_ON_NSML,
    NSML_NFS_OUTPUT,
    SESSION_NAME,
)

__all__ = ["bind", "save", "load", "report", "paused", "infer", "cache", "DATASET_PATH", "DATASET_NAME",
           "HAS_DATASET", "IS_DATASET", "IS_ON_NSML", "GPU_NUM", "SESSION_NAME", "NSML_NFS_OUTPUT"]

# NSML flags that some code passes to bind(); accepted and never forwarded.
_IGNORED_BIND_FLAGS = {"use_nsml_legacy"}
_MODEL_NAME = "model"  # the path a save/load callback receives: <checkpoint folder>/model

_bound = {"save": None, "load": None, "infer": None, "kwargs": {}}
_session_start = time.time()


def bind(save=None, load=None, infer=None, *args, **kwargs):
    """Register the save/load/infer callbacks. Extra keyword arguments are passed on to save and load."""
    _bound["save"], _bound["load"], _bound["infer"] = save, load, infer
    _bound["kwargs"] = {k: v for k, v in kwargs.items() if k not in _IGNORED_BIND_FLAGS}


def _call(fn, path, extra):
    """Call a save/load callback with the keyword arguments its signature accepts."""
    kwargs = dict(_bound["kwargs"])
    kwargs.update(extra)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn(path, **kwargs)
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        names = {p.name for p in params}
        kwargs = {k: v for k, v in kwargs.items() if k in names}
    return fn(path, **kwargs)


def _emit(event: dict) -> None:
    if not constants._EVENTS_FILE:
        return
    event["time"] = time.time()
    line = json.dumps(event, allow_nan=True) + "\n"
    with open(constants._EVENTS_FILE, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()


# The harness's rule for a checkpoint name (harness.core.safefs.CHECKPOINT_NAME), checked here so that a bad
# name fails at save time rather than being refused by the harness afterwards.
_CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]*")


def _checkpoint_name(checkpoint) -> str:
    if checkpoint is None:
        return time.strftime("%Y%m%d-%H%M%S")
    name = str(checkpoint)
    if len(name) > 128 or not _CHECKPOINT_NAME.fullmatch(name):
        raise ValueError(f"nsml.save: invalid checkpoint name {checkpoint!r} (letters, digits, spaces and _ . -, "
                         f"starting with a letter, digit or _; at most 128 characters)")
    return name


def _run_save(fn, folder: str, extra: dict) -> None:
    """Run a save callback so that both styles work: a directory (created first) or a file path."""
    target = os.path.join(folder, _MODEL_NAME)
    os.makedirs(target, exist_ok=True)
    try:
        _call(fn, target, extra)
    except Exception as exc:  # noqa: BLE001 - torch.save reports EISDIR as a RuntimeError
        # Old code writes a file at the path it is given: retry with the path free, if nothing was written.
        eisdir = isinstance(exc, IsADirectoryError) or "Is a directory" in str(exc)
        if eisdir and os.path.isdir(target) and not os.listdir(target):
            os.rmdir(target)
            _call(fn, target, extra)
        else:
            raise exc
    if os.path.isdir(target) and not os.listdir(target) and len(os.listdir(folder)) > 1:
        os.rmdir(target)  # the callback wrote siblings (model.pth, model.npy): keep only those


def save(checkpoint=None, save_fn=None, **kwargs):
    """Save a checkpoint through the bound save (or save_fn); saving a name again overwrites it."""
    name = _checkpoint_name(checkpoint)
    fn = save_fn or _bound["save"]
    if not IS_ON_NSML or not constants._CHECKPOINT_DIR or constants._MODE == "submit":
        return None  # local stub, or a submit run (its checkpoints are read-only): nothing is stored
    if fn is None:
        raise RuntimeError("nsml.save: no save function; call nsml.bind(save=...) first")
    root = constants._CHECKPOINT_DIR
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.", dir=root)
    try:
        _run_save(fn, staging, kwargs)
        final = os.path.join(root, name)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _emit({"type": "checkpoint", "name": name, "elapsed": time.time() - _session_start})
    return name


def _checkpoint_folder(checkpoint, session) -> str:
    name = _checkpoint_name(checkpoint)
    if session:
        parts = str(session).strip("/").split("/")
        if len(parts) != 3 or not constants._SESSIONS_ROOT or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"nsml.load: invalid session {session!r} (expected USER/TASK/N)")
        if SESSION_NAME and parts[0] != SESSION_NAME.split("/")[0]:
            raise PermissionError(f"nsml.load: session {session} is not yours (only your own sessions load)")
        folder = os.path.join(constants._SESSIONS_ROOT, *parts, "checkpoints", name)
    else:
        folder = os.path.join(constants._CHECKPOINT_DIR, name)
    if not os.path.isdir(folder):
        where = f" of session {session}" if session else ""
        raise FileNotFoundError(f"nsml.load: no checkpoint {name!r}{where}")
    return folder


def load(checkpoint, load_fn=None, session=None, **kwargs):
    """Load a checkpoint of this session, or of another (session='USER/TASK/N'), through the bound load."""
    if not IS_ON_NSML:
        return None
    fn = load_fn or _bound["load"]
    if fn is None:
        raise RuntimeError("nsml.load: no load function; call nsml.bind(load=...) first")
    folder = _checkpoint_folder(checkpoint, session)
    return _call(fn, os.path.join(folder, _MODEL_NAME), kwargs)


def report(summary=False, scope=None, step=None, **metrics):
    """Record numbers for graphs; summary=True values show in `ps`. Values must be JSON-serialisable."""
    try:
        json.dumps(metrics)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"nsml.report: value is not JSON serializable: {exc}") from None
    if scope is not None and not isinstance(scope, str):
        scope = None  # NSML code passes scope=locals(); the harness keeps only named scopes
    _emit({"type": "report", "summary": bool(summary), "scope": scope, "step": step, "metrics": metrics})


def _import_data_loader():
    path = constants._DATA_LOADER
    spec = importlib.util.spec_from_file_location("data_loader", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["data_loader"] = module
    spec.loader.exec_module(module)
    return module


def cache(preprocess_fn=None, **kwargs):
    """NSML's preprocessing cache (2018 hackathon baselines): PREPROCESS_FN(**KWARGS) writes the files named by
    KWARGS' `output_path` (a path or a list of them; NSML's default ['./processed']) and the entry reads them after.
    It runs once per session, when any of those files is missing (NSML also kept them across sessions; here each
    session makes its own). Returns the output paths."""
    output_path = kwargs.setdefault("output_path", ["./processed"])
    paths = [output_path] if isinstance(output_path, (str, os.PathLike)) else list(output_path)
    if preprocess_fn is not None and not all(os.path.exists(p) for p in paths):
        preprocess_fn(**kwargs)
    return output_path


def infer(data, **kwargs):
    """Call the bound infer (used for local tests)."""
    if _bound["infer"] is None:
        raise RuntimeError("nsml.infer: no infer function; call nsml.bind(infer=...) first")
    return _bound["infer"](data, **kwargs)


def paused(scope=None, **_ignored):
    """Entry launched with --pause 1: submit feeds infer through the task's loader then ends; fork loads and
    returns."""
    if not IS_ON_NSML or not constants._ITERATION:
        return None
    load(constants._ITERATION, session=constants._LOAD_SESSION or None)
    if constants._MODE != "submit":
        return None
    if _bound["infer"] is None:
        raise RuntimeError("nsml.paused: no infer function; call nsml.bind(infer=...) before paused()")
    _run_loader(_bound["infer"])
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(0)


LOADER_ERROR_EXIT = 86  # the task's own data_loader.py failed outside the participant's infer


def _run_loader(infer) -> None:
    """Run the task's loader with the bound infer (its feed_infer, or NSML's default for an older loader:
    nsml.legacy). An exception raised outside infer (importing the loader, reading data, or after infer
    returned) is reported as a claim of a loader error, which the harness checks itself (scoring.loader_probe)."""
    inside = {"raised": False}

    def tracked(*args, **kwargs):
        try:
            return infer(*args, **kwargs)
        except BaseException:
            inside["raised"] = True
            raise

    try:
        from . import legacy
        legacy.feed(_import_data_loader(), constants._OUTPUT_FILE, tracked, constants.DATASET_PATH)
    except Exception:  # noqa: BLE001
        if inside["raised"]:
            raise
        import traceback
        traceback.print_exc()  # the harness checks this claim with its own run of the loader: no verdict here
        sys.stdout.flush()
        sys.stderr.flush()
        sys.exit(LOADER_ERROR_EXIT)
