"""nsml login / whoami / logout against a real server, the saved token's file mode, and remote `model pull`."""
import os
import stat

import pytest
from click.testing import CliRunner
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant, run_session

from harness.cli import main


def _nsml(*args, input=None, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, env=env or {}, catch_exceptions=False)


def test_login_whoami_logout(served, remote_cli, tmp_path, monkeypatch, state_root):
    config = tmp_path / "config"
    monkeypatch.setenv("HARNESS_CONFIG_DIR", str(config))
    token = remote_cli.token("alice")
    bad = _nsml("login", served.url, "--token-stdin", input="nsml_00_wrong\n")
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and f"{served.url} does not accept it" in bad.stderr
    assert not (config / "credentials.json").exists()  # nothing saved for a refused token

    r = _nsml("login", served.url, "--token-stdin", input=token + "\n")
    assert r.exit_code == 0 and f"Logged in to {served.url} as alice" in r.stdout, r.output
    saved = config / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and stat.S_IMODE(config.stat().st_mode) == 0o700
    assert token in saved.read_text() and token not in r.output  # the token is never echoed
    assert _nsml("whoami").stdout.strip() == f"alice on {served.url}"
    assert _nsml("ps", "-a", "-j").stdout.strip() == "[]"  # through the server
    refused = _nsml("--user", "bob", "ps")
    assert refused.exit_code == 2 and "while logged in" in refused.stderr
    bob = {"HARNESS_TOKEN": remote_cli.token("bob")}  # alone: refused, never sent to the saved server
    alone = _nsml("whoami", env=bob)
    assert alone.exit_code == 2 and "HARNESS_TOKEN is set without HARNESS_SERVER" in alone.stderr
    assert _nsml("whoami", env={**bob, "HARNESS_SERVER": served.url}).stdout.strip() == f"bob on {served.url}"

    assert "Logged out" in _nsml("logout").stdout
    assert _nsml("whoami").stdout.startswith(f"alice (local, {state_root}")  # HARNESS_USER, locally
    alone = _nsml("ps", env=bob)  # logged out: refused too, never a silent local command
    assert alone.exit_code == 2 and "HARNESS_TOKEN is set without HARNESS_SERVER" in alone.stderr


