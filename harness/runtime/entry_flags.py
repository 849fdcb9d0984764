"""Which of NSML's reserved flags an entry file declares, read from its source without running it.

NSML launched fork and submit runs as ``ENTRY --mode test --pause 1 --iteration CKPT`` (older documents:
``--checkpoint``).  Real entries declare only some of these (AI Rush 2022: ``--mode`` and ``--pause`` alone), and a
plain ``argparse.parse_args()`` exits 2 on a flag it does not know.  So the harness passes only the flags the entry
declares; the same facts always travel in the environment (``NSML_MODE``, ``NSML_ITERATION``), which is what
``nsml.paused()`` reads.

What is recognised: ``add_argument("--x")`` (argparse, in the entry and the modules of the code folder it
imports), ``@click.option("--x")``, and ``fire.Fire(fn)`` (fn's parameters).  ``parse_known_args`` accepts any
flag.  When no parser can be read (none at all, or option names built at run time) every reserved flag is
passed, as NSML did.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

RESERVED = ("--mode", "--pause", "--iteration", "--checkpoint")
MAX_MODULES = 50


@dataclass
class EntryFlags:
    """What an entry accepts: `declared` option strings (None: unknown, so everything is passed)."""

    declared: set[str] | None = None
    style: str = "unknown"  # argparse | click | fire | known-args | unknown
    evidence: dict[str, str] = field(default_factory=dict)  # option → file:line where it is declared

    def accepts(self, flag: str) -> bool:
        return self.declared is None or flag in self.declared

    def reserved(self, mode: str, pause: bool, checkpoint: str | None) -> list[str]:
        """The reserved part of the command line for this entry."""
        argv = []
        if self.accepts("--mode"):
            argv += ["--mode", mode]
        if pause and self.accepts("--pause"):
            argv += ["--pause", "1"]
        if checkpoint is not None:
            for flag in ("--iteration", "--checkpoint"):
                if self.declared is None and flag == "--checkpoint":
                    break  # unknown parser: NSML's own name only
                if self.accepts(flag):
                    argv += [flag, checkpoint]
                    break
        return argv


def _strings(call: ast.Call) -> list[str]:
    return [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]


def _name(func: ast.AST) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _local_imports(tree: ast.Module, code: Path) -> list[Path]:
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        for name in names:
            base = code.joinpath(*name.split("."))
            for cand in (base.with_suffix(".py"), base / "__init__.py"):
                if cand.is_file() and not cand.is_symlink():
                    found.append(cand)
    return found


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def modules(code: Path, entry: str, strict: bool = False) -> list[tuple[Path, ast.Module]]:
    """ENTRY and the code folder's modules it imports (transitively, at most MAX_MODULES), parsed. STRICT: a file
    that does not parse raises SyntaxError; otherwise it is skipped."""
    out, queue, seen = [], [code / entry], set()
    while queue and len(seen) < MAX_MODULES:
        path = queue.pop(0)
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        name = str(path.relative_to(code))
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=name)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            if strict:  # (a file nested past the parser's depth is the participant's: one line, no traceback)
                raise exc if isinstance(exc, SyntaxError) else SyntaxError(
                    "nested too deeply to read" if isinstance(exc, (RecursionError, MemoryError)) else str(exc),
                    (name, None, None, None)) from None
            continue
        out.append((path, tree))
        queue += _local_imports(tree, code)
    return out


def scan(code: Path, entry: str) -> EntryFlags:
    """Read ENTRY (and the code folder's modules it imports) for the options it declares."""
    out = EntryFlags(declared=set())
    dynamic = False
    parsers = 0
    for path, tree in modules(code, entry):
        functions = _functions(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            where = f"{path.relative_to(code)}:{node.lineno}"
            if name in ("add_argument", "option"):
                opts = [s for s in _strings(node) if s.startswith("-")]
                if name == "add_argument" or opts:
                    parsers += 1
                    out.style = "click" if name == "option" else "argparse"
                if not opts and name == "add_argument" and not _strings(node):
                    dynamic = True  # names computed at run time
                for opt in opts:
                    out.declared.add(opt)
                    out.evidence.setdefault(opt, where)
            elif name == "parse_known_args":
                out.style, dynamic = "known-args", True
            elif name == "Fire" and node.args:
                target = node.args[0]
                fn = functions.get(_name(target)) if isinstance(target, (ast.Name, ast.Attribute)) else None
                parsers += 1
                out.style = "fire"
                if fn is None or fn.args.kwarg is not None:
                    dynamic = True
                    continue
                for arg in fn.args.args + fn.args.kwonlyargs:
                    out.declared.add(f"--{arg.arg}")
                    out.evidence.setdefault(f"--{arg.arg}", where)
    if dynamic or parsers == 0:
        return EntryFlags(None, out.style if dynamic else "unknown", out.evidence)
    return out
