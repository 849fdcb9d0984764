"""The `harness` command line (also installed as `nsml`): a thin click layer over the library."""
from __future__ import annotations

import click

from ..context import Harness
from ..errors import UserError
from ..settings import load_settings


class HarnessGroup(click.Group):
    """Turns user mistakes into one line on stderr, without a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


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


pass_harness = click.make_pass_decorator(_LazyHarness)

from . import dataset_cmds, image_cmds, model_cmds, session_cmds, submit_cmds  # noqa: E402,F401
