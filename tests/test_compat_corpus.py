"""A compatibility corpus: NSML-style entries and packs written here, one per convention real submissions use,
each taken through run → submit -t → submit → ranked, in the sandboxed process runtime and in docker; `nsml check` agrees with what run and submit did on each."""
import json

from helpers import ORGANIZER, make_tiny_task, participant, run_session

# 2018: the save/load callbacks treat their argument as a file path (torch.save(model, path) style)
ENTRY_2018 = '''
import argparse, os, pickle
import nsml
from nsml import DATASET_PATH

def bind_model(model):
    def save(filename, *args):
        with open(filename, "wb") as fh:
            pickle.dump(model, fh)
    def load(filename, *args):
        with open(filename, "rb") as fh:
            model.update(pickle.load(fh))
    def infer(path, **kwargs):
        return [int(int(x) > model["t"]) for x in open(path).read().split()]
    nsml.bind(save=save, load=load, infer=infer)

if __name__ == "__main__":
    args = argparse.ArgumentParser()
    args.add_argument("--mode", type=str, default="train")
    args.add_argument("--iteration", type=str, default="0")
    args.add_argument("--pause", type=int, default=0)
    config = args.parse_args()
    model = {"t": 50}
    bind_model(model)
    if config.pause:
        nsml.paused(scope=locals())
    if config.mode == "train":
        nsml.save(0)
'''

# 2021: feed_infer hands the entry DATASET_PATH itself and expects (id, label) pairs back
LOADER_2021 = '''
import os
from nsml import DATASET_PATH

def feed_infer(output_file, infer_func):
    pairs = infer_func(DATASET_PATH)
    with open(output_file, "w") as fh:
        for _id, label in pairs:
            fh.write(f"{label}\\n")
'''

ENTRY_2021 = '''
import argparse, json, os
import nsml
from nsml import DATASET_PATH

def bind_model(state):
    def save(dir_name, *args, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        json.dump(state, open(os.path.join(dir_name, "state.json"), "w"))
    def load(dir_name, *args, **kwargs):
        state.update(json.load(open(os.path.join(dir_name, "state.json"))))
    def infer(root, **kwargs):
        numbers = open(os.path.join(root, "test", "test_data")).read().split()
        return [(i, int(int(x) > state["t"])) for i, x in enumerate(numbers)]
    nsml.bind(save=save, load=load, infer=infer)

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="train")
    p.add_argument("--pause", type=int, default=0)
    p.add_argument("--iteration", default="0")
    a = p.parse_args()
    state = {"t": 50}
    bind_model(state)
    if a.pause:
        nsml.paused(scope=locals())
    nsml.save("best")
'''

# load → save → exit: a documented NSML idiom to copy a model from another session of one's own
COPY_ENTRY = '''
import argparse, json, os
import nsml

state = {"t": 0}
def save(d, **k):
    os.makedirs(d, exist_ok=True); json.dump(state, open(os.path.join(d, "s.json"), "w"))
def load(d, **k):
    state.update(json.load(open(os.path.join(d, "s.json"))))
def infer(path, **k):
    return [int(int(x) > state["t"]) for x in open(path).read().split()]
nsml.bind(save, load, infer)

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
    p.add_argument("--iteration", default="0"); p.add_argument("--source", default="")
    a = p.parse_args()
    if a.pause:
        nsml.paused(scope=locals())
    if a.source:
        nsml.load(checkpoint="best", session=a.source)
        nsml.save("saved")
        raise SystemExit(0)
    state["t"] = 50
    nsml.save("best")
'''

# Fire: the entry's flags are its function's parameters; only --mode and --pause are declared
FIRE_ENTRY = '''
import json, os
import fire
import nsml

state = {"t": 50}
def _save(d, **k):
    os.makedirs(d, exist_ok=True); json.dump(state, open(os.path.join(d, "s.json"), "w"))
def _load(d, **k):
    state.update(json.load(open(os.path.join(d, "s.json"))))
def _infer(path, **k):
    return [int(int(x) > state["t"]) for x in open(path).read().split()]

def main(mode="train", pause=0, threshold=50):
    state["t"] = threshold
    nsml.bind(save=_save, load=_load, infer=_infer)
    if pause:
        nsml.paused(scope=locals())
    nsml.save(1)

if __name__ == "__main__":
    fire.Fire(main)
'''


