"""Score a prediction file with the task's own ``evaluation.py``, in a separate process with a time limit.

The evaluator is called as NSML called it: ``python evaluation.py --prediction FILE --test_label_path FILE``
and must print one float (the last line of its output that parses as a number is taken).  An evaluator that
rejects the predictions says so with a line starting ``invalid prediction`` on stderr and a non-zero exit:
that is the participant's failure (``invalid_prediction``); any other crash is ``scorer_error`` (running out
of time or memory too, unless the prediction is far larger than its labels: ``out_of_bounds``).

Optional output: an evaluator may also write the per-example values behind its score to ``per_example.txt`` in
its working directory (one number per test example, in the label file's order; the score is their mean, or with
task.toml ``[evaluator] per_example = "sqrt-mean"`` the square root of their mean). The harness takes the file
(a regular file, at most PER_EXAMPLE_BYTES) for intervals, tie marks and the Ladder (harness.scoring.score_interval
checks it); an evaluator run in a container writes into a throwaway /tmp and has none.
"""
from __future__ import annotations

import math
import re
import resource  # (here, not in the child: an import between fork and exec can wait forever on a lock)
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.core.enums import FailureReason
from harness.core.tree_usage import usage

from .evaluator_call import EvaluatorCall, command, container_name, isolation

INVALID_MARKER = "invalid prediction"
MAX_PREDICTION_BYTES = 1 << 30
PER_EXAMPLE_FILE = "per_example.txt"
PER_EXAMPLE_BYTES = 64 << 20
CONTAINER_START = 30  # seconds a container evaluator is given past its time limit (its start and its end)
BLAME_RATIO, BLAME_SLACK = 16, 16 << 20  # a prediction this much larger than its labels owns the evaluator's
#                                          failure (a ranking's 100 guesses a row, pretty-printed, stay under it)
_OUT_OF_MEMORY = re.compile(r"^(?:[\w.]+\.)?_?\w*MemoryError(?::|$)", re.M)  # MemoryError, numpy's, as a traceback
#                                                                            names the exception it ended with


@dataclass
class ScoreResult:
    score: float | None
    reason: FailureReason | None = None
    message: str = ""
    detail: str = ""  # a failed evaluator's last lines of output (TAIL_LINES), for the submit run's log (grade.apply)

    @property
    def ok(self) -> bool:
        return self.reason is None


TAIL_LINES = 40


def _tail(text: str) -> str:
    """The last TAIL_LINES lines of TEXT, each cut at 500 characters: what a failed evaluator said, in its log."""
    return "\n".join(ln[:500] for ln in text[-(64 << 10):].rstrip().splitlines()[-TAIL_LINES:])


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def _where_failed(stderr: str, evaluation_py: Path) -> str:
    """The evaluator's own line a traceback (or a SyntaxError) ends in, as " at evaluation.py:N" (else ""). Read in
    the last 64 KiB of its stderr only, with a pattern that cannot backtrack across lines: the stderr may quote a
    participant's prediction, and this runs in the harness, past the evaluator's time limit."""
    import re
    lines = re.findall(r'^[ \t]*File "([^"\n]*)", line (\d{1,9})\b', stderr[-(64 << 10):], flags=re.MULTILINE)
    own = [n for f, n in lines if Path(f).name == evaluation_py.name]
    return f" at {evaluation_py.name}:{own[-1]}" if own else ""


def _parse_score(stdout: str) -> float | None:
    for line in reversed([ln.strip() for ln in stdout.splitlines() if ln.strip()]):
        token = line.split()[-1]
        try:
            return float(token)
        except ValueError:
            continue
    return None


def check_prediction(prediction: Path) -> ScoreResult | None:
    """The participant's output must exist, be non-empty and be of a sane size."""
    if not prediction.exists():
        return ScoreResult(None, FailureReason.MISSING_OUTPUT, "feed_infer wrote no prediction file")
    size = prediction.stat().st_size if prediction.is_file() else 0
    if prediction.is_dir():
        size = sum(p.stat().st_size for p in prediction.rglob("*") if p.is_file())
    if size == 0:
        return ScoreResult(None, FailureReason.MISSING_OUTPUT, "the prediction file is empty")
    if size > MAX_PREDICTION_BYTES:
        return ScoreResult(None, FailureReason.INVALID_PREDICTION,
                           f"the prediction is {size} bytes, over the {MAX_PREDICTION_BYTES}-byte limit")
    return None


