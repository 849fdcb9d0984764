"""cli: the `harness` command line (also installed as `nsml`), a thin click layer over the service.
One module per command group, loaded lazily (COMMANDS); no SQL and no transactions here (the import contracts
forbid the store, runs, scoring, the scheduler and contest rules): output only, through tables (cli.output) or JSON.
May import: sim, service, context, runtime (image build, --runtime), core."""
from __future__ import annotations

import importlib
import os
import re
import sys

import click

from harness.core.errors import UserError, storage_error
from harness.core.settings import Settings, load_settings

# Each command's module, imported only when that command runs (or when --help lists them all).
COMMANDS = {"run": "session_cmds", "fork": "session_cmds", "ps": "read_cmds", "logs": "session_cmds",
            "stop": "session_cmds", "rm": "session_cmds", "memo": "session_cmds", "check": "session_cmds",
            "submit": "submit_cmds", "board": "read_cmds", "history": "dataset_cmds", "dataset": "dataset_cmds",
            "contest": "contest_cmds", "rescore": "contest_cmds", "model": "model_cmds", "image": "image_cmds",
            "serve": "server_cmds", "user": "server_cmds", "login": "login_cmds", "logout": "login_cmds",
            "whoami": "login_cmds", "plot": "plot_cmds", "hide": "moderation_cmds", "unhide": "moderation_cmds",
            "baseline": "moderation_cmds", "audit": "moderation_cmds", "init": "init_cmds"}

GLOBAL_FLAGS = ("--root", "--db", "--user")  # the program's own options, given before any command
FOUNDING = {"dataset check", "dataset add", "dataset prepare", "contest create", "user add", "serve"}  # may
#            make a state root of a folder that is none (every other command needs one: a typo'd folder stays clean)

# `--help` lists the commands by who runs them (a command not listed here shows under "Other commands").
SECTIONS = {
    "Participant": ["init", "run", "ps", "logs", "stop", "fork", "memo", "rm", "model", "plot", "check", "submit",
                    "history", "board", "login", "logout", "whoami"],
    "Organizer": ["dataset", "contest", "rescore", "hide", "unhide", "baseline", "audit", "user"],
    "Operator": ["serve", "image"],
}
EXAMPLES = """\b
Examples:
  nsml run -d garbage-docs -e main.py -a "--epochs 3" .   train a session from this folder
  nsml logs -f alice/garbage-docs/1                        follow its log until it ends
  nsml submit alice/garbage-docs/1 2                       submit its checkpoint 2 and wait for the score
  nsml board garbage-docs                                  the leaderboard
  nsml contest simulate contest.toml --teams 6             simulate a whole contest round (organizers)
"""


class CommandGroup(click.Group):
    """A command group (`dataset`, `contest`, …) whose listing shows each command's first sentence in full."""

    def format_commands(self, ctx, formatter):
        rows = [(n, _first_sentence(c)) for n in self.list_commands(ctx)
                if (c := self.get_command(ctx, n)) is not None and not c.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class HarnessGroup(click.Group):
    """Loads command modules lazily; turns user mistakes and storage trouble into one line on stderr, without a
    traceback; `--help` groups the commands by who runs them, each with its first sentence in full."""
    group_class = CommandGroup

    def list_commands(self, ctx):
        return sorted(set(COMMANDS) | set(self.commands))

    def format_commands(self, ctx, formatter):
        named = {n: self.get_command(ctx, n) for n in self.list_commands(ctx)}
        named = {n: c for n, c in named.items() if c is not None and not c.hidden}
        placed = {n for names in SECTIONS.values() for n in names}
        sections = [*SECTIONS.items(), ("Other", sorted(set(named) - placed))]
        for title, names in sections:
            rows = [(n, _first_sentence(named[n])) for n in names if n in named]
            if rows:
                with formatter.section(f"{title} commands"):
                    formatter.write_dl(rows)

    def get_command(self, ctx, name):
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"{__name__}.{COMMANDS[name]}")  # its decorators register it on `main`
        return self.commands.get(name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            if exc.option_name in GLOBAL_FLAGS:  # `nsml ps --root DIR`: the flag is the program's, before the command
                exc.possibilities = []
                exc.message = (f"No such option: {exc.option_name} (it goes before the command: "
                               f"nsml {exc.option_name} VALUE {ctx.invoked_subcommand} ...)")
            raise
        except Exception as exc:  # noqa: BLE001 - user mistakes and storage trouble are answered here
            if not isinstance(exc, UserError):
                exc = storage_error(exc, _db_url(ctx))
                if exc is None:
                    raise
            from harness.core.escape import terminal  # a message may quote participant text
            click.echo(f"Error: {terminal(str(exc))}", err=True)
            ctx.exit(exc.exit_code)


def _first_sentence(command) -> str:
    """A command's help up to its first full stop, never cut with an ellipsis (the formatter wraps it)."""
    text = " ".join((command.short_help or command.help or "").split())
    end = re.search(r"\.\s(?=[A-Z\[`])", text)  # "e.g. the" goes on; ". Then" ends it
    return text if end is None else text[:end.start() + 1]


def _db_url(ctx) -> str | None:
    settings = getattr(ctx.obj, "_settings", None)
    return settings.db_url if settings is not None else None


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="State root (default: env HARNESS_HOME, else the nearest state root here or above).")
@click.option("--db", default=None, help="SQLAlchemy URL of the store (default: sqlite:///ROOT/leaderboard.db).")
@click.option("--user", default=None, help="Who you are (env HARNESS_USER; default: the OS user).")
@click.version_option(package_name="nsml-harness")
@click.pass_context
def main(ctx, root, db, user):
    """A local NSML: run sessions, save checkpoints, submit, and rank on a leaderboard."""
    ctx.obj = _LazyHarness(root, db, user)
    ctx.call_on_close(ctx.obj.close)


