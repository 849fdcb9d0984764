"""`#nsml: IMAGE` runs an image as it is only where the organizers allow it ([docker] images, the task's image, the
default one): an image kept on the machine for something else is not the participants' to open, and whether an
image is on the machine is not something a `run` can ask."""
import pytest
from helpers import participant
from test_docker_runtime import docker_client  # noqa: F401 (a fixture)

from harness.core.settings import load_settings
from harness.runtime.images import usable
from harness.state import Harness

SHOW = '''
import argparse, os
p = argparse.ArgumentParser(); p.add_argument("--mode", default="train"); p.parse_args()
print("secret file:", os.path.exists("/organizer-secret"))
'''
SECRET = "nsml-harness-test/organizer-secret:1"


@pytest.mark.parametrize("text,image", [
    ("#nsml: a/b:1\nrequests\n", "a/b:1"),
    ("# nsml: pytorch/pytorch:1.6.0\n", "pytorch/pytorch:1.6.0"),  # (written with a space, AI Rush 2020)
    ("#//nsml: old/one:1\n#nsml: new/one:2\ntorch\n", "new/one:2"),  # an old line kept commented out above it
    ("#!/usr/bin/env python\n\n#NSML: a/b:1\n", "a/b:1"),
    ("requests\n#nsml: a/b:1\n", None),  # past the first line that is not a comment: not read
    ("# " + "x" * 2000 + "\n#nsml: a/b:1\n", None),  # a line over 1 KiB ends the reading
    ("\n".join(["# c"] * 10) + "\n#nsml: a/b:1\n", None),  # past the first 10 lines
])
def test_the_nsml_line_is_read_in_the_comments_that_open_the_file(tmp_path, text, image):
    from harness.runtime.images import nsml_image_line
    (tmp_path / "requirements.txt").write_text(text)
    assert nsml_image_line(tmp_path) == image


def test_usable_names():
    allowed = ("nvcr.io/nvidia/pytorch:*", "pytorch/pytorch", "", "nsml-harness/session:latest")
    assert usable("nvcr.io/nvidia/pytorch:23.10-py3", allowed)
    assert usable("pytorch/pytorch", allowed) and usable("pytorch/pytorch:1.0", allowed)  # (every tag)
    assert usable("nsml-harness/session", allowed)  # (a name means name:latest, as Docker reads it)
    assert not usable("pytorch/pytorch:1.0", ("pytorch/pytorch:latest",))
    assert not usable("postgres:16", allowed) and not usable("sha256:" + "0" * 64, allowed)
    assert not usable("NVCR.IO/nvidia/pytorch:1", allowed)  # compared as Docker compares: case matters
    assert not usable("anything", ("",))  # (a task without an image allows nothing)
    # a glob covers one part of a name: never another path segment, never the tag from the repository
    assert not usable("python-secret:latest", ("python:*",)) and usable("python:3.11", ("python:*",))
    assert not usable("myorg/public-x/private", ("myorg/public-*",)) and usable("myorg/public-x", ("myorg/public-*",))
    assert usable("myorg/public-x:2", ("myorg/public-*",)) and not usable("myorg/public-x:2", ("myorg/public-*:1",))
    assert usable("localhost:5000/team/img:1", ("localhost:5000/team/*:*",))
    assert not usable("localhost:5000/team/img/deeper:1", ("localhost:5000/team/*:*",))
    assert usable("pytorch/pytorch@sha256:" + "a" * 64, ("pytorch/pytorch:*",))
    assert not usable("pytorch/pytorch@sha256:" + "a" * 64, ("pytorch/pytorch:2.1",))


@pytest.fixture
def secret_image(docker_client):  # noqa: F811
    c = docker_client
    base = c.images.get("nsml-harness/session:latest")
    container = c.containers.create(base.id, command=["true"], user="0:0")
    try:  # an organizer's image with something in it the participants must not read
        import io
        import tarfile
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("organizer-secret")
            info.size, info.mode = 6, 0o644
            tar.addfile(info, io.BytesIO(b"labels"))
        container.put_archive("/", data.getvalue())
        container.commit(*SECRET.split(":"))
    finally:
        container.remove(force=True)
    yield SECRET
    c.images.remove(SECRET, force=True)


@pytest.mark.docker
def test_an_image_kept_on_the_machine_is_not_the_participants(cli, tiny_task, tmp_path, state_root, secret_image,
                                                               monkeypatch):
    monkeypatch.setenv("HARNESS_RUNTIME", "docker")
    folder = participant(tmp_path / "code", SHOW)
    (folder / "requirements.txt").write_text(f"#nsml: {secret_image}\n")
    r = cli("run", "-d", "tiny", folder)
    absent = participant(tmp_path / "absent", SHOW)
    (absent / "requirements.txt").write_text("#nsml: nsml-harness-test/no-such-image:1\n")
    r2 = cli("run", "-d", "tiny", absent)
    # the same words whether the image is here or not (no oracle of what the machine holds)
    assert f"#nsml: {secret_image} is not an image this machine offers" in r.stderr, r.stderr
    assert r.stderr.replace(secret_image, "X") == r2.stderr.replace("nsml-harness-test/no-such-image:1", "X")
    name = r.stdout.split()[1]
    cli("logs", "-f", name)
    assert "secret file: False" in cli("logs", name).stdout
    # allowed by the organizers: used as it is
    (state_root / "harness.toml").write_text('[docker]\nimages = ["nsml-harness-test/*"]\n')
    r = cli("run", "-d", "tiny", folder)
    assert f"image {secret_image}: #nsml: {secret_image} is on this machine: used as it is" in r.stderr, r.stderr
    name = r.stdout.split()[1]
    cli("logs", "-f", name)
    assert "secret file: True" in cli("logs", name).stdout
    h = Harness(load_settings())
    with h.tx() as db:
        assert h.session(db, name).run.spec["environment"].startswith(secret_image)
