"""run, fork, ps, logs, stop, rm, memo."""
from __future__ import annotations

import sys

import click

from harness.core.enums import RunStatus
from harness.core.errors import PermissionDenied, UserError

from . import GLOBAL_FLAGS, main, pass_harness
from .output import emit_json, json_flag, log_text, say, table


def run_options(f, cpu_flags=("-c", "--cpus")):
    f = click.option("-g", "--gpus", type=int, default=0, show_default=True, help="GPUs to allocate.")(f)
    f = click.option(*cpu_flags, "cpus", type=float, default=None, help="CPU cores (sets thread counts).")(f)
    f = click.option("--memory", default=None, help="Memory limit, e.g. 24G (default and most: the task's).")(f)
    f = click.option("--shm-size", default=None, help="Shared memory size, e.g. 1G.")(f)
    f = click.option("--time-limit", type=float, default=None,
                     help="Wall-clock limit in seconds (default: the task's).")(f)
    f = runtime_option(f)
    f = click.option("--gpu-model", default=None, help="Allocate only GPUs of this model (e.g. V100).")(f)
    f = esm_option(f)
    return f


def esm_option(f):
    return click.option("--esm", default=None, help="Your registration number (AI Rush), recorded.")(f)


def runtime_option(f):
    return click.option("--runtime", default=None,
                        help="process | docker | auto (default: settings' runtime, else process).")(f)


def _opts(gpus, cpus, memory, shm_size, time_limit, runtime_name, gpu_model, esm) -> dict:
    """The run options as the API takes them (harness.runs.create.RunOptions' fields; runtime resolved there)."""
    return {"gpus": gpus, "cpus": cpus, "memory": memory, "shm_size": shm_size, "time_limit": time_limit,
            "runtime": runtime_name, "gpu_model": gpu_model, "esm": esm}


def note(line: str) -> None:
    click.echo(line, err=True)


class EntryCommand(click.Command):
    """A command that passes arguments to the entry (-a): a flag it does not know is most likely the entry's, so
    its error says how to pass it (NSML newcomers write `nsml run -d TASK . --epochs 3`)."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            import difflib
            near = difflib.get_close_matches(exc.option_name, exc.possibilities or [], n=1, cutoff=0.8)
            if not near and exc.option_name not in GLOBAL_FLAGS:  # (--root etc.: the group words those)
                exc.possibilities = []  # "did you mean --esm" for --epochs misleads more than it helps
                exc.message = (f"No such option: {exc.option_name} (arguments for the entry go in one -a: "
                               f"-a \"{exc.option_name} ...\")")
            raise


def tasks_of(given: tuple[str, ...]) -> tuple[str, list[str]]:
    """-d as NSML took it: one task, or several (`-d a,b`, or -d repeated) whose training data the session reads
    (DATASET_PATH becomes their list, its own first). The session's own task, and the others."""
    names = [n.strip() for value in given for n in value.split(",")]
    if not names or any(not n for n in names):
        raise UserError(f"-d/--dataset: a task name, or names separated by commas (got {','.join(given)!r})")
    return names[0], names[1:]


@main.command("run", cls=EntryCommand)
@click.option("-d", "--dataset", "task", required=True, multiple=True,
              help="Task (dataset) name; several (a,b) give the session each one's training data.")
@click.option("-e", "--entry", default="main.py", show_default=True, help="Entry file in the folder.")
@click.option("-a", "--args", default=None, help='Arguments for the entry, e.g. "--epochs 2".')
@click.option("-m", "--memo", default="", help="A note shown in ps.")
@click.option("-v", "--verbose", is_flag=True, help="Follow the session's output until it ends (as logs -f).")
@click.option("--gpu-driver-version", default=None, metavar="VERSION",
              help="NSML's choice of NVIDIA driver: accepted and not used (a session uses this machine's driver).")
@run_options
@json_flag
@click.argument("folder", default=".", type=click.Path())
@pass_harness
def run_cmd(lazy, task, entry, args, memo, verbose, gpu_driver_version, gpus, cpus, memory, shm_size, time_limit,
            runtime, gpu_model, esm, as_json, folder):
    """Start a training session from FOLDER (returns at once, unless -v; it runs in the background)."""
    if verbose and as_json:
        raise UserError("-v/--verbose: not with -j (the JSON is one object; follow with `nsml logs -f SESSION`)")
    if gpu_driver_version is not None:
        note(f"Note: --gpu-driver-version {gpu_driver_version}: not used here; a session uses this machine's driver")
    task, more = tasks_of(task)
    opts = _opts(gpus, cpus, memory, shm_size, time_limit, runtime, gpu_model, esm)
    api = lazy.api()
    name = api.start_session(task, folder, entry, args, memo, {**opts, "datasets": more} if more else opts, note)
    emit_json({"session": name}) if as_json else click.echo(f"Session {name} is started")
    if verbose:
        sys.stdout.flush()
        raise SystemExit(_follow(api, name))


