"""`nsml check`: static contract checks with file:line, then a smoke run (train to the first save, submit -t)."""
import json

import pytest
from helpers import NSML_MAIN, ORGANIZER, REPO, participant

BASELINES = sorted(p.name for p in (REPO / "submissions").iterdir() if (p / "main.py").exists())

BROKEN = {
    "no bind": (NSML_MAIN.replace("    nsml.bind(save, load, infer)\n", "    pass\n"), "nsml.bind", "no nsml.bind"),
    "reads before paused": (NSML_MAIN.replace('''    state = {"threshold": cfg.threshold, "epochs_done": 0}''',
                                              '''    state = {"threshold": cfg.threshold, "epochs_done": 0}
    rows = open(os.path.join(DATASET_PATH, "train", "train_label")).read().split()'''),
                            "nsml.paused", "main.py:"),
    "infer takes nothing": (NSML_MAIN.replace("    def infer(path, **kwargs):", "    def infer():"), "infer",
                            "takes no argument"),
    "hard-coded data path": (NSML_MAIN.replace('''    print("done training", state)''',
                                               '''    print("done training", open("/data/tiny/train/train_label").read()[:5])'''),
                             "data paths", "'/data/tiny/train/train_label' at main.py:"),
    "never saves": (NSML_MAIN.replace("            nsml.save(epoch)\n", ""), "training saves a checkpoint",
                    "no nsml.save"),
    "infer crashes": (NSML_MAIN.replace('''        return [int(int(x) > state["threshold"]) for x in open(path).read().split()]''',
                                        '''        raise RuntimeError("infer is broken")'''),
                      "submit -t is scored", "exit_code"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_entry_fails_naming_the_step_and_line(cli, tiny_task, tmp_path, case):
    source, step, fragment = BROKEN[case]
    folder = participant(tmp_path / case.replace(" ", "-"), source)
    r = cli("check", folder, "-d", "tiny", "-j", "--time-limit", "60", code=1)
    rows = {row["step"]: row for row in json.loads(r.stdout)}
    assert rows[step]["ok"] is False and fragment in rows[step]["evidence"], rows[step]
    assert rows[step]["fix"]


def test_a_bad_requirement_line_is_named(cli, tiny_task, nsml_folder):
    (nsml_folder / "requirements.txt").write_text("numpy\nx @ git+https://example.invalid/x\n")
    rows = {r["step"]: r for r in json.loads(cli("check", nsml_folder, "-d", "tiny", "-j", code=1).stdout)}
    assert not rows["requirements"]["ok"] and "requirements.txt:2" in rows["requirements"]["evidence"]


def test_a_good_entry_passes_every_step(cli, tiny_task, nsml_folder):
    r = cli("check", nsml_folder, "-d", "tiny")
    assert "FAIL" not in r.stdout and "submit -t is scored" in r.stdout


@pytest.mark.parametrize("baseline", BASELINES)
def test_every_baseline_passes_the_static_checks(baseline):
    from harness.service.check import static_checks
    steps = static_checks(REPO / "submissions" / baseline, "main.py")
    assert all(s.ok for s in steps), [s for s in steps if not s.ok]


@pytest.mark.parametrize("baseline,args", [("garbage_docs_majority", ""), ("garbage_docs_ngram", "")])
def test_baselines_pass_the_smoke_run(cli, baseline, args):
    cli("dataset", "prepare", "garbage-docs", "--scale", "0.05", user=ORGANIZER)
    r = cli("check", REPO / "submissions" / baseline, "-d", "garbage-docs", "-j", "-a", args)
    assert all(row["ok"] for row in json.loads(r.stdout))