# 2018/2019: nsml.cache runs the baseline's preprocessing into output_path files; AI Rush 2019 entries import
# NSML_NFS_OUTPUT and SESSION_NAME beside DATASET_PATH (a missing name would fail the import)
CACHE_ENTRY = '''
import argparse, os, pickle
import nsml
from nsml import DATASET_PATH, DATASET_NAME, NSML_NFS_OUTPUT, SESSION_NAME

def train_data_loader(data_path, output_path):
    numbers = [int(x) for x in open(os.path.join(data_path, "numbers")).read().split()]
    labels = [int(x) for x in open(os.path.join(os.path.dirname(data_path), "train_label")).read().split()]
    for path, rows in zip(output_path, (numbers, labels)):
        with open(path, "wb") as fh:
            pickle.dump(rows, fh)
    print("preprocessed", len(numbers), "rows")

model = {"t": 0}
def save(filename, *args):
    pickle.dump(model, open(filename, "wb"))
def load(filename, *args):
    model.update(pickle.load(open(filename, "rb")))
def infer(path, **kwargs):
    return [int(int(x) > model["t"]) for x in open(path).read().split()]
nsml.bind(save=save, load=load, infer=infer)

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
    p.add_argument("--iteration", default="0")
    a = p.parse_args()
    if a.pause:
        nsml.paused(scope=locals())
    output_path = ["./numbers.pkl", "./labels.pkl"]
    for _ in range(2):  # the second call finds its files and does not run the loader again
        nsml.cache(train_data_loader, data_path=os.path.join(DATASET_PATH, "train", "train_data"),
                   output_path=output_path)
    numbers, labels = (pickle.load(open(path, "rb")) for path in output_path)
    model["t"] = max(n for n, label in zip(numbers, labels) if label == 0)
    with open(os.path.join(NSML_NFS_OUTPUT, "note.txt"), "w") as fh:
        fh.write(f"{SESSION_NAME} {DATASET_NAME}")
    print("nfs:", open(os.path.join(NSML_NFS_OUTPUT, "note.txt")).read())
    nsml.save(0)
'''


# AI Rush 2020: `nsml run -d task-a,task-b` and DATASET_PATH[0], DATASET_PATH[1] (a submit sees its task's own)
TWO_TASKS_ENTRY = COPY_ENTRY.split("\nif __name__")[0].replace('{"t": 0}', '{"t": 50}') + '''
if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="train"); p.add_argument("--pause", type=int, default=0)
    p.add_argument("--iteration", default="0")
    a = p.parse_args()
    roots = [os.path.join(nsml.DATASET_PATH[0], "train"), os.path.join(nsml.DATASET_PATH[1], "train")]
    if a.pause:
        nsml.paused(scope=locals())
    numbers = [int(x) for r in roots for x in open(os.path.join(r, "train_data", "numbers")).read().split()]
    print("tasks:", nsml.DATASET_NAME, [os.path.basename(p) for p in nsml.DATASET_PATH], "numbers:", len(numbers))
    nsml.save(0)
'''


def _scored(cli, name, ckpt, task="tiny", folder=None, args=None):
    assert cli.json("submit", "-t", name, ckpt)["status"] == "succeeded"
    result = cli.json("submit", name, ckpt)
    assert result["status"] == "succeeded" and result["score"] > 0.5, result
    assert any(r["session"] == name for r in cli.json("board", task))
    if folder is not None:  # nsml check agrees: it passes, with no step failed
        rows = json.loads(cli("check", folder, "-d", task, "-j", *(["-a", args] if args else [])).stdout)
        assert all(r["ok"] for r in rows) and rows[-1]["step"] == "submit -t is scored", rows
    return result


def test_2018_file_path_callbacks(cli, tiny_task, tmp_path, runtime):
    folder = participant(tmp_path / "y2018", ENTRY_2018)
    name = run_session(cli, folder)
    _scored(cli, name, "0", folder=folder)


def test_2021_loader_passes_dataset_path_and_expects_pairs(cli, tmp_path, runtime):
    pack = make_tiny_task(tmp_path / "pairs", name="pairs")
    (pack / "data_loader.py").write_text(LOADER_2021)
    cli("dataset", "add", pack, user=ORGANIZER)
    folder = participant(tmp_path / "y2021", ENTRY_2021)
    name = run_session(cli, folder, task="pairs")
    _scored(cli, name, "best", task="pairs", folder=folder)


