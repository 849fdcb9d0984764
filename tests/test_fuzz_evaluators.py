"""Hypothesis-fuzzed prediction files against every built-in evaluator: a clear error or a valid score — never a
crash of the harness, never a NaN that could be ranked."""
import math
import subprocess
import sys

from hypothesis import HealthCheck, given, settings, strategies as st

from harness.enums import FailureReason
from harness.scoring import evaluate
from harness.taskpack import BUILTIN_TASKS

OK_REASONS = {FailureReason.INVALID_PREDICTION, FailureReason.MISSING_OUTPUT}

lines = st.lists(st.one_of(st.sampled_from(["0", "1", "1 ", " 0", "", "2", "-1", "nan", "inf", "1.0", "０", "x"]),
                           st.text(max_size=8)), max_size=40)
predictions = st.one_of(
    lines.map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
    st.integers(0, 40).map(lambda n: ("0\n" * n).encode()),  # right values, possibly the right count
)


def _built(tmp_path_factory, name):
    out = tmp_path_factory.mktemp(name)
    subprocess.run([sys.executable, str(BUILTIN_TASKS / name / "build.py"), "--out", str(out), "--scale", "0.05"],
                   check=True)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=predictions)
def test_garbage_docs_evaluator_never_crashes(tmp_path_factory, data):
    dataset = getattr(test_garbage_docs_evaluator_never_crashes, "_dataset", None)
    if dataset is None:
        dataset = test_garbage_docs_evaluator_never_crashes._dataset = _built(tmp_path_factory, "garbage-docs")
    pred = tmp_path_factory.mktemp("pred") / "prediction"
    pred.write_bytes(data)
    result = evaluate(BUILTIN_TASKS / "garbage-docs" / "evaluation.py", pred, dataset / "test" / "test_label", 60)
    if result.ok:
        assert math.isfinite(result.score) and 0.0 <= result.score <= 1.0
    else:
        assert result.reason in OK_REASONS, (result, data[:80])
        assert result.message and "\n" not in result.message
