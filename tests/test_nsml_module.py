"""The `nsml` module's surface, in a real interpreter, inside and outside a session."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parent.parent / "harness" / "session_sdk"


def run_py(code, env=None, cwd=None, check=True):
    full = {k: v for k, v in os.environ.items() if not k.startswith("NSML_")}
    full.update(PYTHONPATH=str(SDK), **(env or {}))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, cwd=cwd,
                          capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def session_env(tmp_path):
    sessions = tmp_path / "sessions"
    ckpt = sessions / "alice" / "t" / "1" / "checkpoints"
    ckpt.mkdir(parents=True)
    data = tmp_path / "data"
    data.mkdir()
    return {"NSML_SESSION": "alice/t/1", "NSML_DATASET_PATH": str(data), "NSML_DATASET_NAME": "t",
            "NSML_GPU_NUM": "2", "NSML_EVENTS": str(tmp_path / "events.jsonl"), "NSML_CHECKPOINT_DIR": str(ckpt),
            "NSML_SESSIONS_ROOT": str(sessions), "NSML_MODE": "train"}


def events(env):
    path = Path(env["NSML_EVENTS"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_outside_a_session_it_is_the_local_stub(tmp_path):
    out = run_py("""
        import nsml
        from nsml import DATASET_PATH
        from nsml.constants import DATASET_PATH as DP2
        print(nsml.IS_ON_NSML, nsml.HAS_DATASET, nsml.IS_DATASET, repr(DATASET_PATH), repr(DP2), nsml.GPU_NUM)
        nsml.bind(lambda d: 1/0, lambda d: 1/0, lambda x: x)
        print(nsml.save(3), nsml.load(3), nsml.report(loss=1.0), nsml.paused(scope=locals()))
        print(nsml.infer([1, 2]))
    """, cwd=tmp_path).stdout.split("\n")
    assert out[0] == "False False False '' '' 0"
    assert out[1] == "None None None None"
    assert out[2] == "[1, 2]"


def test_constants_inside_a_session(session_env):
    out = run_py("""
        import nsml, nsml.constants as c
        print(nsml.IS_ON_NSML, nsml.HAS_DATASET, nsml.IS_DATASET, nsml.DATASET_NAME, nsml.GPU_NUM,
              c.DATASET_PATH == nsml.DATASET_PATH)
    """, session_env).stdout.strip()
    assert out == "True True True t 2 True"


def test_bind_positional_keyword_extra_kwargs_and_unknown_flags(session_env):
    run_py("""
        import nsml, os, json
        seen = {}
        def save(dir_name, **kwargs):
            seen.update(kwargs)
            os.makedirs(dir_name, exist_ok=True)
            json.dump(kwargs, open(os.path.join(dir_name, "kw.json"), "w"))
        def load(path, optimizer=None):
            seen["loaded_with"] = optimizer
        nsml.bind(save, load, None, optimizer="adam", use_nsml_legacy=False)
        nsml.save("best")
        assert seen == {"optimizer": "adam"}, seen
        nsml.load("best")
        assert seen["loaded_with"] == "adam"
        nsml.bind(save=save, load=load, infer=lambda x: x * 2)
        assert nsml.infer(21) == 42
    """, session_env)
    assert (Path(session_env["NSML_CHECKPOINT_DIR"]) / "best" / "model" / "kw.json").exists()


def test_save_names_overwrite_save_fn_and_directory_created(session_env):
    run_py("""
        import nsml, os
        def save(dir_name):  # assumes the folder exists
            open(os.path.join(dir_name, "w.txt"), "w").write("bound")
        nsml.bind(save=save)
        nsml.save(0); nsml.save("best"); name = nsml.save()
        print(name)
        nsml.save("best", save_fn=lambda d: open(os.path.join(d, "w.txt"), "w").write("override"))
    """, session_env)
    ckpt = Path(session_env["NSML_CHECKPOINT_DIR"])
    names = sorted(p.name for p in ckpt.iterdir())
    assert "0" in names and "best" in names and len(names) == 3  # int, str and a time-based name
    assert (ckpt / "best" / "model" / "w.txt").read_text() == "override"  # overwritten by the second save
    assert [e["name"] for e in events(session_env) if e["type"] == "checkpoint"][-1] == "best"


def test_file_path_style_save_is_kept_and_loaded(session_env):
    """2018-style code writes a file at the path it is given (torch.save(state, dir_name))."""
    run_py("""
        import nsml, pickle
        state = {"w": 3}
        def save(filename):
            with open(filename, "wb") as f: pickle.dump(state, f)
        def load(filename):
            with open(filename, "rb") as f: state.update(pickle.load(f))
        nsml.bind(save, load)
        nsml.save(1)
        state["w"] = 0
        nsml.load(1)
        assert state["w"] == 3
        import numpy as np
        nsml.save("np", save_fn=lambda p: np.save(p, np.arange(3)))  # writes p + ".npy" beside it
        nsml.load("np", load_fn=lambda p: print(np.load(p + ".npy").sum()))
    """, session_env)
    ckpt = Path(session_env["NSML_CHECKPOINT_DIR"])
    assert (ckpt / "1" / "model").is_file()
    assert sorted(p.name for p in (ckpt / "np").iterdir()) == ["model.npy"]


def test_load_from_another_session_int_or_str(session_env, tmp_path):
    other = Path(session_env["NSML_SESSIONS_ROOT"]) / "alice" / "t" / "14" / "checkpoints" / "0" / "model"
    other.mkdir(parents=True)
    (other / "w.txt").write_text("from session 14")
    out = run_py("""
        import nsml, os
        nsml.bind(load=lambda d: print(open(os.path.join(d, "w.txt")).read()))
        nsml.load(checkpoint=0, session="alice/t/14")
        nsml.load(checkpoint="0", session="alice/t/14")
        try:
            nsml.load(checkpoint="9", session="alice/t/14")
        except FileNotFoundError as e:
            print("missing:", e)
        for bad in ("bob/t/14", "../t/14"):
            try:
                nsml.load(checkpoint="0", session=bad)
            except (PermissionError, ValueError) as e:
                print("refused:", e)
    """, session_env).stdout
    assert out.count("from session 14") == 2 and "missing: nsml.load: no checkpoint '9' of session alice/t/14" in out
    assert "refused: nsml.load: session bob/t/14 is not yours" in out and "refused: nsml.load: invalid session" in out


def test_report_checks_json_and_records_summary_scope_step(session_env):
    out = run_py("""
        import nsml
        nsml.report(summary=True, scope=locals(), step=3, train__loss=0.5, epoch=3)
        nsml.report(valid__acc=0.9)
        try:
            nsml.report(bad=object())
        except TypeError as e:
            print("TypeError", e)
    """, session_env).stdout
    assert out.startswith("TypeError")
    evs = [e for e in events(session_env) if e["type"] == "report"]
    assert evs[0]["summary"] is True and evs[0]["step"] == 3 and evs[0]["metrics"] == {"train__loss": 0.5, "epoch": 3}
    assert evs[1]["summary"] is False and len(evs) == 2


def test_paused_in_submit_mode_feeds_infer_and_exits(session_env, tmp_path):
    ckpt = Path(session_env["NSML_CHECKPOINT_DIR"]) / "5" / "model"
    ckpt.mkdir(parents=True)
    (ckpt / "k.txt").write_text("7")
    loader = tmp_path / "data_loader.py"
    loader.write_text("def feed_infer(out, infer):\n    open(out, 'w').write(str(infer([1, 2])))\n")
    env = dict(session_env, NSML_MODE="submit", NSML_ITERATION="5", NSML_OUTPUT_FILE=str(tmp_path / "pred"),
               NSML_DATA_LOADER=str(loader))
    out = run_py("""
        import nsml, os
        k = {}
        nsml.bind(load=lambda d: k.update(v=int(open(os.path.join(d, "k.txt")).read())),
                  infer=lambda xs: [x * k["v"] for x in xs], save=lambda d: None)
        nsml.paused(scope=locals())
        print("after paused: must not be reached")
    """, env).stdout
    assert "must not be reached" not in out
    assert (tmp_path / "pred").read_text() == "[7, 14]"


def test_paused_in_fork_mode_loads_and_returns(session_env):
    parent = Path(session_env["NSML_SESSIONS_ROOT"]) / "alice" / "t" / "0" / "checkpoints" / "2" / "model"
    parent.mkdir(parents=True)
    env = dict(session_env, NSML_MODE="fork", NSML_ITERATION="2", NSML_LOAD_SESSION="alice/t/0")
    out = run_py("""
        import nsml
        nsml.bind(load=lambda d: print("loaded", d.split("/checkpoints/")[0].rsplit("/", 3)[-3:]))
        nsml.paused(scope=locals())
        print("training continues")
    """, env).stdout
    assert "loaded ['alice', 't', '0']" in out and "training continues" in out


def test_invalid_checkpoint_names_are_rejected(session_env):
    proc = run_py("""
        import nsml
        nsml.bind(save=lambda d: None)
        nsml.save("../escape")
    """, session_env, check=False)
    assert proc.returncode != 0 and "invalid checkpoint name" in proc.stderr
