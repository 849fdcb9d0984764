"""The corpus, continued: NSML entries of each era and environment convention, written here (never copied), each
taken through run → submit -t → submit → ranked, and `nsml check` agreeing with what run and submit did.

With test_compat_corpus.py (2018 file-path save, 2021 loader pairs, load → save → exit across sessions, Fire)
and test_packs.py (test_data_loader-only packs with (confidence, label) and plain infers), it covers every
convention seen in public NSML code. Eras: the light one (py39: bullseye, Python 3.9, numpy/pandas before 2.0)
is built here (once per machine, `harness image build --era py39`) and run in both runtimes; the heavy ones
(torch1, tf2: GPU builds of 1-2 GB) are built on demand only, so here their image lines are resolved and a run
says how to build them.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import run_session

# The body every entry shares: NSML's reserved flags, a threshold model saved as JSON, infer over the test file.
BODY = '''
def bind_model(state):
    def save(d, **k):
        os.makedirs(d, exist_ok=True); json.dump(state, open(os.path.join(d, "m.json"), "w"))
    def load(d, **k):
        state.update(json.load(open(os.path.join(d, "m.json"))))
    def infer(path, **k):
        return [int(int(x) > state["t"]) for x in open(path).read().split()]
    nsml.bind(save=save, load=load, infer=infer)
'''


def _entry(imports: str, train: str, flags: str = "--iteration") -> str:
    """An entry: IMPORTS, the shared BODY, NSML's flags (--mode, --pause, and FLAGS), then TRAIN before a save."""
    extra = "".join(f'p.add_argument("{f}", default="0")\n' for f in flags.split())
    return (f"import argparse, json, os\n{imports}\nimport nsml\n{BODY}\np = argparse.ArgumentParser()\n"
            f'p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)\n{extra}'
            f'a = p.parse_args()\nstate = {{"t": 50}}\nbind_model(state)\nif a.pause:\n'
            f"    nsml.paused(scope=locals())\n{train}\nnsml.save(0)\n")


ENTRIES = {
    # 2019-2020 data-science code on an image of its time: np.float and DataFrame.append are gone from numpy 2 /
    # pandas 2, and the image (python 3.6) cannot be had: the py39 era runs it
    "py36 image, pandas 1 and numpy 1 APIs": ({
        "requirements.txt": "#nsml: nsml/ml:py3.6-sklearn\nnumpy==1.21.6\n",
        "main.py": _entry("import sys\nimport numpy as np, pandas as pd", '''
frame = pd.DataFrame({"x": [1.0]}).append({"x": float(np.float(2))}, ignore_index=True)
print("python", sys.version_info[:2], "numpy", np.__version__, "pandas", pd.__version__, len(frame))'''),
    }, "python (3, 9) numpy 1.21.6 pandas 1.3.5 2", "era py39"),
    # pins only in setup.py (AI Rush 2020 style), no requirements.txt; a torch 2 image: the harness's own
    "setup.py-only pins": ({
        "setup.py": '''#nsml: pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime
from distutils.core import setup
setup(name="entry", version="1.0", install_requires=["six==1.16.0"])
''',
        "main.py": _entry("import six", 'print("six", six.__version__)'),
    }, "six 1.16.0", "era harness"),
    # a requirement on torch (and one that depends on it): the harness's torch satisfies them, nothing is copied
    "torch-dependent requirements": ({
        "requirements.txt": "torch>=1.11\ntorchmetrics==1.9.0\n",
        "main.py": _entry("import torch, torchmetrics", '''
acc = torchmetrics.Accuracy(task="binary")(torch.tensor([1, 0]), torch.tensor([1, 0]))
print("torchmetrics", torchmetrics.__version__, "torch", torch.__version__, "from", torch.__file__, float(acc))'''),
    }, "torchmetrics 1.9.0 torch 2.13.0", None),
    # the parser lives in an imported module (config.py), and declares only --mode and --pause (AI Rush 2022)
    "parser in an imported module": ({
        "config.py": '''
import argparse
def get_args():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", type=str, default="train")
    p.add_argument("--pause", type=int, default=0)
    p.add_argument("--threshold", type=int, default=50)
    return p.parse_args()
''',
        "main.py": '''
import json, os
import nsml
from config import get_args
''' + BODY + '''
if __name__ == "__main__":
    a = get_args()
    state = {"t": a.threshold}
    bind_model(state)
    if a.pause:
        nsml.paused(scope=locals())
    print("trained with", a.threshold)
    nsml.save("last")
'''}, "trained with 50", None),
    # transformers 4.x idioms (AdamW from transformers) on an image named for them: the transformers4 era
    "transformers 4 image": ({
        "requirements.txt": "#nsml: nsml/huggingface-transformers4:pytorch1.9\n",
        "main.py": _entry("from transformers import AdamW, __version__ as hf", 'print("transformers", hf, AdamW.__name__)'),
    }, "transformers 4.46.3 AdamW", "era transformers4"),
    # AI Rush 2021 style: the same import with no image line and no pin (the contest's default image had
    # transformers 4): the import chooses the era, which `run` names with the file and line
    "transformers 4 import, no image line": ({
        "model.py": "import torch\nfrom transformers import (\n    BertConfig,\n    AdamW,\n)\n",
        "main.py": _entry("from model import AdamW\nimport transformers as hf_lib",
                          'print("transformers", hf_lib.__version__, AdamW.__name__)'),
    }, "transformers 4.46.3 AdamW", "era transformers4: no #nsml: image line; model.py:2 uses AdamW from transformers, "
        "which the harness's environment does not have"),
}


