"""The GPU check's preparation (scripts/gpu-check.sh, bench/gpu_wheels.py): the wheel folder's resolver and the
refusal without a folder. The check itself runs in CI (.ci/run) with a stand-in, and on a GPU machine for real."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_wheels  # noqa: E402


def wheel(folder: Path, name: str, version: str, requires=(), tag="py3-none-any") -> Path:
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n"
                                                                                   for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", meta)
    return path


def wheel_folder(folder: Path) -> Path:
    """An empty wheel folder stamped as built from this checkout's harness/."""
    folder.mkdir(exist_ok=True)
    (folder / gpu_wheels.SOURCE_STAMP).write_text(gpu_wheels.source_hash() + "\n")
    return folder


def plan(folder):
    return [p.name for p in gpu_wheels.resolve(folder, gpu_wheels.target_tags(), gpu_wheels.TARGET_MARKERS,
                                               gpu_wheels.target_has)]


def test_the_folder_resolves_for_the_gpu_machine(tmp_path):
    wheel_folder(tmp_path)
    """The harness and what it needs, walking requirements; provided packages and markers that do not hold for
    CPython 3.12 on x86-64 are not asked for; a wheel for another Python or machine does not count."""
    wheel(tmp_path, "nsml-harness", "0.1.0", ["sqlalchemy>=2.0", "numpy>=1.24", "tomli>=2; python_version < '3.11'",
                                              "pytest; extra == 'test'"])
    wheel(tmp_path, "sqlalchemy", "2.1.9", ["typing-extensions>=4.6", "greenlet>=1; python_version >= '3.14'"],
          tag="cp312-cp312-manylinux_2_17_x86_64")
    assert "no wheel for typing-extensions>=4.6 (required by sqlalchemy)" in _refusal(tmp_path)
    wheel(tmp_path, "typing-extensions", "4.16.0", tag="cp311-cp311-manylinux_2_17_x86_64")  # another Python's
    assert "no wheel for typing-extensions>=4.6" in _refusal(tmp_path)
    wheel(tmp_path, "typing-extensions", "4.16.0")
    assert plan(tmp_path) == ["nsml_harness-0.1.0-py3-none-any.whl",
                              "sqlalchemy-2.1.9-cp312-cp312-manylinux_2_17_x86_64.whl",
                              "typing_extensions-4.16.0-py3-none-any.whl"]


def test_a_folder_without_the_harness_or_with_two_versions_is_refused(tmp_path):
    wheel_folder(tmp_path)
    wheel(tmp_path, "click", "8.5.1")
    assert "no nsml-harness wheel" in _refusal(tmp_path)
    wheel(tmp_path, "nsml-harness", "0.1.0", ["click>=8.1"])
    wheel(tmp_path, "click", "8.4.0")
    assert "two versions of click (8.4.0, 8.5.1): keep one" in _refusal(tmp_path)
    (tmp_path / "click-8.4.0-py3-none-any.whl").unlink()
    wheel(tmp_path, "nsml-harness", "0.1.0", ["click>=9"])
    assert "click-8.5.1-py3-none-any.whl does not satisfy click>=9" in _refusal(tmp_path)


def test_installing_takes_only_what_this_python_lacks(tmp_path):
    """On the machine itself: a package installed at a fitting version is not installed again; one installed at
    a version the requirement refuses is taken from the folder."""
    wheel_folder(tmp_path)
    import click
    wheel(tmp_path, "nsml-harness", "0.1.0", ["click>=8.0", "packaging>=999"])
    wheel(tmp_path, "packaging", "999.0")
    chosen = gpu_wheels.resolve(tmp_path, set(gpu_wheels.sys_tags()), gpu_wheels.here_markers(),
                                gpu_wheels.installed_has)
    assert [p.name for p in chosen] == ["nsml_harness-0.1.0-py3-none-any.whl", "packaging-999.0-py3-none-any.whl"]
    assert click  # installed here, so not chosen


