"""`nsml check FOLDER -d TASK`: would this submission be scored? Static checks with file:line, then a smoke run.

Static (the code is read, never run): the reserved flags the entry declares and how they will be passed,
`nsml.bind(...)` reached, `nsml.paused(...)` called before the entry reads data at top level, the bound infer's
signature, absolute data paths that bypass DATASET_PATH, and requirement lines the harness accepts.
Smoke run: a training session under the time limit until its first `nsml.save`, stopped there, then `submit -t`
of that checkpoint — what `run` and `submit` would do, so its outcome is the verdict.

Each step is a row: level (pass, warn, FAIL), evidence, fix. A static finding is a warning: reading code cannot
tell whether a line runs (a path in an imported module's `__main__` block never does), and the smoke run shows
what does. Only a finding that makes the smoke run pointless fails without it: no entry file, requirements the
harness refuses. The check passes when no row fails. Its sessions are USER/TASK/check-K: hidden from `ps`, they
take no number of the participant's own sequence.
"""
from __future__ import annotations

import ast
import enum
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select

from harness.core.enums import RunStatus
from harness.core.errors import UserError
from harness.runtime import entry_flags, environments
from harness.state import Harness
from harness.store.models import Checkpoint

from . import permissions, sessions, submits

DATA_PREFIXES = ("/data/", "/app/data")


