"""The house rules: floors import only downwards (import-linter contracts in .importlinter), each floor says
what it holds, modules stay small, settings are read in one place."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "harness"
FLOORS = ["core", "api", "store", "taskpacks", "runtime", "scoring", "runs", "scheduler", "state", "contest", "service",
          "sim", "web", "server", "client", "cli"]
MAX_LINES = 400


def _modules():
    return [p for p in PACKAGE.rglob("*.py") if "resources" not in p.parts and "versions" not in p.parts]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


@pytest.mark.parametrize("module, line, named", [
    ("runs/create.py", "from harness.service import sessions  # upward", "harness.runs.create -> harness.service"),
    ("runtime/gpus.py", "import ray  # only the Ray executor may", "harness.runtime.gpus -> ray"),
])
def test_a_broken_contract_is_caught(tmp_path, module, line, named):
    """The contracts are live: a floor importing one above it, or Ray imported outside the Ray executor, breaks
    them (checked on a copy)."""
    import shutil
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "harness", ignore=shutil.ignore_patterns("resources", "__pycache__"))
    with open(copy / "harness" / module, "a") as fh:
        fh.write(f"\n{line}\n")
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter"), "--no-cache"], cwd=copy,
                       capture_output=True, text=True, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "BROKEN" in r.stdout and named in r.stdout, r.stdout[-2000:]


@pytest.mark.parametrize("floor", FLOORS)
def test_every_floor_is_a_folder_that_says_what_it_holds(floor):
    init = PACKAGE / floor / "__init__.py"
    assert init.is_file(), f"harness/{floor}/ is not a package"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc) > 60, f"harness/{floor}/__init__.py has no docstring saying what it holds"
    if floor not in ("cli",):
        assert "May import" in doc, f"harness/{floor}/__init__.py does not say what it may import"


def test_no_flat_modules_left_beside_the_floors():
    flat = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert flat == [], f"modules outside any floor: {flat}"


def test_modules_stay_small():
    big = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}, f"modules over {MAX_LINES} lines: {big}"


def test_environment_is_read_in_one_place():
    """os.environ only in settings (the harness's own) and the in-session SDK; runtimes build a child's
    environment from settings.inherited_environment()."""
    allowed = {"harness/core/settings.py"}
    found = set()
    for p in _modules():
        rel = str(p.relative_to(ROOT))
        if "session_sdk" in p.parts:
            continue
        if re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text()):
            found.add(rel)
    assert found <= allowed, f"environment read outside settings: {sorted(found - allowed)}"


def test_runtimes_are_used_through_their_declared_contract():
    """No getattr/hasattr probing of a runtime or a handle: every method a caller uses is declared on the base."""
    offenders = []
    for p in _modules():
        for line in p.read_text().splitlines():
            if re.search(r"(getattr|hasattr)\((self\.)?(runtime|rt|handle|h)\b", line):
                offenders.append(f"{p.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []
