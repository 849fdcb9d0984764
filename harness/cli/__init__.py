"""The `harness` command line (also installed as `nsml`): a thin click layer over the library."""
from __future__ import annotations

import errno

import click
from sqlalchemy.exc import DatabaseError, OperationalError

from ..context import Harness
from ..errors import UserError
from ..settings import load_settings


STORAGE_ERRNOS = {errno.ENOSPC: "no space left", errno.EROFS: "read-only file system",
                  errno.EACCES: "permission denied", errno.EDQUOT: "disk quota exceeded"}


class HarnessGroup(click.Group):
    """Turns user mistakes and storage trouble into one line on stderr, without a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS:
                raise
            where = exc.filename or "the state root"
            click.echo(f"Error: {where}: {STORAGE_ERRNOS[exc.errno]} (nothing was recorded for this command)",
                       err=True)
            ctx.exit(3)
        except OperationalError as exc:
            click.echo(f"Error: --db: {str(exc.orig).splitlines()[0]} (nothing was recorded for this command)",
                       err=True)
            ctx.exit(3)
        except DatabaseError as exc:  # not an operational hiccup: the file is damaged or is no database
            where = _db_where(ctx)
            click.echo(f"Error: --db: {where} is corrupt or not a database ({str(exc.orig).splitlines()[0]}); "
                       f"nothing was recorded for this command", err=True)
            ctx.exit(3)


def _db_where(ctx) -> str:
    lazy = ctx.obj
    h = getattr(lazy, "_h", None)
    url = h.settings.db_url if h is not None else "the store"
    return url.removeprefix("sqlite:///")


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="State root (default: current directory; env HARNESS_HOME).")
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
        self._h = None

    def get(self) -> Harness:
        if self._h is None:
            root, db, user = self._args
            self._h = Harness(load_settings(root=root, db=db, user=user))
        return self._h

    def close(self) -> None:
        if self._h is not None and "store" in self._h.__dict__:
            self._h.store.close()  # no connection outlives the command


pass_harness = click.make_pass_decorator(_LazyHarness)

from . import contest_cmds, dataset_cmds, image_cmds, model_cmds, session_cmds, submit_cmds  # noqa: E402,F401
