"""`nsml init [FOLDER]` (a participant entry) and `nsml dataset init NAME [FOLDER]` (a task pack): scaffolds
written by harness.service.scaffold. Both only write files here: no state root, no store, no server.

This module is imported with the CLI (it costs click only). `dataset init` joins the `dataset` group when that
group's module registers it, which the CLI does only for a `dataset` command (command modules load lazily):
importing the group here would load dataset_cmds and read_cmds into every command, `ps` and `submit` included."""
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


def _joining_dataset(add_command):
    """MAIN's add_command, which also gives the `dataset` group its `init` when the group is registered."""
    def add(command, name=None):
        add_command(command, name)
        if (name or command.name) == "dataset":
            command.add_command(dataset_init)
    return add


if "dataset" in main.commands:  # (its module was loaded first)
    main.commands["dataset"].add_command(dataset_init)
main.add_command = _joining_dataset(main.add_command)