def test_every_requirement_is_checked_against_the_chosen_wheel_and_extras_are_followed(tmp_path):
    """Found by the review: a package chosen for one requirement was never checked against a later, stricter
    one; a requirement's extras were dropped."""
    wheel_folder(tmp_path)
    wheel(tmp_path, "nsml-harness", "0.1.0", ["foo>=1", "bar"])
    wheel(tmp_path, "bar", "1.0", ["foo>=2"])
    wheel(tmp_path, "foo", "1.0")
    assert "foo-1.0-py3-none-any.whl does not satisfy foo>=2 (required by bar)" in _refusal(tmp_path)
    (tmp_path / "foo-1.0-py3-none-any.whl").unlink()
    wheel(tmp_path, "foo", "2.0", ["fast; extra == 'speed'", "slow; extra == 'other'"])
    assert len(plan(tmp_path)) == 3
    wheel(tmp_path, "nsml-harness", "0.1.0", ["foo[speed]>=1", "bar"])
    assert "no wheel for fast; extra == \"speed\" (required by foo[speed])" in _refusal(tmp_path)
    wheel(tmp_path, "fast", "1.0")
    assert [p.name.split("-")[0] for p in gpu_wheels.resolve(tmp_path, gpu_wheels.target_tags(),
            gpu_wheels.TARGET_MARKERS, gpu_wheels.target_has)] == ["bar", "fast", "foo", "nsml_harness"]


def test_a_folder_built_from_another_state_of_the_harness_is_refused(tmp_path):
    wheel_folder(tmp_path)
    wheel(tmp_path, "nsml-harness", "0.1.0")
    assert len(plan(tmp_path)) == 1
    (tmp_path / gpu_wheels.SOURCE_STAMP).write_text("0" * 64 + "\n")
    assert "built from another state of harness/ than this checkout's: rebuild it with: bash " \
        "scripts/gpu-wheels.sh" in _refusal(tmp_path)
    (tmp_path / gpu_wheels.SOURCE_STAMP).unlink()
    assert "built from another state" in _refusal(tmp_path)


def test_the_check_refuses_without_a_wheel_folder(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "GPU_WHEELS": str(tmp_path / "none"), "OUT": str(tmp_path)})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"gpu-check: no wheel folder at {tmp_path / 'none'}: build it first, "
                                                "where the package registry answers, with: bash scripts/gpu-wheels.sh"]


def _refusal(folder) -> str:
    with pytest.raises(gpu_wheels.Incomplete) as err:
        plan(folder)
    return str(err.value)


def test_a_driver_nvml_cannot_read_is_said_and_never_taken_for_a_machine_without_a_gpu(tmp_path, monkeypatch, capsys):
    import gpu

    from harness.runtime import gpus
    (tmp_path / "nvidiactl").touch()
    monkeypatch.setattr(gpus, "DRIVER_PATHS", (str(tmp_path / "nvidiactl"),))
    monkeypatch.setattr(gpus, "_driver_models", lambda: ())
    assert gpu.run_check(tmp_path / "out", 10) == 1
    assert capsys.readouterr().err.strip() == ("gpu-check: an NVIDIA driver is loaded but NVML reads no device "
                                               "(nvidia-ml-py cannot talk to it): not a GPU check, and not a machine "
                                               "without a GPU either")


def test_a_step_that_fails_or_runs_out_of_time_is_a_row_and_the_json_is_written(tmp_path, monkeypatch, capsys):
    """A failed step is a FAILED row naming it (no traceback), and the table and the JSON are still written."""
    import json

    import gpu
    monkeypatch.setattr(gpu, "driver_models", lambda: (False, []))
    monkeypatch.setattr(gpu.tempfile, "mkdtemp", lambda prefix: str((tmp_path / "root").mkdir() or tmp_path / "root"))

    def broken(check, gpu_, models, size, report):
        assert check.step("prepare face-age", check.cli, "no-such-command") is None
        check.until = 0  # the budget is spent
        assert check.step("bare run 1", check.left) is None
    monkeypatch.setattr(gpu, "measure", broken)
    assert gpu.run_check(tmp_path / "out", 60) == 1
    report = json.loads((tmp_path / "out" / "gpu-check.json").read_text())
    assert [(r["check"], r["ok"]) for r in report["checks"]] == [("step: prepare face-age", False),
                                                                 ("step: bare run 1", False)]
    assert "No such command 'no-such-command'" in report["checks"][0]["detail"]
    assert report["checks"][1]["detail"] == "TimeoutError: the check's time budget is spent"
    out = capsys.readouterr().out
    assert "step: prepare face-age  FAILED" in out and "the state root is kept" in out