@main.command("fork", cls=EntryCommand)
@click.argument("session")
@click.option("-c", "--checkpoint", required=True, help="Checkpoint to start from.")
@click.option("-a", "--args", default=None, help="Arguments (default: the parent session's).")
@click.option("-m", "--memo", default="")
@(lambda f: run_options(f, cpu_flags=("--cpus",)))
@json_flag
@pass_harness
def fork_cmd(lazy, session, checkpoint, args, memo, gpus, cpus, memory, shm_size, time_limit, runtime, gpu_model,
             esm, as_json):
    """Start a new session from SESSION's code and checkpoint; training continues after paused()."""
    name = lazy.api().fork_session(session, checkpoint, args, memo,
                                   _opts(gpus, cpus, memory, shm_size, time_limit, runtime, gpu_model, esm), note)
    emit_json({"session": name}) if as_json else click.echo(f"Session {name} is started")


def write_out(chunks) -> None:
    """Copy log bytes to stdout as they come."""
    for chunk in chunks:
        sys.stdout.write(log_text(chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else chunk))
        sys.stdout.flush()


def _follow(api, name: str) -> int:
    write_out(api.session_log(name, follow=True))
    final = api.session_info(name)
    if final["status"] != RunStatus.SUCCEEDED.value:
        reason = f" ({final['reason']}: {final['message']})" if final["reason"] else ""
        say(f"Session {final['name']} {final['status']}{reason}", err=True)
        return 1
    say(f"Session {final['name']} succeeded", err=True)
    return 0


@main.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow until the session ends (exit 0 only on success).")
@click.option("-s", "--submission", type=int, default=None,
              help="A submit run's infer log instead (your dry runs; organizers: every submit).")
@click.argument("session", required=False)
@pass_harness
def logs_cmd(lazy, follow, submission, session):
    """Print a session's output."""
    api = lazy.api()
    if submission is not None:
        info = api.submission_info(submission)
        try:
            write_out(api.infer_log(submission, follow=False))
            shown = ""
        except PermissionDenied:
            shown = " (infer logs of real submits are shown to organizers only)"
        reason = f": {info['reason']}: {info['message']}" if info["reason"] else ""
        say(f"[harness] submission {submission} {info['status']}{reason}{shown}", err=True)
        return
    if not session:
        raise UserError("SESSION: missing (or use --submission ID)")
    info = api.session_info(session)
    if follow:
        sys.exit(_follow(api, info["name"]))
    write_out(api.session_log(info["name"], follow=False))
    if info["reason"]:
        say(f"[harness] {info['status']}: {info['reason']}: {info['message']}", err=True)


@main.command("stop")
@click.argument("session")
@pass_harness
def stop_cmd(lazy, session):
    """Stop a session (wildcards * and ? allowed)."""
    stopped = lazy.api().stop_sessions(session)
    for name in stopped:
        click.echo(f"Session {name} is stopping")
    if not stopped:
        click.echo("no running session matched")


@main.command("rm")
@click.argument("session")
@click.option("-y", "--yes", is_flag=True, help="Do not ask (default when not on a terminal).")
@pass_harness
def rm_cmd(lazy, session, yes):
    """Remove sessions and their checkpoints (wildcards * and ? allowed). Submissions stay ranked."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Remove {session} and its checkpoints?", abort=True)
    for name in lazy.api().remove_sessions(session):
        click.echo(f"Session {name} is removed")


@main.command("memo")
@click.argument("session")
@click.argument("text")
@pass_harness
def memo_cmd(lazy, session, text):
    """Set a session's memo."""
    lazy.api().set_memo(session, text)
    click.echo(f"Memo of {session} is set")


@main.command("check")
@click.argument("folder", default=".", type=click.Path())
@click.option("-d", "--dataset", "task", required=True, multiple=True,
              help="Task (dataset) name; several (a,b) as `run` takes them.")
@click.option("-e", "--entry", default="main.py", show_default=True, help="Entry file in the folder.")
@click.option("-a", "--args", default=None, help="Arguments for the entry's smoke training run.")
@click.option("--time-limit", type=float, default=None,
              help="Seconds the smoke training run may take to reach its first nsml.save (default: 300, or the "
                   "task's session limit where that is less).")
@json_flag
@pass_harness
def check_cmd(lazy, folder, task, entry, args, time_limit, as_json):
    """Would FOLDER be scored on TASK? Static contract checks (file:line), then a smoke run: train until the
    first nsml.save, submit -t that checkpoint. Exit 0 only if every step passes."""
    if lazy.login() is not None:
        raise UserError("check: runs against a local state root (its task data and a local scheduler); "
                        "use --root DIR, or nsml logout")
    from harness.service import check

    task, more = tasks_of(task)
    rows = check.check(lazy.get(), folder, task, entry, args, time_limit, tuple(more))
    if as_json:
        emit_json(rows)
    else:
        table(rows, [("step", "Step"), ("level", "Result"), ("evidence", "Evidence"), ("fix", "Fix")])
    sys.exit(0 if all(r["ok"] for r in rows) else 1)
