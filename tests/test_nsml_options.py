"""Options real NSML scripts pass (submit -v/-e/--esm, run --esm/--gpu-model) and `submit -t` for debugging."""
import pytest
from helpers import NSML_MAIN, participant, run_session

BROKEN_INFER = NSML_MAIN.replace('''        return [int(int(x) > state["threshold"]) for x in open(path).read().split()]''',
                                 '''        print("about to fail on", path)
        raise ValueError("my infer is broken")''')


def test_dry_run_shows_its_own_log_first_predictions_and_the_failure(cli, tiny_task, nsml_folder, tmp_path):
    name = run_session(cli, nsml_folder)
    r = cli("submit", "-t", name, "1")
    assert r.stdout.splitlines() == ["Score: 1.0", "Done"]
    assert "the prediction file's first 2 prediction(s)" in r.stderr
    assert "  0\n  1" in r.stderr  # test_submit holds 10 and 90
    dry = cli.json("history", "tiny")[0]
    log = cli("logs", "--submission", str(dry["id"])).stdout
    assert "loaded" in log  # a participant reads their own dry-run log
    real = cli.json("submit", name, "1")
    hidden = cli("logs", "--submission", str(real["id"]))
    assert hidden.stdout == "" and "organizers only" in hidden.stderr
    broken = run_session(cli, participant(tmp_path / "broken", BROKEN_INFER))
    r = cli("submit", "-t", broken, "1", code=1)
    assert "end of the infer log" in r.stderr and "my infer is broken" in r.stderr
    result = cli.json("submit", "-t", broken, "1", code=1)
    assert result["reason"] == "exit_code" and any("ValueError" in line for line in result["log_tail"])


def test_verbose_streams_dry_runs_and_refuses_real_submits_for_participants(cli, tiny_task, nsml_folder):
    name = run_session(cli, nsml_folder)
    r = cli("submit", "-t", "-v", name, "1")
    assert "loaded" in r.stdout and r.stdout.rstrip().endswith("Done")
    r = cli("submit", "-v", name, "1", code=2)
    assert "organizers only" in r.stderr and "-t -v" in r.stderr


def test_run_verbose_follows_the_session_and_a_driver_version_is_accepted(cli, tiny_task, nsml_folder):
    """AI Rush 2020's run scripts: `nsml run -g 1 --gpu-driver-version 418.39 -v -e main.py -d TASK`."""
    r = cli("run", "--gpu-driver-version", "418.39", "-v", "-e", "main.py", "-d", "tiny", "-a", "--epochs 2",
            nsml_folder)
    assert r.stdout.startswith("Session alice/tiny/1 is started\n") and "done training" in r.stdout, r.output
    assert "--gpu-driver-version 418.39: not used here" in r.stderr and "Session alice/tiny/1 succeeded" in r.stderr
    assert cli("run", "-v", "-j", "-d", "tiny", nsml_folder, code=2).stderr.startswith("Error: -v/--verbose: not")


def test_esm_and_another_entry_are_recorded(cli, tiny_task, nsml_folder):
    (nsml_folder / "infer_only.py").write_text(NSML_MAIN.replace('state["threshold"]', '1000'))
    out = cli("run", "-d", "tiny", "--esm", "ESM1234", "-a", "--epochs 2", nsml_folder).stdout
    name = out.split()[1]
    cli("logs", "-f", name)
    assert cli.json("ps", "-a")[0]["esm"] == "ESM1234"
    other = cli.json("submit", "-t", name, "1", "-e", "infer_only.py", "--esm", "ESM1234")
    assert other["status"] == "succeeded" and other["entry"] == "infer_only.py" and other["esm"] == "ESM1234"
    assert other["score"] == 0.5  # threshold 1000: everything 0; test_submit has one of each
    r = cli("submit", "-t", name, "1", "--esm", "x" * 65, code=2)
    assert "--esm" in r.stderr
    for bad in ("../main.py", "/etc/passwd", "nope.py"):
        r = cli("submit", "-t", name, "1", "-e", bad, code=2)
        assert "-e/--entry" in r.stderr


def test_gpu_model_allocates_only_that_model(cli, tiny_task, nsml_folder, state_root):
    (state_root / "harness.toml").write_text('gpus = [{model = "V100", count = 2}, {model = "A100", count = 1}]\n')
    name = run_session(cli, nsml_folder, "-g", "1", "--gpu-model", "a100")
    row = [r for r in cli.json("ps", "-a") if r["name"] == name][0]
    assert row["gpu_ids"] == [2] and row["gpu_model"] == "a100"
    r = cli("run", "-d", "tiny", "-g", "2", "--gpu-model", "A100", nsml_folder, code=2)
    assert "--gpu-model" in r.stderr and "A100, V100" in r.stderr
    r = cli("run", "-d", "tiny", "-g", "1", "--gpu-model", "H100", nsml_folder, code=2)
    assert "0 device(s) of model 'H100'" in r.stderr


@pytest.mark.parametrize("text, shown", [
    ('[0, 1, {"id": 3, "y": [1, 2]}, "a"]\n', ['0', '1', '{"id": 3, "y": [1, 2]}', '"a"']),
    ('{"u1": [5, 6], "u2": []}', ['"u1": [5, 6]', '"u2": []']),
    ('{"id": 1}\n{"id": 2}\n', ['{"id": 1}', '{"id": 2}']),  # JSON lines: its lines
    ("[" * 5000, ["[" * 300]),  # nested past the recursion limit: the line as it is
    ('[1, 2, "' + "x" * 5000, ["1", "2"]),  # an element cut at the 4 KiB read ends the list early
])
def test_a_dry_runs_first_predictions_are_records_of_a_one_line_json_file(tmp_path, text, shown):
    from harness.service.submits import _head
    (tmp_path / "prediction").write_text(text)
    assert _head(tmp_path / "prediction", 10) == shown
