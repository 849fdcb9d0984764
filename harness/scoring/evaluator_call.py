"""How a task's evaluation.py is called: the conventions organizers' packs use, detected from its parser.

- 2021-22 (AI Rush): ``evaluation.py --prediction FILE --test_label_path FILE``.
- 2019 (AI Starthon): ``evaluation.py --prediction FILE`` alone; the labels are read from the fixed path
  ``/data/<task>/test/test_label``.  Such an evaluator gets its own mount namespace, never the host's ``/``: the
  task folder at ``/data/<task>`` and the label file being scored (the hidden test's, test_submit's for a dry
  run, or a public/private half) bound at ``test/test_label`` — in a container of the session image (no network,
  read-only, nobody) for a docker-runtime submission, under bubblewrap for a process-runtime one; where only one
  of the two exists here, that one.
- task.toml ``[evaluator] args = ["--pred", "{prediction}", "--gt", "{label}"]`` overrides the detection;
  ``{prediction}``, ``{label}`` and ``{task}`` are filled in; args without ``{label}`` mean the fixed path.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import UserError
from harness.runtime import entry_flags, sandbox
from harness.taskpacks import layout

PREDICTION_TARGET = "/nsml/prediction"


@dataclass
class EvaluatorCall:
    task: str
    args: list[str]  # with {prediction}, {label}, {task} placeholders
    convention: str  # "label-path" | "fixed-path" | "custom"
    python: str = sys.executable  # the task's own environment when it declares [evaluator] requirements
    env_dir: Path | None = None
    image: str = "nsml-harness/session:latest"  # for a fixed-path evaluator on a machine without bubblewrap
    prefer: str | None = None  # "bwrap" or "docker" when both could run a fixed-path evaluator (settings)

    @property
    def fixed_label_path(self) -> bool:
        return not any("{label}" in a for a in self.args)

    def argv(self, prediction: str, label: str) -> list[str]:
        return [a.format(prediction=prediction, label=label, task=self.task) for a in self.args]


def detect(dataset: Path, manifest) -> EvaluatorCall:
    """The call for this pack: task.toml's [evaluator] args, else what evaluation.py's parser declares."""
    where = f"{dataset / 'task.toml'}: evaluator.args"
    custom = (manifest.extra.get("evaluator") or {}).get("args") if isinstance(manifest.extra, dict) else None
    if custom is not None:
        if not isinstance(custom, list) or not all(isinstance(a, str) for a in custom):
            raise UserError(f"{where}: expected a list of strings")
        if not any("{prediction}" in a for a in custom):
            raise UserError(f"{where}: no {{prediction}} placeholder")
        try:
            [a.format(prediction="", label="", task="") for a in custom]
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(f"{where}: unknown placeholder {exc} (use {{prediction}}, {{label}}, {{task}})") from None
        return EvaluatorCall(manifest.name, list(custom), "custom")
    flags = entry_flags.scan(dataset, layout.EVALUATOR)
    if flags.declared is not None and "--prediction" in flags.declared and "--test_label_path" not in flags.declared:
        return EvaluatorCall(manifest.name, ["--prediction", "{prediction}"], "fixed-path")
    return EvaluatorCall(manifest.name, ["--prediction", "{prediction}", "--test_label_path", "{label}"],
                         "label-path")


def requirement_files(dataset: Path, manifest) -> dict[str, str]:
    """task.toml `[evaluator] requirements = ["nltk==3.8.1", ...]`, checked like a session's requirements."""
    from harness.runtime.images import ImageError, _clean

    reqs = (manifest.extra.get("evaluator") or {}).get("requirements") if isinstance(manifest.extra, dict) else None
    if not reqs:
        return {}
    where = f"{dataset / 'task.toml'}: evaluator.requirements"
    if not isinstance(reqs, list) or not all(isinstance(r, str) for r in reqs):
        raise UserError(f"{where}: expected a list of strings")
    try:
        return {"evaluator-requirements.txt": _clean(reqs, where)}
    except ImageError as exc:
        raise UserError(str(exc)) from None