def test_login_refuses_a_url_that_is_not_http(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CONFIG_DIR", str(tmp_path / "config"))
    r = _nsml("login", "ftp://example.invalid", "--token-stdin", input="x\n")
    assert r.exit_code == 2 and "not an http(s) URL" in r.stderr


def test_an_unreachable_server_is_one_line(tmp_path, monkeypatch):
    from helpers import free_port
    r = _nsml("ps", env={"HARNESS_SERVER": f"http://127.0.0.1:{free_port()}", "HARNESS_TOKEN": "nsml_a_b"})
    assert r.exit_code == 2 and "cannot reach it" in r.stderr and r.stderr.count("\n") == 1


def test_remote_model_pull_downloads_files_and_leaves_links_out(cli, remote_cli, tmp_path, state_root):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    name = run_session(cli, participant(tmp_path / "code", NSML_MAIN))
    ckpt = state_root / ".harness" / "sessions" / "alice" / "tiny" / "1" / "checkpoints" / "1"
    os.symlink("/etc/passwd", ckpt / "passwd")  # a link planted in the checkpoint
    r = remote_cli("model", "pull", name, "1", tmp_path / "pulled")
    files = sorted(p.name for p in (tmp_path / "pulled").rglob("*"))
    assert files and "passwd" not in files and "passwd left out" in r.stderr
    assert f"Checkpoint 1 of {name} is pulled to {tmp_path / 'pulled'}" in r.stdout
    again = remote_cli("model", "pull", name, "1", tmp_path / "pulled")  # where a local pull puts it: cp -r's rule
    assert f"is pulled to {tmp_path / 'pulled' / 'alice_tiny_1_1'}" in again.stdout
    assert (tmp_path / "pulled" / "alice_tiny_1_1" / "model").is_dir()
    other = remote_cli("model", "pull", name, "1", tmp_path / "stolen", user="bob", code=2)
    assert f"unknown session {name!r}" in other.stderr and not (tmp_path / "stolen").exists()


def test_did_you_mean_never_names_another_users_session(cli, tiny_task, nsml_folder):
    run_session(cli, nsml_folder)  # alice/tiny/1
    r = cli("logs", "alice/tiny/2", user="bob", code=2)
    assert "unknown session" in r.stderr and "alice/tiny/1" not in r.stderr  # bob gets no hint at alice's
    assert "Did you mean 'alice/tiny/1'" in cli("logs", "alice/tiny/2", code=2).stderr  # alice gets hers
    assert "alice/tiny/1" not in cli("submit", "alice/tiny/9", "0", user="bob", code=2).stderr


def test_a_flood_of_bad_secrets_is_refused_before_the_hash_and_others_are_served(served, remote_cli):
    """600 wrong secrets under alice's token id, from one address: after 10 the checks are refused (429) before
    the scrypt hash; alice's own token (verified before) and bob's keep being served throughout."""
    import concurrent.futures

    import httpx
    alice, bob = remote_cli.token("alice"), remote_cli.token("bob")
    api = served.url + "/api/v1/whoami"
    with httpx.Client(timeout=30) as web:
        for token in (alice, bob):  # verified once: the cheap digest is cached
            assert web.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        token_id = alice.split("_")[1]

        def attempt(i):
            return web.get(api, headers={"Authorization": f"Bearer nsml_{token_id}_wrong{i}"}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            flood = pool.map(attempt, range(600))
            served_meanwhile = [web.get(api, headers={"Authorization": f"Bearer {t}"}).status_code
                                for t in (alice, bob) * 10]
            codes = list(flood)
    assert set(served_meanwhile) == {200}
    assert set(codes) <= {401, 429} and codes.count(429) >= 580, (codes.count(401), codes.count(429))
    one = httpx.get(api, headers={"Authorization": f"Bearer nsml_{token_id}_wrongagain"}, timeout=30)
    assert one.status_code == 429 and "too many failed token checks" in one.json()["error"]


BIG_SAVE = NSML_MAIN.replace('''        with open(os.path.join(dir_name, "model.json"), "w") as f:
            json.dump(state, f)''', '''        with open(os.path.join(dir_name, "model.json"), "w") as f:
            json.dump(state, f)
        with open(os.path.join(dir_name, "weights.bin"), "wb") as f:
            f.write(os.urandom(24 << 20))''')


def test_a_pull_nobody_reads_holds_one_tar_and_one_slot_of_its_own(cli, tmp_path, state_root, monkeypatch):
    """A client that asks for a checkpoint and stops reading holds one tar on the server's disk (its copy is gone
    once packed) and its account's one pull; another user is served meanwhile, and the tar goes when the client
    does (attacker review: 16 such pulls each held two copies, up to limits.checkpoint_bytes each)."""
    import time

    import httpx
    from helpers import RemoteCli, Served
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(server_tmp))
    served = Served(state_root)
    try:
        remote = RemoteCli(served.url)
        cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
        name = run_session(cli, participant(tmp_path / "code", BIG_SAVE), "-a", "--epochs 1")
        url = f"{served.url}/api/v1/sessions/{name}/checkpoints/0/archive"
        alice = {"Authorization": f"Bearer {remote.token('alice')}"}
        with httpx.Client(timeout=30) as client:
            with client.stream("GET", url, headers=alice) as stalled:
                assert stalled.status_code == 200
                held = [p for p in server_tmp.rglob("*") if p.is_file()]
                assert [p.name for p in held] == ["c.tar"], held  # one tar, no copy beside it
                again = client.get(url, headers=alice)
                assert again.status_code == 429 and "checkpoint pulls" in again.text
                organizer = client.get(url, headers={"Authorization": f"Bearer {remote.token(ORGANIZER)}"})
                assert organizer.status_code == 200 and len(organizer.content) > 24 << 20  # another account: served
        deadline = time.monotonic() + 20  # the client went away: its tar and its slot go
        while list(server_tmp.rglob("c.tar")):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with httpx.Client(timeout=30) as client:
            assert client.get(url, headers=alice).status_code == 200
    finally:
        served.stop()


@pytest.mark.parametrize("spec", ["2.3", "2.4"])  # (starlette watches for a disconnect below 2.4)
def test_a_pull_whose_client_stops_reading_is_cut_and_its_tar_and_slot_go(tmp_path, monkeypatch, spec):
    """A client that keeps its connection and reads nothing would hold its tar and its account's pull for good:
    past SEND_SECONDS without taking a part of it, the send is cut."""
    import anyio

    from harness.server import transfers
    monkeypatch.setattr(transfers, "SEND_SECONDS", 0.3)
    folder = tmp_path / "pull-x"
    folder.mkdir()
    (folder / "c.tar").write_bytes(b"x" * (1 << 20))
    response = transfers._Sent(folder, transfers.PULLS.take("mallory"), folder / "c.tar")
    sent = []

    async def stalled(message):
        sent.append(message["type"])
        if message["type"] == "http.response.body":
            await anyio.sleep(3600)  # (a client that reads nothing: the send never completes)

    async def receive():
        await anyio.sleep(3600)
        return {"type": "http.disconnect"}

    async def serve():
        with anyio.fail_after(10):
            await response({"type": "http", "method": "GET", "headers": [], "asgi": {"spec_version": spec}},
                           receive, stalled)
    anyio.run(serve)
    assert sent[:2] == ["http.response.start", "http.response.body"]
    assert not folder.exists() and transfers.PULLS.held("mallory") == 0


def test_user_add_into_an_unknown_contest_leaves_no_account_behind(cli, tmp_path):
    refused = cli("user", "add", "bob", "--team", "demo/red", user=ORGANIZER, code=2)
    assert "unknown contest 'demo'" in refused.stderr and refused.stderr.count("\n") == 1
    assert "bob" not in [u["user"] for u in cli.json("user", "ls", user=ORGANIZER)]
    (tmp_path / "demo.toml").write_text('name = "demo"\n[[rounds]]\nname = "r1"\ntasks = ["tiny"]\n'
                                         'start = 2026-07-01T00:00:00\nend = 2026-07-02T00:00:00\n')
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    cli("contest", "create", tmp_path / "demo.toml", user=ORGANIZER)
    made = cli.json("user", "add", "bob", "--team", "red", user=ORGANIZER)  # the retry is not refused as "exists"
    assert made["token"].startswith("nsml_")
    assert [t["members"] for t in cli.json("contest", "teams", "demo", user=ORGANIZER) if t["team"] == "red"] \
        == ["bob"]


def test_a_name_no_route_takes_is_named_in_the_error(remote_cli, served):
    r = remote_cli("contest", "board", "rush/r1", code=2)
    assert f"task='rush/r1': not found on {served.url}" in r.stderr and r.stderr.count("\n") == 1, r.stderr