def out_of_bounds(what: str, prediction: Path, label: Path) -> ScoreResult:
    """The evaluator ran out of its time or memory (WHAT): the organizer's scorer_error, which counts against no
    quota — unless the prediction is far larger than the test labels it answers (over BLAME_RATIO times their
    size, past BLAME_SLACK bytes). Then it is the prediction's doing, counted: a run that could swell its
    prediction until the evaluator fails would choose between a counted score and a free crash."""
    pred, labels = usage(prediction).size, usage(label).size
    if pred > BLAME_RATIO * labels + BLAME_SLACK:
        return ScoreResult(None, FailureReason.INVALID_PREDICTION,
                           f"{what}, on a prediction of {pred} bytes: over {BLAME_RATIO} times the {labels} bytes "
                           f"of the test labels it answers, it is the prediction's doing")
    return ScoreResult(None, FailureReason.SCORER_ERROR, what)


def _take_values(workdir: Path, dest: Path) -> None:
    from harness.core.safefs import UnsafeFile, copy_out
    try:
        copy_out(workdir, PER_EXAMPLE_FILE, dest, PER_EXAMPLE_BYTES)
    except (FileNotFoundError, UnsafeFile, OSError):
        dest.unlink(missing_ok=True)


def _limit_memory(nbytes: int | None):
    if not nbytes:
        return None

    def apply():  # (in the forked child of a threaded process: nothing imported here, no lock taken)
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    return apply


def evaluate(evaluation_py: Path, prediction: Path, label: Path, time_limit: float,
             memory: int | None = None, call: EvaluatorCall | None = None, values_to: Path | None = None) -> ScoreResult:
    """Run the evaluator on a prediction; CALL says how (harness.scoring.evaluator_call; default: the 2021-22 flags).
    VALUES_TO: where to keep the evaluator's per_example.txt, when it wrote one (else nothing is there)."""
    if values_to is not None:
        values_to.unlink(missing_ok=True)
    bad = check_prediction(prediction)
    if bad is not None:
        return bad
    call = call or EvaluatorCall("", ["--prediction", "{prediction}", "--test_label_path", "{label}"], "label-path")
    where = isolation(call, prefer=call.prefer) if call.fixed_label_path else "host"
    if where is None:
        return ScoreResult(None, FailureReason.SCORER_ERROR, "evaluation.py reads /data/TASK/test/test_label: "
                           "bubblewrap or a Docker engine is needed to run it")
    with tempfile.TemporaryDirectory(prefix="harness-score-") as cwd:
        cmd = command(call, call.python, evaluation_py, prediction, label, Path(cwd), time_limit, memory, where)
        in_docker = where == "docker"
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                                  timeout=time_limit + (CONTAINER_START if in_docker else 0), stdin=subprocess.DEVNULL,
                                  preexec_fn=None if in_docker else _limit_memory(memory))
        except subprocess.TimeoutExpired:
            if in_docker:
                try:
                    subprocess.run(["docker", "rm", "-f", container_name(Path(cwd))], capture_output=True,
                                   timeout=CONTAINER_START)
                except subprocess.TimeoutExpired:  # (an engine that hangs: the sweep takes it later)
                    pass
            return out_of_bounds(f"evaluation.py ran past {time_limit:g} s", prediction, label)
        if values_to is not None and proc.returncode == 0:
            _take_values(Path(cwd), values_to)
    if in_docker and proc.returncode == 137:
        return out_of_bounds(f"evaluation.py ran past {time_limit:g} s or out of its memory (killed in its "
                             f"container)", prediction, label)
    if proc.returncode != 0:
        err = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit code {proc.returncode}"
        if INVALID_MARKER in proc.stderr.lower():
            lines = [ln for ln in proc.stderr.splitlines() if INVALID_MARKER in ln.lower()]
            return ScoreResult(None, FailureReason.INVALID_PREDICTION, lines[-1].strip()[:500])
        if _OUT_OF_MEMORY.search(proc.stderr):  # (a traceback's exception line: one that merely quotes the
            #                                     prediction is not; and the worst it does is out_of_bounds' rule)
            return out_of_bounds(f"evaluation.py ran out of its {memory}-byte memory", prediction, label)
        return ScoreResult(None, FailureReason.SCORER_ERROR,
                           f"evaluation.py failed{_where_failed(proc.stderr, evaluation_py)}: {err}",
                           _tail(proc.stderr) or _tail(proc.stdout))
    score = _parse_score(proc.stdout)
    if score is None:
        return ScoreResult(None, FailureReason.SCORER_ERROR,
                           f"evaluation.py printed no number (last line: {_last_line(proc.stdout)!r})",
                           _tail(proc.stdout) + ("\n" + _tail(proc.stderr) if proc.stderr.strip() else ""))
    if not math.isfinite(score):
        return ScoreResult(None, FailureReason.INVALID_PREDICTION, f"the score is {score}, not a finite number")
    return ScoreResult(score)