def with_environment(call: EvaluatorCall, dataset: Path, manifest, envs_dir: Path) -> EvaluatorCall:
    """Install the task's evaluator requirements once (cached per hash, shared by every scoring and rescore)."""
    from harness.runtime import environments

    found = environments.ensure_files(envs_dir, requirement_files(dataset, manifest), kind="evaluator-")
    if found is not None:
        call.env_dir = found[0]
        call.python = str(found[0] / "bin" / "python")
    return call


def isolation(call: EvaluatorCall, prefer: str | None = None) -> str | None:
    """Where a fixed-path evaluator can run here: "bwrap", "docker", or None (nowhere). PREFER picks one of
    them when both are available (tests)."""
    from harness.runtime.docker_runtime import engine_answers

    have = [name for name, ok in (("bwrap", sandbox.works), ("docker", engine_answers)) if ok()]
    if prefer in have:
        return prefer
    return have[0] if have else None


def check_runnable(call: EvaluatorCall, where: str, has_requirements: bool = False) -> None:
    """A fixed-path evaluator needs its own /data: say so at `dataset add`, not at the first submit. With its own
    requirements it needs bubblewrap (they are installed in a host environment)."""
    if call.fixed_label_path and has_requirements and not sandbox.works():
        raise UserError(f"{where}: evaluation.py reads /data/{call.task}/test/test_label and has [evaluator] "
                        f"requirements: that needs bubblewrap (scripts/setup-sandbox.sh)")
    if call.fixed_label_path and isolation(call) is None:
        raise UserError(f"{where}: evaluation.py reads its labels from /data/{call.task}/test/test_label "
                        f"(the 2019 convention), which needs bubblewrap or a Docker engine to give it that path "
                        f"(scripts/setup-sandbox.sh, or declare [evaluator] args with {{label}})")


def _niceness() -> int:
    """The calling thread's niceness (Linux: a thread's own), which a process it starts inherits."""
    try:
        return max(0, os.getpriority(os.PRIO_PROCESS, 0))
    except OSError:
        return 0


def container_name(workdir: Path) -> str:
    return f"nsml-harness-eval-{workdir.name}"


def command(call: EvaluatorCall, python: str, evaluation_py: Path, prediction: Path, label: Path,
            workdir: Path, time_limit: float = 300, memory: int | None = None, where: str = "bwrap") -> list[str]:
    """The command line: plain, or for the fixed-path convention under bubblewrap or in a container."""
    if not call.fixed_label_path:
        return [python, str(evaluation_py), *call.argv(str(prediction), str(label))]
    dataset = evaluation_py.parent
    target = f"/data/{call.task}"
    args = call.argv(PREDICTION_TARGET, f"{target}/test/test_label")
    if where == "docker":
        cmd = ["docker", "run", "--rm", "--name", container_name(workdir), "--network", "none", "--read-only",
               "--user", "65534:65534", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "--tmpfs", "/tmp:rw,size=256m", "-w", "/tmp", "-v", f"{dataset.resolve()}:{target}:ro"]
        if layout.label_path(dataset, dry_run=False).exists():
            cmd += ["-v", f"{label.resolve()}:{target}/test/{layout.TEST_LABEL}:ro"]
        cmd += ["-v", f"{prediction.resolve()}:{PREDICTION_TARGET}:ro"]
        if memory:
            cmd += ["--memory", str(memory), "--memory-swap", str(memory)]
        nice = _niceness()  # a container's processes start at the daemon's priority, not this thread's
        if nice > 0:  # (a private half's: scheduler.private_half) its weight against other containers too
            cmd += ["--cpu-shares", str(max(2, round(1024 / 1.25 ** nice)))]
        return cmd + [call.image, "nice", "-n", str(nice), "timeout", "-s", "KILL", str(max(1, int(time_limit))),
                      "python3", f"{target}/evaluation.py", *args]
    cmd = sandbox.base_command(network=False, tmp=workdir)
    if call.env_dir is not None:
        cmd += ["--ro-bind", str(call.env_dir), str(call.env_dir)]
    cmd += ["--ro-bind", str(dataset.resolve()), target]
    if layout.label_path(dataset, dry_run=False).exists():
        cmd += ["--ro-bind", str(label.resolve()), f"{target}/test/{layout.TEST_LABEL}"]
    cmd += ["--ro-bind", str(prediction.resolve()), PREDICTION_TARGET, "--chdir", "/tmp", "--"]
    return cmd + [python, f"{target}/evaluation.py", *args]