class Level(str, enum.Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass
class Step:
    step: str
    level: Level
    evidence: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.level is not Level.FAIL


def _finding(name: str, found: bool, evidence: str, fix: str) -> Step:
    """A static finding: a warning (the smoke run decides), or a pass."""
    return Step(name, Level.WARN if found else Level.PASS, evidence, fix if found else "")


def _modules(code: Path, entry: str) -> list[tuple[Path, ast.Module]]:
    try:
        return entry_flags.modules(code, entry, strict=True)
    except SyntaxError as exc:
        where = f"{exc.filename or entry}" + (f":{exc.lineno}" if exc.lineno else "")
        raise UserError(f"{where}: does not parse: {exc.msg}") from None


def _calls(trees, name: str):
    for path, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and entry_flags._name(node.func) == name:
                yield path, node


def _where(code: Path, path: Path, node) -> str:
    return f"{path.relative_to(code)}:{node.lineno}"


def _top_level_lines(tree: ast.Module) -> list[ast.AST]:
    """Statements that run when the entry starts: module level and its `if __name__ == "__main__":` block."""
    out = []
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and "__main__" in ast.dump(stmt.test):
            out += stmt.body
        elif not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
            out.append(stmt)
    return out


def _main_block_nodes(tree: ast.Module) -> set[int]:
    """Nodes inside the module's `if __name__ == "__main__":` blocks (they never run when it is imported)."""
    return {id(n) for stmt in tree.body if isinstance(stmt, ast.If) and "__main__" in ast.dump(stmt.test)
            for part in stmt.body for n in ast.walk(part)}


def _data_paths(code: Path, entry: str, trees, task: str) -> Step:
    own = f"/data/{task}"
    bypass, idle, mounted = [], [], []
    for path, tree in trees:
        never = _main_block_nodes(tree) if path != code / entry else set()
        for n in ast.walk(tree):
            if not (isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith(DATA_PREFIXES)):
                continue
            where = f"{n.value!r} at {_where(code, path, n)}"
            if id(n) in never:
                idle.append(where)
            elif n.value == own or n.value.startswith(own + "/"):
                mounted.append(where)
            else:
                bypass.append(where)
    notes = []
    if bypass:
        notes.append(", ".join(bypass[:3]) + " bypass DATASET_PATH")
    if idle:
        notes.append(", ".join(idle[:3]) + " only run when that file is itself the entry (its __main__ block)")
    if mounted:
        notes.append(", ".join(mounted[:3]) + f" name the task's own mount ({own}), as on NSML")
    return _finding("data paths", bool(bypass), "; ".join(notes) or "data is reached through DATASET_PATH",
                    "build paths from nsml.DATASET_PATH; the task's folder name may differ")


def static_checks(code: Path, entry: str, task: str, root: Path | None = None, docker=None) -> list[Step]:
    """The static rows. DOCKER: (settings, the task's image) when the smoke run is the docker runtime's, whose
    environment is an image built at launch, not the process runtime's (ROOT: the state root's eras)."""
    steps = []
    if not (code / entry).is_file():
        return [Step("entry", Level.FAIL, f"{entry} is not in {code}", "pass the entry file with -e")]
    trees = _modules(code, entry)
    flags = entry_flags.scan(code, entry)
    submit_argv = flags.reserved("test", True, "CKPT")
    where = ", ".join(f"{k} at {v}" for k, v in sorted(flags.evidence.items()) if k in entry_flags.RESERVED)
    steps.append(Step("reserved flags", Level.PASS, f"{flags.style} parser; submit passes "
                      f"{' '.join(submit_argv) or 'none'}" + (f" ({where})" if where else "")))
    binds = list(_calls(trees, "bind"))
    if not binds:
        steps.append(_finding("nsml.bind", True, "no nsml.bind(...) call in the entry or its modules",
                              "call nsml.bind(save=..., load=..., infer=...) before nsml.paused()"))
    else:
        path, node = binds[0]
        steps.append(Step("nsml.bind", Level.PASS, f"called at {_where(code, path, node)}"))
        infer = node.args[2] if len(node.args) > 2 else next((k.value for k in node.keywords if k.arg == "infer"),
                                                            None)
        steps.append(_infer_step(code, trees, infer))
    steps.append(_paused_step(code, trees, entry))
    steps.append(_data_paths(code, entry, trees, task))
    steps.append(_image_step(code, *docker) if docker else _environment_step(code, root))
    return steps


def _environment_step(code: Path, root: Path | None) -> Step:
    """The process runtime's environment: the harness's own or an era, with the requirements it accepts."""
    try:
        choice = environments.choose_era(code, root)
        wanted = environments.wanted(code, choice.era)
    except UserError as exc:  # `run` refuses the folder: a smoke run would show nothing more
        return Step("requirements", Level.FAIL, str(exc), "edit the line it names (a torch or TensorFlow pin: the "
                    "version the environment has, or an era's, chosen by #nsml: — docs/compatibility.md)")
    era = "" if choice.is_default else f"; era {choice.era.name}: {choice.why}"
    return Step("requirements", Level.PASS, (", ".join(sorted(wanted)) + " accepted" if wanted
                else "none (the harness's environment)" if not era else "none") + era)


def _image_step(code: Path, settings, task_image: str | None) -> Step:
    """The docker runtime's environment: the image `run` names (an image line, an era, the task's or the default
    image), and the requirement files installed into it as the session launches."""
    from harness.runtime.images import ImageError, describe_base, requirements
    try:
        files = requirements(code)
        note = describe_base(code, settings, task_image)
    except (ImageError, UserError) as exc:  # the session would fail to launch
        return Step("requirements", Level.FAIL, str(exc), "edit the file or line it names (docs/compatibility.md)")
    base = note or f"environment: image {task_image or settings.docker_image}"
    return Step("requirements", Level.PASS, (f"{', '.join(sorted(files))} installed into the image at launch"
                                             if files else "none") + f"; {base} (docker runtime)")


def _infer_step(code: Path, trees, infer) -> Step:
    if infer is None:
        return _finding("infer", True, "nsml.bind(...) is given no infer", "pass infer=your_infer_function")
    name = entry_flags._name(infer)
    defs = [(p, n) for p, tree in trees for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    if not defs:
        return Step("infer", Level.PASS, f"infer={name or 'an expression'} (its definition was not found to check)")
    path, fn = defs[0]
    positional = len(fn.args.args) - (1 if fn.args.args and fn.args.args[0].arg == "self" else 0)
    if positional < 1 and fn.args.vararg is None:
        return _finding("infer", True, f"{name} at {_where(code, path, fn)} takes no argument",
                        "infer receives the test data (a path or what the task's loader passes)")
    return Step("infer", Level.PASS, f"{name}({', '.join(a.arg for a in fn.args.args)}) at {_where(code, path, fn)}")


PATH_ONLY = {"join", "abspath", "dirname", "basename", "Path", "str", "print", "format", "getenv", "get"}


def _own_nodes(node: ast.AST):
    """NODE's nodes, leaving out functions, lambdas and classes defined in it (their bodies run later); in source
    order, without recursion (an entry's nesting is the participant's)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield n
        stack.extend(reversed(list(ast.iter_child_nodes(n))))


def _mentions(node: ast.AST, paths: set[str]) -> bool:
    """Whether NODE names a data path: DATASET_PATH, a name bound to one (PATHS), or a literal "/data/..."."""
    return any(isinstance(n, ast.Name) and n.id in paths or isinstance(n, ast.Attribute) and n.attr in paths or
               isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("/data/")
               for n in ast.walk(node))


def _data_read(stmt: ast.AST, paths: set[str], readers: set[str]) -> ast.AST | None:
    """The first call in STMT that reads data: one that is not path arithmetic and is given a data path (a read, a
    listing), or a call of a module function that does one (READERS)."""
    for n in _own_nodes(stmt):
        if isinstance(n, ast.Call):
            name = entry_flags._name(n.func)
            if name in readers or name not in PATH_ONLY and any(_mentions(a, paths) for a in (*n.args, *n.keywords)):
                return n
    return None


def _first_read(tree: ast.Module, paused: ast.AST) -> ast.AST | None:
    """The first data read before the PAUSED call, in the statements that run at the entry's start (or, where
    paused() is called in a function such as main(), in that function): a call given DATASET_PATH, a literal /data/
    path or a name bound to one above it, or a call of a module function that reads one itself (nested functions
    are not followed: bind_model's infer reads when it is called, not when it is defined)."""
    paths = {"DATASET_PATH"}
    functions = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    readers = {f.name for f in tree.body if f in functions and any(_data_read(part, paths, set()) for part in f.body)}
    around = [f for f in functions if any(n is paused for n in ast.walk(f))]
    body = around[-1].body if around else _top_level_lines(tree)  # (ast.walk: the innermost function is last)
    for stmt in body:
        if stmt.lineno >= paused.lineno:
            return None
        found = _data_read(stmt, paths, readers)
        if found is not None:
            return found
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None and _mentions(stmt.value, paths):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            paths |= {name for t in targets for name in _bound(t)}
    return None


def _bound(target: ast.AST) -> set[str]:
    """The names an assignment to TARGET binds to its value: `path` of `path = ...`, `train_path` of
    `args.train_path = ...` (never `args`: the next call given args reads nothing because of it); an item
    (`cfg["x"] = ...`) binds none that can be told."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, ast.Attribute):
        return {target.attr}
    if isinstance(target, (ast.Tuple, ast.List)):
        return {name for t in target.elts for name in _bound(t)}
    return _bound(target.value) if isinstance(target, ast.Starred) else set()


def _paused_step(code: Path, trees, entry: str) -> Step:
    paused = list(_calls(trees, "paused"))
    if not paused:
        return _finding("nsml.paused", True, "no nsml.paused(...) call: a submit run would train instead of infer",
                        "if args.pause: nsml.paused(scope=locals())")
    path, node = paused[0]
    main_tree = next(tree for p, tree in trees if p == code / entry)
    first_read = _first_read(main_tree, node) if path == code / entry else None
    if first_read is not None:
        return _finding("nsml.paused", True, f"data is read at {entry}:{first_read.lineno}, before nsml.paused() "
                        f"at {_where(code, path, node)}: a submit run sees no training data",
                        "call nsml.paused() before reading any data")
    return Step("nsml.paused", Level.PASS, f"called at {_where(code, path, node)}, before any data is read")


LOG_LINES = 5  # the evidence of a failed step: the log's last lines


def _joined(lines) -> str:
    """Log lines as one line of evidence (the last LOG_LINES that say something)."""
    return " | ".join(line.strip() for line in list(lines)[-LOG_LINES:] if line.strip())


def _log_tail(h: Harness, name: str) -> str:
    with h.tx() as db:
        log = Path(h.session(db, name).run.log_path)
    return _joined(submits._tail(log, LOG_LINES))


def smoke_runtime(settings) -> str:
    """The runtime of the smoke run: the one `run` would use given no --runtime (the state root's; `auto`:
    docker where an engine answers, as runtime.resolve decides for `run`)."""
    from harness import runtime
    return runtime.resolve(settings.runtime, settings)[0]


def smoke_run(h: Harness, task: str, folder: Path, entry: str, args: str | None, time_limit: float,
              more: tuple[str, ...] = ()) -> list[Step]:
    opts = sessions.RunOptions(time_limit=time_limit, runtime=smoke_runtime(h.settings), datasets=tuple(more))
    name = sessions.start_session(h, task, str(folder), entry, args, "nsml check", opts, check=True)
    try:
        return _smoke(h, name, time_limit)
    finally:  # an interrupted check leaves no hidden session running
        if not RunStatus(sessions.session_info(h, name)["status"]).terminal:
            sessions.stop_sessions(h, name)


def _smoke(h: Harness, name: str, time_limit: float) -> list[Step]:
    steps = []
    deadline = time.monotonic() + time_limit + 30
    first = None
    while time.monotonic() < deadline:
        with h.tx() as db:
            sess = h.session(db, name)
            first = db.scalar(select(Checkpoint.name).where(Checkpoint.session_id == sess.id)
                              .order_by(Checkpoint.id).limit(1))
            status = sess.run.status
        if first is not None or status.terminal:
            break
        time.sleep(0.5)
    info = sessions.session_info(h, name)
    if not RunStatus(info["status"]).terminal:
        sessions.stop_sessions(h, name)  # saved (the check goes on to submit it), or out of time
    if first is None:
        why = info["status"] + (f" ({info['reason']}: {info['message']})" if info["reason"] else "")
        tail = _log_tail(h, name)
        if info["reason"] in ("exit_code", "out_of_memory", "launch_error"):
            fix = f"the error in its log (nsml logs {name})"
        elif info["reason"] == "timeout" or not RunStatus(info["status"]).terminal:
            fix = "call nsml.save(...) earlier in training, or give the check more time (--time-limit)"
        else:
            fix = "call nsml.save(...) during training (the check stops at the first save)"
        steps.append(Step("training saves a checkpoint", Level.FAIL,
                          f"{name}: no nsml.save before it ended: {why}" + (f" — log: {tail}" if tail else ""), fix))
        return steps
    steps.append(Step("training saves a checkpoint", Level.PASS, f"{name} saved {first!r}"))
    result = submits.submit(h, name, first, dry_run=True)
    ok = result["status"] == "succeeded"
    evidence = (f"submit -t {name} {first}: score {result['score']}" if ok else
                f"submit -t {name} {first}: {result['reason']}: {result['message']}")
    tail = _joined(result.get("log_tail") or [])
    steps.append(Step("submit -t is scored", Level.PASS if ok else Level.FAIL,
                      evidence + (f" — log: {tail}" if tail and not ok else ""),
                      "" if ok else "see `nsml logs --submission " + str(result["id"]) + "`"))
    return steps


SMOKE_SECONDS = 300.0  # the smoke run's time to its first nsml.save, unless --time-limit or the task says less


def check(h: Harness, folder: str, task: str, entry: str = "main.py", args: str | None = None,
          time_limit: float | None = None, more: tuple[str, ...] = ()) -> list[dict]:
    """`nsml check`: the static checks, then the smoke run (MORE: tasks more whose training data it reads)."""
    code = Path(folder).expanduser().resolve()
    if not code.is_dir():
        raise UserError(f"FOLDER: {folder!r} is not a folder")
    with h.tx() as db:
        found = permissions.task_of(h, db, task)  # an unknown task is one line, before anything runs
        if time_limit is None:
            time_limit = min(SMOKE_SECONDS, sessions.session_seconds(h, found))
        docker = (h.settings, h.manifest(found).image) if smoke_runtime(h.settings) == "docker" else None
    steps = static_checks(code, entry, task, h.settings.root, docker)
    if all(s.ok for s in steps):  # only a failed finding makes the smoke run pointless
        steps += smoke_run(h, task, code, entry, args, time_limit, more)
    return [{**asdict(s), "level": s.level.value, "ok": s.ok} for s in steps]