def test_load_save_exit_copies_a_model_between_own_sessions(cli, tiny_task, tmp_path, runtime):
    folder = participant(tmp_path / "copy", COPY_ENTRY)
    source = run_session(cli, folder)
    copy = run_session(cli, folder, "-a", f"--source {source}")
    assert [c["checkpoint"] for c in cli.json("model", "ls", copy)] == ["saved"]
    _scored(cli, copy, "saved", folder=folder, args=f"--source {source}")


def test_fire_entry_with_its_own_requirements(cli, tmp_path, runtime):
    """fire publishes no wheel: wheels-only refuses it in one line, and a task that allows source builds runs it."""
    folder = participant(tmp_path / "fire", FIRE_ENTRY)
    (folder / "requirements.txt").write_text("fire==0.7.0\n")
    strict = make_tiny_task(tmp_path / "strict", name="strict")
    cli("dataset", "add", strict, user=ORGANIZER)
    if runtime == "process":
        r = cli("run", "-d", "strict", folder, code=2)
        assert "requirements.txt" in r.stderr and "no usable wheels" in r.stderr
        r = cli("check", folder, "-d", "strict", code=2)  # check refuses it as run does, in the same words
        assert "requirements.txt" in r.stderr and "no usable wheels" in r.stderr
    pack = make_tiny_task(tmp_path / "firetask", name="firetask")
    (pack / "task.toml").write_text("source_builds = true\n" + (pack / "task.toml").read_text())
    cli("dataset", "add", pack, user=ORGANIZER)
    name = run_session(cli, folder, task="firetask")
    _scored(cli, name, "1", task="firetask", folder=folder)
    assert cli.json("history", "firetask")[0]["reserved_flags"] == ["--mode", "test", "--pause", "1"]


def test_2018_nsml_cache_and_the_2019_constants(cli, tiny_task, tmp_path, runtime):
    folder = participant(tmp_path / "cache", CACHE_ENTRY)
    name = run_session(cli, folder)
    log = cli("logs", name).stdout
    assert log.count("preprocessed 34 rows") == 1 and f"nfs: {name} tiny" in log, log
    _scored(cli, name, "0", folder=folder)


def test_2020_a_session_of_two_tasks_reads_both_and_is_submitted_to_its_own(cli, tiny_task, tmp_path, runtime):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny2", name="tiny2"), user=ORGANIZER)
    folder = participant(tmp_path / "two", TWO_TASKS_ENTRY)
    name = run_session(cli, folder, "-d", "tiny2")  # (run_session's -d tiny, then this: NSML's `-d tiny,tiny2`)
    assert "tasks: tiny ['tiny', 'tiny2'] numbers: 68" in cli("logs", name).stdout
    _scored(cli, name, "0")  # its infer reads tiny's test data: DATASET_PATH is tiny's own in a submit
    fork = cli("fork", name, "-c", "0").stdout.split()[1]  # a fork reads what its parent read
    cli("logs", "-f", fork)
    assert "numbers: 68" in cli("logs", fork).stdout
    rows = json.loads(cli("check", folder, "-d", "tiny,tiny2", "-j").stdout)
    assert all(r["ok"] for r in rows) and rows[-1]["step"] == "submit -t is scored", rows
    for bad, said in (("tiny,tiny", "named twice"), ("tiny,tiny3", "unknown task 'tiny3'"), ("tiny,", "a task name")):
        assert said in cli("run", "-d", bad, folder, code=2).stderr, bad


def test_a_session_of_two_tasks_over_http(remote_cli, tmp_path):
    for name in ("tiny", "tiny2"):
        remote_cli("dataset", "add", make_tiny_task(tmp_path / name, name=name), user=ORGANIZER)
    folder = participant(tmp_path / "two", TWO_TASKS_ENTRY)
    name = remote_cli("run", "-d", "tiny,tiny2", "-e", "main.py", folder).stdout.split()[1]
    remote_cli("logs", "-f", name)
    assert "tasks: tiny ['tiny', 'tiny2'] numbers: 68" in remote_cli("logs", name).stdout
    assert [r["datasets"] for r in remote_cli.json("ps", "-a")] == [["tiny2"]]
