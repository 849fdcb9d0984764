"""Every operation of a real `harness serve`, called as the resource's owner, another participant, an organizer,
with no token and with a bad (or disabled) token: each with its expected status code. The matrix is made from the
declarations (harness.api.operations): each operation's path and verb are its own, the statuses follow its
declared right (with the exceptions written here), and an operation without a row fails the test."""
import io
import json
import tarfile

import httpx
import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, one_round_contest, participant, run_session

from harness.api import OPERATIONS, Right
from harness.client.remote import request_of

OWN, OTHER, ORG = "own", "other", "org"
S = "alice/tiny/1"
# what is another user's is, to a participant, not there: 404, as for a name or id that is not (whose is not told)
BY_RIGHT = {Right.ANYONE: {OWN: 200, OTHER: 200, ORG: 200}, Right.OWNER: {OTHER: 404, OWN: 200, ORG: 200},
            Right.OWNER_ONLY: {OTHER: 404, OWN: 200, ORG: 403},  # a submit is its owner's act alone
            Right.ORGANIZER: {OTHER: 403, OWN: 403, ORG: 200}}

# (operation, its arguments, {actor: status} where it differs from its right); run in this order, each as
# other, own, org. "CODE", "PACK", "CONTEST" stand for an upload; "{ck}" for the actor's own checkpoint.
MATRIX = [
    ("whoami", {}, {}),
    ("list_sessions", {}, {}),
    ("inventory", {}, {}),  # counts only: nobody's names
    ("session_info", {"session": S}, {}),
    ("session_log", {"session": S}, {}),
    ("set_memo", {"session": S, "text": "m"}, {}),
    ("session_metrics", {"session": S}, {}),
    ("list_checkpoints", {"session": S}, {}),
    ("pull_checkpoint", {"session": S, "checkpoint": "0", "dest": "-"}, {}),
    ("fork_session", {"session": S, "checkpoint": "0"}, {}),
    ("stop_sessions", {"pattern": S}, {}),
    ("start_submit", {"session": S, "checkpoint": "0", "dry_run": True}, {}),
    ("submission_info", {"sub_id": 1}, {}),
    ("wait_submission", {"sub_id": 1, "timeout": 0}, {}),
    ("infer_log", {"sub_id": 1}, {OWN: 403}),  # a real submit's log: organizers only
    ("select_submissions", {"ids": [1]}, {OTHER: 404, OWN: 400, ORG: 404}),  # in no round; not yours: as if none
    ("remove_checkpoints", {"session": S, "pattern": "{ck}"}, {}),
    ("list_tasks", {}, {}),
    ("task_readme", {"task": "tiny"}, {}),
    ("board", {"task": "tiny"}, {}),
    ("score_history", {"task": "tiny"}, {}),
    ("round_board", {"task": "tiny"}, {OWN: 404, OTHER: 404, ORG: 404}),
    ("history", {"task": "tiny"}, {}),  # each sees their own
    ("check_task", {"task": "tiny"}, {}),
    ("task_changes", {"task": "tiny"}, {}),
    ("rescore", {"task": "tiny", "dry_run": True}, {}),
    ("prepare_task", {"task": "nosuch", "scale": 0.1}, {ORG: 404}),
    ("add_task", "PACK", {}),
    ("remove_task", {"task": "tiny2"}, {}),
    ("add_user", {"name": "{newuser}"}, {}),
    ("list_users", {}, {}),
    ("reset_token", {"name": "carol"}, {}),
    ("disable_user", {"name": "carol"}, {}),
    ("mark_baseline", {"name": "bob"}, {}),
    ("hide_submission", {"sub_id": 1, "hidden": True}, {}),
    ("hidden_entries", {"task": "tiny"}, {}),
    ("audit", {}, {}),
    ("clock", {}, {}),
    ("set_clock", {"real": True}, {}),
    ("create_contest", "CONTEST", {}),
    ("list_contests", {}, {}),
    ("show_teams", {"contest": "c1"}, {}),
    ("add_team", {"contest": "c1", "team": "t2", "users": ["bob"]}, {}),
    ("close_round", {"round_ref": "c1/r1", "force": True}, {}),
    ("remove_sessions", {"pattern": S}, {ORG: 404}),  # the owner removes; the organizer's pattern finds none
    ("start_session", "CODE", {}),  # anyone may start their own session
]