class _LazyHarness:
    """Opens settings and the store only when a command needs them (so --help stays fast)."""

    def __init__(self, root, db, user):
        self._args = (root, db, user)
        self._settings: Settings | None = None
        self._h = None
        self._api = None
        self._login = False  # not looked up yet

    def login(self):
        """The server this CLI talks to (`nsml login`), or None: local mode. --root or --db mean local."""
        if self._login is False:
            from harness.core.settings import current_login
            root, db, _user = self._args
            self._login = None if (root or db) else current_login()
        return self._login

    def api(self):
        """Every command's way in (harness.api.Api): over HTTP while logged in; else the state root's service over
        its Unix socket (harness.client.service; started on demand); or this process's library (HARNESS_SERVICE=
        inprocess)."""
        if self._api is None:
            login = self.login()
            if login is not None:
                if self._args[2] is not None:
                    raise UserError("--user: while logged in, you are your token's account (nsml whoami; "
                                    "nsml logout for local mode)")
                from harness.client import RemoteApi
                self._api = RemoteApi(login.url, login.token)
            elif self._founded().service == "socket":
                from harness.client.service import ServiceApi  # no SQLAlchemy in this process
                self._api = ServiceApi(self.settings())
            else:
                from harness.service.local import LocalApi
                self._api = LocalApi(self.get())
        return self._api

    def settings(self) -> Settings:
        if self._settings is None:
            root, db, user = self._args
            self._settings = load_settings(root=root, db=db, user=user)
        return self._settings

    def _founded(self) -> Settings:
        """The settings of a state root this command may work on: one given (--root, HARNESS_HOME, --db) or found
        here or above; a folder that is none becomes one only through a command that starts one (FOUNDING)."""
        settings = self.settings()
        ctx, names = click.get_current_context(), []
        while ctx.parent is not None:  # the command's own names, whatever the program was called (python -m ...)
            names.append(ctx.info_name)
            ctx = ctx.parent
        command = " ".join(reversed(names))
        if not settings.root_found and command not in FOUNDING:
            raise UserError(f"no state root here: neither {settings.root} nor a folder above it holds "
                            f"leaderboard.db, .harness/ or harness.toml; cd to your state root, give --root DIR, or "
                            f"start one here with nsml dataset add PACK (or dataset prepare TASK)")
        from harness.service.pack_roots import refuse_root_in_pack
        refuse_root_in_pack(settings.root, command)  # (a root given by --root too)
        return settings

    def get(self):
        """The library's entry (harness.state.Harness): SQLAlchemy and the store are loaded here."""
        if self._h is None:
            from harness.state import Harness
            self._h = Harness(self._founded())
        return self._h

    def close(self) -> None:
        if self._h is not None and "store" in self._h.__dict__:
            self._h.store.close()  # no connection outlives the command
        if self._api is not None and self._api.remote:
            self._api.close()


pass_harness = click.make_pass_decorator(_LazyHarness)


def action_command(group, name: str, arg: str, call, said: str, doc: str):
    """A command NAME of GROUP taking one argument ARG: CALL(api, value), then SAID (with {} for the value)."""
    @group.command(name, help=doc)
    @click.argument(arg)
    @pass_harness
    def command(lazy, **given):
        call(lazy.api(), given[arg])
        click.echo(said.format(given[arg]))
    return command


def table_command(group, name: str, call, columns: list[tuple[str, str]], empty: str, doc: str,
                  optional: tuple[str, ...] = (), shown=None):
    """A command NAME of GROUP that shows CALL(api)'s rows as a table with COLUMNS (or JSON with -j, as they
    are); SHOWN(row) words a row for the table; OPTIONAL: the columns a narrow terminal may leave out."""
    from .output import json_flag, table

    @group.command(name, help=doc)
    @json_flag
    @pass_harness
    def command(lazy, as_json):
        rows = call(lazy.api())
        table(rows if as_json or shown is None else [shown(r) for r in rows], columns, as_json=as_json, empty=empty,
              optional=optional)
    return command


def all_commands() -> None:
    """Import every command module (for tools that walk the whole command tree)."""
    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(f"{__name__}.{module}")


def entry() -> None:
    """The console entry point: the CLI, then an exit without the interpreter's teardown of every loaded module
    (~0.15 s with SQLAlchemy loaded). Output is flushed and the store closed (ctx.call_on_close) before."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`nsml ps | head`): nothing more to say
            code = code or 1
    if "logging" in sys.modules:  # (imported only by commands that log)
        sys.modules["logging"].shutdown()
    os._exit(code or 0)

