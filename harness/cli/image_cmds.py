"""image build: the default session image for the docker runtime."""
from __future__ import annotations

from pathlib import Path

import click

from harness.core.errors import UserError

from . import main, pass_harness


@main.group("image")
def image_group():
    """Container images for the docker runtime."""


@image_group.command("build")
@click.option("--base-image", default=None,
              help="Base image (default: the Dockerfile's CUDA PyTorch base). It must be on this machine.")
@click.option("--tag", default=None, help="Tag (default: settings' docker.image, nsml-harness/session:latest).")
@click.option("--wheel", "wheels", multiple=True, type=click.Path(dir_okay=False),
              help="A local wheel to install first (repeatable), e.g. the CPU torch wheel.")
@click.option("-q", "--quiet", is_flag=True)
@pass_harness
def image_build(lazy, base_image, tag, wheels, quiet):
    """Build the default session image from the top-level Dockerfile."""
    from harness.runtime.docker_runtime import client, engine_answers
    from harness.runtime.images import build_default_image

    h = lazy.get()
    if not engine_answers():
        raise UserError("image build: no Docker engine answers (start dockerd, or see scripts/setup-docker.sh)")
    tag = tag or h.settings.docker_image
    build_default_image(client(timeout=1800), tag, base_image, [Path(w) for w in wheels],
                        log=(lambda _line: None) if quiet else click.echo)
    click.echo(f"Image {tag} is built")