CONTEST = one_round_contest("c1", {"t1": ["alice"]}, "tiny3")


def _tar(folder) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(folder.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(folder)), recursive=False)
    return buf.getvalue()


@pytest.fixture
def world(cli, served, tmp_path, remote_cli):
    """alice owns session alice/tiny/1 (checkpoints 0, 1) and submission 1; bob and carol are participants."""
    make_tiny_task(tmp_path / "tiny")
    cli("dataset", "add", tmp_path / "tiny", user=ORGANIZER)
    make_tiny_task(tmp_path / "tiny3", name="tiny3")
    cli("dataset", "add", tmp_path / "tiny3", user=ORGANIZER)
    folder = participant(tmp_path / "code", NSML_MAIN)
    run_session(cli, folder)
    cli("submit", "alice/tiny/1", "1")
    tokens = {OWN: remote_cli.token("alice"), OTHER: remote_cli.token("bob"), ORG: remote_cli.token(ORGANIZER)}
    remote_cli.token("carol")
    packs = {"PACK": _tar(make_tiny_task(tmp_path / "tiny2", name="tiny2")), "CODE": _tar(folder)}
    return tokens, packs


def _request(client, name, values, token, packs, actor, n):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    op = OPERATIONS[name]
    if isinstance(values, str) and values in packs:
        headers["Content-Type"] = "application/x-tar"
        params = {"task": "tiny"} if values == "CODE" else {}
        return client.request(op.verb, "/api/v1" + op.path, content=packs[values], headers=headers, params=params)
    if values == "CONTEST":
        return client.request(op.verb, "/api/v1" + op.path, json={"toml": CONTEST}, headers=headers)
    values = {k: (f"new{n}" if v == "{newuser}" else {OWN: "1", ORG: "0"}.get(actor, "0") if v == "{ck}" else v)
              for k, v in values.items()}
    path, query, body = request_of(op, op.bind((), values))
    return client.request(op.verb, "/api/v1" + path, params=query, json=body, headers=headers)


def test_every_endpoint_answers_each_caller_with_its_status(world, served):
    tokens, packs = world
    assert [name for name, _, _ in MATRIX if name not in OPERATIONS] == []
    assert set(OPERATIONS) - {name for name, _, _ in MATRIX} == set(), "operations without a row in the matrix"

    failures = []
    with httpx.Client(base_url=served.url, timeout=60) as client:
        for n, (name, values, exceptions) in enumerate(MATRIX):
            expected = {**BY_RIGHT[OPERATIONS[name].right], **exceptions}
            for actor, token in (("none", None), ("bad", "nsml_0000_not-a-token")):
                got = _request(client, name, values, token, packs, actor, n).status_code
                if got != 401:
                    failures.append(f"{name} as {actor}: {got}, expected 401")
            for actor in (OTHER, OWN, ORG):
                r = _request(client, name, values, tokens[actor], packs, actor, n)
                if r.status_code != expected[actor]:
                    failures.append(f"{name} as {actor}: {r.status_code}, expected {expected[actor]}: "
                                    f"{r.text[:200]}")
                elif r.status_code >= 400:
                    assert set(r.json()) == {"error", "kind"} and "\n" not in r.json()["error"]
    assert failures == []


