"""`nsml init [FOLDER]` (a participant entry) and `nsml dataset init NAME [FOLDER]` (a task pack): scaffolds
written by harness.service.scaffold. Both only write files here: no state root, no store, no server.

Loaded lazily like every command module (cli.COMMANDS); dataset_cmds adds `dataset init` to its group from here."""
from __future__ import annotations

import click

from . import main


@main.command("init")
@click.argument("folder", default=".")
def init_cmd(folder):
    """Write a participant entry into FOLDER (new or empty; default: here): main.py with the reserved flags,
    nsml.bind(save, load, infer), nsml.report, nsml.save and nsml.paused, and a requirements.txt. It trains on a
    pack made by `nsml dataset init`."""
    from harness.service import scaffold

    path, written = scaffold.init_entry(folder)
    click.echo(f"Entry written at {path}: {', '.join(written)}")
    click.echo(f"Next: nsml check {folder} -d TASK, then nsml run -d TASK {folder}")


@click.command("init")
@click.argument("name")
@click.argument("folder", required=False)
def dataset_init(name, folder):
    """Write a task pack NAME in NSML layout into FOLDER (new or empty; default: ./NAME): task.toml, a tiny
    generated train/test/test_submit set, data_loader.py, evaluation.py and a README saying what to replace."""
    from harness.service import scaffold

    path, written = scaffold.init_pack(name, folder)
    click.echo(f"Task pack {name} written at {path} ({len(written)} files; its README.md says what to replace)")
    click.echo(f"Next: nsml dataset check {path} (each check), nsml dataset add {folder or name} (checks and "
               f"registers it), nsml init my-entry && nsml check my-entry -d {name}")
