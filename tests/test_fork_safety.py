"""What runs in a forked child before exec (a `preexec_fn`) in the harness's threaded processes — the scheduler,
the state root's service, the server — must take no lock another thread may have held at the fork: above all no
import (the import system's locks). A service's child once hung on a futex there, and with it every command of
its users (stop 49). Each preexec function's code is checked to import nothing."""
import dis
import types

import pytest

from harness.runtime import cgroups
from harness.scoring import evaluator

BUILDERS = [evaluator._limit_memory, cgroups.nproc_limit]


def _inner_code(builder) -> list[types.CodeType]:
    return [c for c in builder.__code__.co_consts if isinstance(c, types.CodeType)]


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: f"{b.__module__}.{b.__name__}")
def test_a_preexec_function_imports_nothing(builder):
    inner = _inner_code(builder)
    assert inner, "the preexec function is no longer built here: check the one that is"
    for code in inner:
        imports = [i.argval for i in dis.get_instructions(code) if i.opname in ("IMPORT_NAME", "IMPORT_FROM")]
        assert imports == [], f"{builder.__name__}'s child code imports {imports}"


def test_every_preexec_fn_of_the_harness_is_one_checked_here():
    import pathlib
    import re
    root = pathlib.Path(evaluator.__file__).resolve().parents[1]
    uses = {str(p.relative_to(root)) for p in root.rglob("*.py") if re.search(r"preexec_fn=(?!None\))", p.read_text())}
    assert uses == {"scoring/evaluator.py", "runtime/process.py"}, uses
