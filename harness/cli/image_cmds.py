"""image build: the default session image for the docker runtime, or an era environment; image eras."""
from __future__ import annotations

from pathlib import Path

import click

from harness.core.errors import UserError

from . import main, pass_harness


@main.group("image")
def image_group():
    """Container images for the docker runtime."""


@image_group.command("build")
@click.option("--era", default=None, help="Build this era environment instead (see 'image eras'): for both runtimes.")
@click.option("--base-image", default=None,
              help="Base image (default: the Dockerfile's CUDA PyTorch base). It must be on this machine.")
@click.option("--tag", default=None, help="Tag (default: settings' docker.image, nsml-harness/session:latest).")
@click.option("--wheel", "wheels", multiple=True, type=click.Path(dir_okay=False),
              help="A local wheel to install first (repeatable), e.g. the CPU torch wheel.")
@click.option("-q", "--quiet", is_flag=True)
@pass_harness
def image_build(lazy, era, base_image, tag, wheels, quiet):
    """Build the default session image from the top-level Dockerfile, or (--era NAME) an era environment: its
    root filesystem for the process runtime, imported as an image for the docker runtime when an engine answers."""
    from harness.runtime.docker_runtime import client, engine_answers
    from harness.runtime.images import build_default_image

    log = (lambda _line: None) if quiet else click.echo
    if era is not None:
        from harness.runtime import eras
        chosen = eras.named(era, lazy.settings().root)
        if not chosen.has_rootfs:
            click.echo(f"Era {era} is the harness's own environment with {', '.join(chosen.packages) or 'nothing'}: "
                       f"nothing to build (its packages are installed like a session's requirements)")
            return
        folder = eras.build(chosen, log=log)
        if engine_answers():
            click.echo(f"Image {eras.docker_image(chosen, client(timeout=1800))} is built")
        click.echo(f"Era {era} is built in {folder}")
        return
    if not engine_answers():
        raise UserError("image build: no Docker engine answers (start dockerd, or see scripts/setup-docker.sh)")
    tag = tag or lazy.settings().docker_image
    build_default_image(client(timeout=1800), tag, base_image, [Path(w) for w in wheels], log=log)
    click.echo(f"Image {tag} is built")


@image_group.command("eras")
@click.option("-j", "--json", "as_json", is_flag=True, help="JSON output.")
@pass_harness
def image_eras(lazy, as_json):
    """The era environments an `#nsml: IMAGE` line (or, with none, an import) resolves to (eras.toml, with
    harness.toml's [eras] first)."""
    from harness.runtime import eras

    from .output import emit_json, table

    rows = [{"era": e.name, "base": e.base, "python": e.python, "packages": ", ".join(e.packages),
             "images": ", ".join(e.images), "imports": ", ".join(e.imports),
             "tags": ", ".join(f"{k} {v}" for k, v in (("torch", e.torch),
                                                              ("tensorflow", e.tensorflow), ("python", e.python_tags)) if v),
             "built": e.built, "on_demand": e.on_demand, "description": e.description, "from": e.source}
            for e in eras.catalogue(lazy.settings().root).values()]
    if as_json:
        emit_json(rows)
    else:
        table([{**r, "built": "yes" if r["built"] else "no"} for r in rows],
              [("era", "Era"), ("base", "Base"), ("python", "Python"), ("packages", "Packages"),
               ("images", "Images"), ("tags", "Tags"), ("built", "Built")])
