"""Fixtures. Shared helpers live in helpers.py (import them from there, not from this file)."""
import os
import sys

import pytest
from helpers import NSML_MAIN, ORGANIZER, REPO, Cli, RemoteCli, Served, end_scheduler, make_tiny_task, participant

sys.path.insert(0, str(REPO / "harness" / "session_sdk"))
PG = os.environ.get("HARNESS_TEST_PG")  # a PostgreSQL server for the tests (scripts/setup-postgres.sh); read
#                                         before the autouse fixture clears every HARNESS_* variable


@pytest.fixture(autouse=True)
def state_root(tmp_path, monkeypatch):
    """Every test gets its own state root and user, and no HARNESS_* setting from outside; no test touches
    ./leaderboard.db."""
    root = tmp_path / "state"
    root.mkdir()
    for key in [k for k in os.environ if k.startswith("HARNESS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HARNESS_HOME", str(root))
    monkeypatch.setenv("HARNESS_USER", "alice")
    monkeypatch.setenv("HARNESS_SERVICE", "inprocess")  # the state root's service: tests/test_local_service.py
    monkeypatch.chdir(tmp_path)
    yield root
    import psutil
    try:  # a round's submit keeps its scheduler up for its private half's longest time (scheduler.private_half):
        end_scheduler(root)  # ended here, so that a suite of them does not keep dozens
    except psutil.TimeoutExpired:
        pass


@pytest.fixture
def docker_ready():
    """A Docker engine and the session image: CI provides both (scripts/setup-docker.sh); elsewhere, skip."""
    import os

    from harness.runtime.docker_runtime import client, engine_answers
    if not engine_answers():
        if os.environ.get("CI"):
            pytest.fail("CI must provide a Docker engine (scripts/setup-docker.sh)")
        pytest.skip("no Docker engine answers (scripts/setup-docker.sh starts one)")
    try:
        client().images.get("nsml-harness/session:latest")
    except Exception:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail("CI must build nsml-harness/session:latest (scripts/setup-docker.sh)")
        pytest.skip("no nsml-harness/session:latest image (scripts/setup-docker.sh builds it)")


@pytest.fixture
def cli():
    return Cli()


@pytest.fixture
def served(state_root):
    """A real `harness serve` of this test's state root on a free loopback port."""
    server = Served(state_root)
    yield server
    server.stop()


@pytest.fixture
def remote_cli(served):
    """The CLI logged in to `served`: same commands, same outputs, identity by token."""
    return RemoteCli(served.url)


@pytest.fixture
def postgres(monkeypatch):
    """A fresh PostgreSQL database for this test as the store (HARNESS_DB), dropped afterwards."""
    if not PG:
        if os.environ.get("CI"):
            pytest.fail("CI must provide PostgreSQL (scripts/setup-postgres.sh sets HARNESS_TEST_PG)")
        pytest.skip("no PostgreSQL (eval \"$(bash scripts/setup-postgres.sh)\" starts one)")
    import uuid

    import psycopg
    base = PG.replace("postgresql+psycopg://", "postgresql://")
    name = f"harness_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG.rsplit("/", 1)[0] + "/" + name
    monkeypatch.setenv("HARNESS_DB", url)
    yield url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["local", "remote", "local-postgresql"])
def either_cli(request, monkeypatch, state_root):
    """The end-to-end tests run three ways: as a user's local command runs them (the CLI a client of the state
    root's service over its Unix socket; SQLite), through a real server (harness serve), and in-process on a
    PostgreSQL store."""
    if request.param == "local-postgresql":
        request.getfixturevalue("postgres")
    if request.param == "local":
        from harness.client.service import stop_services
        monkeypatch.setenv("HARNESS_SERVICE", "socket")
        request.addfinalizer(lambda: stop_services(state_root / ".harness"))
    return Cli() if request.param.startswith("local") else request.getfixturevalue("remote_cli")


@pytest.fixture
def tiny_task(tmp_path, cli):
    folder = make_tiny_task(tmp_path / "tiny-task")
    cli("dataset", "add", folder, user=ORGANIZER)
    return folder


@pytest.fixture
def nsml_folder(tmp_path):
    return participant(tmp_path / "participant", NSML_MAIN)


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request, monkeypatch):
    """Run the test once per runtime (docker only where an engine and the image are there; CI has both)."""
    if request.param == "docker":
        request.getfixturevalue("docker_ready")
    monkeypatch.setenv("HARNESS_RUNTIME", request.param)
    return request.param
