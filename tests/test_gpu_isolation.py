"""A sandboxed run given some GPUs can open those devices only: the sandbox binds the driver's shared nodes and
the run's own /dev/nvidiaN, never another run's (a run that ignores CUDA_VISIBLE_DEVICES cannot reach them).

No GPU here: the device nodes are stand-in files in a folder put in place of /dev, and a real bubblewrap run
lists what it sees."""
import subprocess
import sys

import pytest

from harness.runtime import gpus, sandbox
from harness.runtime.base import Mount, RunPaths, RunSpec

pytestmark = pytest.mark.skipif(not sandbox.works(), reason="needs bubblewrap (CI installs it)")

LIST = "import os; print(' '.join(sorted(n for n in os.listdir('/dev') if n.startswith('nvidia'))))"


@pytest.fixture
def host_dev(tmp_path, monkeypatch):
    """Four GPUs whose minor numbers are not their indices (NVML: index 0 is /dev/nvidia3, and so on)."""
    dev = tmp_path / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    (dev / "nvidia-caps" / "nvidia-cap1").write_text("mig config")
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
                 "nvidia-modeset"):
        (dev / name).write_text(name)
    monkeypatch.setattr(sandbox, "HOST_DEV", dev)
    monkeypatch.setattr(gpus, "_driver_minors", lambda: (3, 0, 2, 1))
    return dev


def seen(tmp_path, gpu_ids) -> set[str]:
    box = tmp_path / f"box{len(gpu_ids)}"
    box.mkdir()
    cmd = sandbox.base_command(network=False, tmp=box, gpu_ids=gpu_ids) + ["--", sys.executable, "-c", LIST]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_a_run_sees_only_its_own_devices_and_the_shared_nodes(host_dev, tmp_path):
    shared = {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"}
    assert seen(tmp_path, [1]) == shared | {"nvidia0"}  # index 1 is minor 0
    assert seen(tmp_path, [0, 2]) == shared | {"nvidia3", "nvidia2"}
    assert seen(tmp_path, []) == set()  # -g 0: no device node at all, not even the driver's control node


def test_the_sandbox_numbers_a_runs_devices_from_zero_as_a_container_does(tmp_path):
    from harness.runtime.process import build_env, sandbox_env
    app = tmp_path / "app"
    app.mkdir()
    spec = RunSpec(run_id=1, name="alice/t/1", argv=["main.py"], workdir=app, gpu_ids=[2, 3],
                   paths=RunPaths(run=tmp_path, log=tmp_path / "log"), mounts=[Mount(app, "/app", False)])
    assert sandbox_env(spec, {}, tmp_path)["CUDA_VISIBLE_DEVICES"] == "0,1"  # only its two nodes are there
    assert build_env(spec, {})["CUDA_VISIBLE_DEVICES"] == "2,3"  # unconfined: every device is there


def test_without_nvml_the_minor_number_is_the_index(monkeypatch):
    monkeypatch.setattr(gpus, "_minors", None)
    monkeypatch.setattr(gpus, "DRIVER_PATHS", ("/nonexistent/nvidiactl",))
    assert [gpus.device_minor(i) for i in range(3)] == [0, 1, 2]


def test_a_driver_that_will_not_say_a_minor_number_gets_the_run_no_device_node(host_dev, tmp_path, monkeypatch):
    """Guessing minor = index could hand the run another run's device; without NVML's word it gets none."""
    monkeypatch.setattr(gpus, "_driver_minors", lambda: None)
    assert seen(tmp_path, [1]) == {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"}
    monkeypatch.setattr(gpus, "_driver_minors", lambda: (3, 0))
    assert gpus.device_minor(5) is None and gpus.device_minor(1) == 0



def test_a_passing_nvml_failure_is_asked_again(tmp_path, monkeypatch):
    """A minor number NVML could not give once is asked again at the next run (not kept as "none" for the
    scheduler's life, which would leave every later GPU run without its device)."""
    import contextlib
    import types
    driver = tmp_path / "nvidiactl"
    driver.write_text("")
    monkeypatch.setattr(gpus, "DRIVER_PATHS", (str(driver),))
    monkeypatch.setattr(gpus, "_minors", None)
    answers = iter([RuntimeError("NVML busy"), 7])

    def minor(handle):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer
    fake = types.SimpleNamespace(nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: i,
                                 nvmlDeviceGetMinorNumber=minor)
    monkeypatch.setattr(gpus, "_nvml", lambda: contextlib.nullcontext(fake))
    assert gpus.device_minor(0) is None
    assert gpus.device_minor(0) == 7 and gpus.device_minor(0) == 7  # (then kept)