def test_a_disabled_account_is_refused_and_a_reset_token_replaces_the_old(cli, served, remote_cli):
    old = remote_cli.token("dave")
    with httpx.Client(base_url=served.url + "/api/v1") as client:
        assert client.get("/whoami", headers={"Authorization": f"Bearer {old}"}).json()["user"] == "dave"
        cli("user", "disable", "dave", user=ORGANIZER)
        r = client.get("/whoami", headers={"Authorization": f"Bearer {old}"})
        assert r.status_code == 401 and "disabled" in r.json()["error"]
        new = json.loads(cli("user", "token", "reset", "dave", "-j", user=ORGANIZER).stdout)["token"]
        assert client.get("/whoami", headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert client.get("/whoami", headers={"Authorization": f"Bearer {new}"}).json()["user"] == "dave"
        forged = new[:-4] + ("AAAA" if not new.endswith("AAAA") else "BBBB")  # right id, wrong secret
        assert client.get("/whoami", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_field_the_operation_does_not_declare_is_named_and_refused(cli, served, remote_cli, tiny_task,
                                                                   nsml_folder):
    """A hand-written client's typo (`gpu` for `gpus`, `txt` for `text`) is a 422 naming it, never a call run
    with the default in its place; the declared fields still work."""
    import httpx
    name = run_session(cli, nsml_folder)
    token = remote_cli.token("alice")
    with httpx.Client(base_url=served.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}) as c:
        memo = c.put(f"/sessions/{name}/memo", json={"txt": "hello"})
        assert memo.status_code == 422 and memo.json()["error"].startswith("txt: Extra inputs are not permitted")
        fork = c.post(f"/sessions/{name}/fork", json={"checkpoint": "1", "opts": {"gpu": 2}})
        assert fork.status_code == 422 and fork.json()["error"].startswith("opts.gpu: Extra inputs")
        huge = c.put(f"/sessions/{name}/memo", json={"text": "x", "\x1b[2J" + "k" * 100_000: 1})
        assert huge.status_code == 422 and len(huge.json()["error"]) < 200 and "\x1b" not in huge.json()["error"]
        assert c.put(f"/sessions/{name}/memo", json={"text": "hello"}).status_code == 200
    assert cli.json("ps", "-a")[0]["memo"] == "hello"


def test_a_nul_in_a_name_is_refused_in_one_line_on_postgresql_too(postgres, tiny_task):
    """PostgreSQL refuses a NUL in any text, a name it is asked to look up too: a task, user or session name with
    one, in a path or a query, was a 500 (the hostile review of stop 48); now a 400 in one line, page or API."""
    from fastapi.testclient import TestClient

    from harness.core.settings import load_settings
    from harness.server.app import create_app
    from harness.service import accounts
    from harness.state import Harness
    token = accounts.add_user(Harness(load_settings(user=ORGANIZER)), "zed")
    app = create_app(load_settings())
    try:
        client = TestClient(app, raise_server_exceptions=False)
        api = {"Authorization": f"Bearer {token}"}
        for path in ("/api/v1/tasks/ti%00ny/readme", "/api/v1/tasks/ti%00ny/board", "/api/v1/sessions/zed/ti%00ny/1"):
            r = client.get(path, headers=api)
            assert r.status_code == 400 and "NUL" in r.json()["error"], (path, r.status_code, r.text)
        # a quoted cookie's octal escapes make a NUL in a token id: never looked up (review of the change)
        r = client.get("/tasks", headers={"Cookie": 'nsml_token="nsml_a\\000b_c"'}, follow_redirects=False)
        assert r.status_code in (303, 401) and r.headers["cache-control"] == "no-store", (r.status_code, r.text)
    finally:
        app.state.server.base.store.close()


def test_a_nul_in_what_a_run_or_an_evaluator_said_is_stored_on_postgresql(postgres, tiny_task, cli, nsml_folder):
    """A run's and a submission's message may quote a participant's bytes (an evaluator's complaint about a
    prediction): PostgreSQL refuses a NUL in any text, and a failed write there failed the scoring, an uncounted
    submit (review of stop 48). It is stored as U+FFFD (store.models.Said)."""
    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Run, Submission
    name = run_session(cli, nsml_folder)
    sub_id = cli.json("submit", "-t", name, "1")["id"]
    h = Harness(load_settings())
    with h.tx() as db:
        sub = db.get(Submission, sub_id)
        sub.message = sub.run.message = "line 3: 'a\x00b' is not a label"
    with h.tx() as db:
        sub = db.get(Submission, sub_id)
        assert sub.message == db.get(Run, sub.run_id).message == "line 3: 'a\ufffdb' is not a label"
    h.store.close()