def _folder(tmp_path, name, files):
    folder = tmp_path / name.replace(" ", "-")
    folder.mkdir(parents=True)
    for rel, text in files.items():
        (folder / rel).write_text(text)
    return folder


@pytest.fixture(scope="session")
def py39_era():
    """The light era, built once per machine (CI builds it here; minutes the first time, then a lookup). Building
    one needs root and debootstrap: CI has both (scripts/setup-docker.sh installs debootstrap); elsewhere, skip."""
    from harness.runtime import eras
    if not eras.named("py39").built and (os.geteuid() != 0 or shutil.which("debootstrap") is None):
        if os.environ.get("CI"):
            pytest.fail("CI must be able to build the py39 era (root and debootstrap: scripts/setup-docker.sh)")
        pytest.skip("building an era needs root and debootstrap (sudo harness image build --era py39)")
    proc = subprocess.run([sys.executable, "-m", "harness", "image", "build", "--era", "py39", "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return "py39"


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_each_entry_is_trained_submitted_ranked_and_checked(cli, tiny_task, tmp_path, runtime, entry, request):
    files, in_log, note = ENTRIES[entry]
    if "era py39" == note:
        request.getfixturevalue("py39_era")
    folder = _folder(tmp_path, entry, files)
    out = cli("run", "-d", "tiny", "-e", "main.py", folder)
    if note:
        assert f"environment: {note}:" in out.stderr, out.stderr  # which era, and why, said at run
    name = out.stdout.split()[1]
    cli("logs", "-f", name)
    log = cli("logs", name).stdout
    assert in_log in log, log
    ckpt = cli.json("model", "ls", name)[0]["checkpoint"]
    assert cli.json("submit", "-t", name, ckpt)["status"] == "succeeded"
    scored = cli.json("submit", name, ckpt)
    assert scored["status"] == "succeeded" and scored["score"] == 1.0, scored
    assert any(r["session"] == name for r in cli.json("board", "tiny"))
    # nsml check says what run and submit did: it passes, with no step failed
    rows = json.loads(cli("check", folder, "-d", "tiny", "-j").stdout)
    assert all(r["ok"] for r in rows) and rows[-1]["step"] == "submit -t is scored", rows


# 2019: a session loads another of the user's sessions by its number (`session=USER/TASK/N`), as NSML's docs
# showed, then saves it as its own: numbers are the participant's, never taken by `nsml check`
BY_NUMBER = _entry("", '''
if int(a.from_number):
    owner_task = nsml.SESSION_NAME.rsplit("/", 1)[0]
    nsml.load(checkpoint=0, session=f"{owner_task}/{a.from_number}")
    print("loaded the model of", state["by"], "by number", a.from_number)
else:
    state["by"] = nsml.SESSION_NAME''', flags="--iteration --from_number")


def test_a_session_loads_another_by_number_and_check_takes_no_number(cli, tiny_task, tmp_path):
    folder = _folder(tmp_path, "by-number", {"main.py": BY_NUMBER})
    first = run_session(cli, folder)
    rows = json.loads(cli("check", folder, "-d", "tiny", "-j").stdout)  # before the second session: no number
    assert all(r["ok"] for r in rows), rows
    second = run_session(cli, folder, "-a", "--from_number 1")
    assert (first, second) == ("alice/tiny/1", "alice/tiny/2")
    assert "loaded the model of alice/tiny/1 by number 1" in cli("logs", second).stdout
    scored = cli.json("submit", second, "0")
    assert scored["status"] == "succeeded" and scored["score"] == 1.0, scored
    assert any(r["session"] == second for r in cli.json("board", "tiny"))
    rows = json.loads(cli("check", folder, "-d", "tiny", "-j", "-a", "--from_number 1").stdout)
    assert all(r["ok"] for r in rows), rows


def test_the_torch_entry_used_the_harness_torch_without_a_copy(cli, tiny_task, tmp_path, state_root):
    files, _log, _note = ENTRIES["torch-dependent requirements"]
    name = run_session(cli, _folder(tmp_path, "torch", files))
    log = cli("logs", name).stdout
    assert "/.venv/" in log.split(" from ", 1)[1] or "site-packages/torch" in log
    envs = state_root / ".harness" / "envs"
    env = envs / next(envs.glob("*.ready")).name.removesuffix(".ready")
    assert not list(env.rglob("torch/__init__.py"))  # torch itself was not installed again
    assert (env / "bin" / "python").exists()


@pytest.mark.parametrize("pin,file", [("torch==1.5.0", "requirements.txt"), ("torch==1.5.0", "setup.py")])
def test_a_pin_the_harness_cannot_satisfy_is_one_line_naming_file_line_and_era(cli, tiny_task, tmp_path, pin,
                                                                                file):
    if file == "setup.py":
        files = {"setup.py": f'from setuptools import setup\nsetup(name="x",\n      install_requires=["{pin}"])\n'}
        where = "setup.py:3"
    else:
        files = {"requirements.txt": f"six==1.16.0\n{pin}\n"}
        where = "requirements.txt:2"
    folder = _folder(tmp_path, "pinned", {**files, "main.py": "print('never runs')\n"})
    r = cli("run", "-d", "tiny", folder, code=2)
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in r.output, r.output
    assert line.startswith(f"Error: {where}: {pin}:") and "the harness's 2.13.0" in line, line
    assert "era torch1 has torch 1.13.1" in line, line


@pytest.mark.parametrize("image,era", [("nsml/default_ml:cuda9_torch1.0", "torch1"),
                                       ("registry.navercorp.com/nsml/airush2020:pytorch1.5", "torch1"),
                                       ("floydhub/pytorch:0.3.0-gpu.cuda8cudnn6-py3.17", "torch1"),
                                       ("tensorflow/tensorflow:1.15.0-gpu-py3", "tf2")])
def test_a_heavy_era_is_chosen_and_run_says_how_to_build_it(cli, tiny_task, tmp_path, image, era, monkeypatch):
    monkeypatch.setenv("HARNESS_ERA_DIR", str(tmp_path / "no-eras-built"))
    folder = _folder(tmp_path, "old", {"requirements.txt": f"#nsml: {image}\n", "main.py": "print(1)\n"})
    r = cli("run", "-d", "tiny", folder, code=2)
    assert f"environment: era {era}:" in r.stderr and image in r.stderr
    assert f"era {era} (" in r.stderr and f"harness image build --era {era}" in r.stderr
    assert "Traceback" not in r.output


def test_organizers_add_an_era_in_harness_toml(cli, state_root):
    (state_root / "harness.toml").write_text('[eras.old-six]\ndescription = "six 1.15"\nbase = "harness"\n'
                                             'packages = ["six==1.15.0"]\nimages = ["acme/legacy:*"]\n')
    rows = {r["era"]: r for r in cli.json("image", "eras")}
    assert list(rows)[0] == "old-six" and rows["old-six"]["from"].endswith("harness.toml")
    (state_root / "harness.toml").write_text('[eras.bad]\nbase = "buster"\n')
    r = cli("image", "eras", code=2)
    assert "[eras.bad] base: expected 'harness' or a Debian suite" in r.stderr
    (state_root / "harness.toml").write_text('[eras.bad]\npackages = ["six>=1"]\n')
    assert "pin it with ==" in cli("image", "eras", code=2).stderr


def test_hostile_environment_files_are_one_line_each_and_cheap(cli, tiny_task, tmp_path):
    """A huge install_requires, a huge requirements.txt, an image line that is not an image name, a long version:
    each is one line at run, never a scan that would hold the scheduler (the hostile review's attacks)."""
    items = ", ".join(f"'pkg{i}; python_version<\"0\"'" for i in range(20_000))
    cases = {
        "setup.py": ("\n" * 1000 + f"from setuptools import setup\nsetup(install_requires=[{items}])\n",
                     "over 256 KiB"),
        "requirements.txt": ("".join(f"pkg{i}==1.0\n" for i in range(600)), "over 500 requirements"),
    }
    for name, (text, expected) in cases.items():
        folder = _folder(tmp_path, name, {name: text, "main.py": "print(1)\n"})
        r = cli("run", "-d", "tiny", folder, code=2)
        assert expected in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.output, r.stderr
    for line, expected in (("#nsml: " + "a" * 5000, "is not an image name"),
                           ("#nsml: evil;rm -rf /", "is not an image name"),
                           ("#nsml: x/tf" + "9" * 300 + ".1", "is not an image name"),
                           ("#nsml: x/tf999999.1-py3.6", None)):
        folder = _folder(tmp_path, f"img{len(line)}{line[-3:]}", {"requirements.txt": line + "\n",
                                                                  "main.py": "print(1)\n"})
        if expected:
            r = cli("run", "-d", "tiny", folder, code=2)
            assert "requirements.txt:1: #nsml:" in r.stderr and expected in r.stderr and "Traceback" not in r.output
        else:  # a long version in a valid name: no tag read from it, the python tag still is
            from harness.runtime import eras
            assert eras.tags(line[7:]) == {"python": "3.6"}
            assert eras.tags("x/tf" + "9" * 200 + ".1") == {}  # (packaging refuses versions of 4,300+ digits)
    # another user is served all along: a session of bob's runs and is listed
    good = _folder(tmp_path, "bob", {"main.py": _entry("", 'print("bob trained")')})
    name = cli("run", "-d", "tiny", "-e", "main.py", good, user="bob").stdout.split()[1]
    cli("logs", "-f", name, user="bob")
    assert "bob trained" in cli("logs", name, user="bob").stdout
    assert [r["name"] for r in cli.json("ps", "-a", user="bob")] == [name]


def test_an_era_name_must_be_a_name(cli, state_root):
    (state_root / "harness.toml").write_text('[eras."../../../tmp/victim"]\nbase = "harness"\n')
    r = cli("image", "eras", code=2)
    assert "an era's name is" in r.stderr and "Traceback" not in r.output


def test_a_gpu_run_in_an_era_gets_this_machines_driver(tmp_path, monkeypatch):
    """The CUDA flavour: an era's framework is its package's own (CUDA) build; the driver is the machine's, bound
    into the era's system for GPU runs only (no GPU here: the command line is what can be checked)."""
    from harness.runtime import sandbox
    lib = tmp_path / "libcuda.so.1"
    lib.write_text("")
    monkeypatch.setattr(sandbox, "driver_libraries", lambda: [lib])
    era_root = tmp_path / "rootfs"
    cmd = sandbox.base_command(False, tmp_path / "tmp", gpu_ids=[0], root=era_root)
    assert ["--ro-bind-try", str(lib), f"{sandbox.DRIVER_TARGET}/libcuda.so.1"] == cmd[cmd.index(str(lib)) - 1:][:3]
    assert ["--dev-bind-try", "/dev/nvidia0", "/dev/nvidia0"] == cmd[cmd.index("/dev/nvidia0") - 1:][:3]
    assert ["--ro-bind-try", f"{era_root}/usr", "/usr"] == cmd[cmd.index(f"{era_root}/usr") - 1:][:3]
    cpu_only = sandbox.base_command(False, tmp_path / "tmp", gpu_ids=[], root=era_root)
    assert str(lib) not in cpu_only and "/dev/nvidia0" not in cpu_only


def test_imports_choose_an_era_only_where_nothing_else_does(tmp_path, state_root):
    """What era_imports reads: `from M import` lists (parenthesised, aliased), `M.NAME` in code (not in comments
    nor strings), never a longer name, never past its bounds; a pin of the package or an image line decides instead."""
    from harness.runtime import era_imports, eras
    from harness.runtime.environments import choose_era
    catalogue = eras.catalogue()
    cases = {
        "from transformers import AdamW\n": "transformers4",
        "from transformers import get_linear_schedule_with_warmup, AdamW as A\n": "transformers4",
        "from transformers import (\n  BertModel,  # the encoder\n  AdamW,\n)\n": "transformers4",
        "import transformers\nopt = transformers.AdamW(params)\n": "transformers4",
        "from transformers.optimization import AdamW\n": "transformers4",
        "x = transformers.is_torch_tpu_available()\n": "transformers4",
        "from transformers import AdamWeightDecay\n": "harness",  # (a longer name: TensorFlow's optimizer)
        "# from transformers import AdamW\n": "harness",
        "x = 1  # transformers.AdamW was here\n": "harness",
        "from torch.optim import AdamW\n": "harness",
        "from mytransformers import AdamW\n": "harness",
        "y = my.transformers.AdamW\n": "harness",
        '"""Use it so:\nfrom transformers import AdamW\n"""\n': "harness",  # a docstring imports nothing
        "x = 'transformers.AdamW'\n": "harness",
        "x = 'it\\'s'  # transformers.AdamW\n": "harness",
        "s = '''\n'''\nfrom transformers import AdamW\n": "transformers4",  # code after a closed string
        'msg = "#"\nopt = transformers.AdamW(p)\n': "transformers4",  # a # in a string starts no comment
    }
    for i, (text, era) in enumerate(cases.items()):
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        (folder / "main.py").write_text(text)
        assert choose_era(folder, None).era.name == era, text
    folder = tmp_path / "c0"
    assert "main.py:1 uses AdamW from transformers" in choose_era(folder, None).why
    (folder / "requirements.txt").write_text("transformers==4.30.2\n")  # the pin decides
    assert choose_era(folder, None).era.name == "harness"
    (folder / "requirements.txt").write_text("#nsml: python:3.7\n")  # so does an image line
    assert choose_era(folder, None).era.name == "py39"
    # bounds: depth, hidden folders, virtualenvs, links, file count, bytes read
    for rel in ("a/b/c/deep.py", ".hidden/x.py", "venv/x.py", "big.py"):
        other = tmp_path / "bounded" / rel
        other.parent.mkdir(parents=True, exist_ok=True)
        other.write_text(("#" * era_imports.MAX_BYTES + "\n" if rel == "big.py" else "") +
                         "from transformers import AdamW\n")
    (tmp_path / "bounded" / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "bounded" / "link.py").symlink_to(tmp_path / "c0" / "main.py")
    assert era_imports.choose(tmp_path / "bounded", catalogue) is None
    many = tmp_path / "many"
    many.mkdir()
    for i in range(era_imports.MAX_FILES):
        (many / f"a{i:04d}.py").write_text("x = 1\n")
    (many / "z.py").write_text("from transformers import AdamW\n")
    assert era_imports.choose(many, catalogue) is None
    (many / "a0000.py").write_text("from transformers import AdamW\n")
    assert era_imports.choose(many, catalogue).era.name == "transformers4"
    heavy = tmp_path / "heavy"
    heavy.mkdir()
    for i in range(era_imports.MAX_TOTAL // era_imports.MAX_BYTES):
        (heavy / f"a{i}.py").write_text("#" * era_imports.MAX_BYTES)
    (heavy / "z.py").write_text("from transformers import AdamW\n")
    assert era_imports.choose(heavy, catalogue) is None
    # what .nsmlignore lists is not read (the snapshot will not have it): the run's scan and the launch's agree
    decoys = tmp_path / "decoys"
    decoys.mkdir()
    for i in range(era_imports.MAX_FILES):
        (decoys / f"a_gen{i:04d}.py").write_text("x = 1\n")
    (decoys / "model.py").write_text("from transformers import AdamW\n")
    (decoys / ".nsmlignore").write_text("a_gen*.py\n")
    assert era_imports.choose(decoys, catalogue).era.name == "transformers4"
    # the docker runtime: on the default image (the harness's environment) the era's packages are added; a task's
    # own image is the organizer's choice and is used as it is
    from harness.runtime.images import resolve_base
    plain = tmp_path / "c1"  # (an import that calls for the era, no image line)
    assert resolve_base(None, plain, None, "nsml-harness/session:latest") == \
        ("nsml-harness/session:latest", catalogue["transformers4"].packages)
    assert resolve_base(None, plain, "organizer/hf3:py37", "nsml-harness/session:latest") == ("organizer/hf3:py37", ())


def test_the_import_scan_is_linear_in_what_it_reads(tmp_path):
    """Hostile files (the review's): thousands of unclosed `from M import (`, long commented lines of the name.
    Quadratic, eight such files held the scheduler's launch for over two minutes; here each is one bounded pass."""
    import time

    from harness.runtime import era_imports, eras
    shapes = ["from transformers import ( # AdamW\n" * 19415, "from transformers import (\n" * 19415,
              "# " + "transformers.AdamW " * 14000, ("y = transformers.AdamWx; " * 10000 + "\n") * 2,
              "#AdamW\n" * 36000, '""' * 120000 + "AdamW", '"""' + 'transformers.AdamW \\" ' * 11000]
    for i, text in enumerate(shapes * 3):
        (tmp_path / f"h{i:02d}.py").write_text(text)
    start = time.monotonic()
    assert era_imports.choose(tmp_path, eras.catalogue()) is None
    assert time.monotonic() - start < 10  # (about 0.2 s here; the quadratic scan took minutes)


def test_an_era_import_must_be_a_dotted_name(cli, state_root):
    (state_root / "harness.toml").write_text('[eras.x]\nbase = "harness"\nimports = ["transformers"]\n')
    r = cli("image", "eras", code=2)
    assert "[eras.x] imports[0]: 'transformers': expected MODULE.NAME" in r.stderr and r.stderr.count("\n") == 1
    (state_root / "harness.toml").write_text('[eras.x]\nbase = "harness"\nimports = ["a.b(.*)+"]\n')
    assert "imports[0]" in cli("image", "eras", code=2).stderr


@pytest.mark.parametrize("files,ignore", [
    ({"lib/pyvenv.cfg": "home = /usr\n", "lib/model.py": "from transformers import AdamW\n"}, "pyvenv.cfg\n"),
    ({"requirements.txt": "transformers==4.30.2\n", "main.py": "from transformers import AdamW\n"},
     "requirements.txt\n"),
    ({"requirements.txt": "#nsml: python:3.7\n", "main.py": "print(1)\n"}, "requirements.txt\n"),
    ({"setup.py": "#nsml: python:3.7\n", "main.py": "print(1)\n"}, "*\n!main.py\n"),
])
def test_the_era_chosen_at_run_is_the_one_the_snapshot_gets(tmp_path, files, ignore):
    """`run` reads the participant's folder; the launch reads its snapshot, which leaves out what .nsmlignore lists:
    both must choose the same era (the review's cases). The files that define the environment are always taken."""
    from harness.runs.snapshot import snapshot_code
    from harness.runtime.environments import choose_era
    folder = tmp_path / "src"
    for rel, text in {**files, ".nsmlignore": ignore}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    snapshot_code(folder, tmp_path / "snap")
    assert choose_era(folder, None).era.name == choose_era(tmp_path / "snap", None).era.name


def test_environment_files_are_taken_as_files_only(cli, tiny_task, tmp_path):
    """The review's cases: a folder named requirements.txt is matched by the rules like any other (its .git/ and
    what .nsmlignore lists stay out); a requirements.txt that is a link (whose target the snapshot may leave out)
    is one line at run."""
    from harness.runs.snapshot import snapshot_code
    src = tmp_path / "src"
    for rel in ("requirements.txt/big.bin", "requirements.txt/.git/config", "setup.py/data/huge.bin", "main.py"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x\n")
    (src / ".nsmlignore").write_text("*.bin\ndata/\n")
    snapshot_code(src, tmp_path / "snap")
    assert sorted(p.relative_to(tmp_path / "snap").as_posix() for p in (tmp_path / "snap").rglob("*")
                  if p.is_file()) == [".nsmlignore", "main.py"]
    linked = tmp_path / "linked"
    (linked / "data").mkdir(parents=True)
    (linked / "data" / "reqs.txt").write_text("six==1.16.0\n")
    (linked / "requirements.txt").symlink_to("data/reqs.txt")
    (linked / "main.py").write_text("print(1)\n")
    (linked / ".nsmlignore").write_text("data/\n")
    r = cli("run", "-d", "tiny", linked, code=2)
    assert "requirements.txt: a symbolic link; the run needs the file itself" in r.stderr
    assert "Traceback" not in r.output
