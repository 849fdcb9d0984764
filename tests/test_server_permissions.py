"""Every endpoint of a real `harness serve`, called as the resource's owner, another participant, an organizer,
with no token and with a bad (or disabled) token: each with its expected status code. The matrix must name
every operation of the OpenAPI document, so a new endpoint cannot ship without its row."""
import io
import json
import tarfile

import httpx
import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant, run_session

OWN, OTHER, ORG = "own", "other", "org"
S = "/sessions/alice/tiny/1"

# (method, path, body or None, {actor: expected status}); actors run in the order other, own, org.
MATRIX = [
    ("GET", "/whoami", None, {OWN: 200, OTHER: 200, ORG: 200}),
    ("GET", "/sessions", None, {OWN: 200, OTHER: 200, ORG: 200}),
    ("GET", "/inventory", None, {OWN: 200, OTHER: 200, ORG: 200}),  # counts only: nobody's names
    ("GET", S, None, {OTHER: 403, OWN: 200, ORG: 200}),
    ("GET", S + "/log", None, {OTHER: 403, OWN: 200, ORG: 200}),
    ("PUT", S + "/memo", {"text": "m"}, {OTHER: 403, OWN: 200, ORG: 200}),
    ("GET", S + "/metrics", None, {OTHER: 403, OWN: 200, ORG: 200}),
    ("GET", S + "/checkpoints", None, {OTHER: 403, OWN: 200, ORG: 200}),
    ("GET", S + "/checkpoints/0/archive", None, {OTHER: 403, OWN: 200, ORG: 200}),
    ("POST", S + "/fork", {"checkpoint": "0"}, {OTHER: 403, OWN: 200, ORG: 200}),
    ("POST", "/sessions/stop", {"pattern": "alice/tiny/1"}, {OTHER: 403, OWN: 200, ORG: 200}),
    ("POST", "/submissions", {"session": "alice/tiny/1", "checkpoint": "0", "dry_run": True},
     {OTHER: 403, OWN: 200, ORG: 403}),  # a submit is its owner's act: nobody submits another's session
    ("GET", "/submissions/1", None, {OTHER: 403, OWN: 200, ORG: 200}),
    ("GET", "/submissions/1/log", None, {OTHER: 403, OWN: 403, ORG: 200}),  # a real submit's log: organizers
    ("POST", "/submissions/select", {"ids": [1]}, {OTHER: 400, OWN: 400, ORG: 400}),  # in no round
    ("DELETE", S + "/checkpoints/{ck}", None, {OTHER: 403, OWN: 200, ORG: 200}),
    ("GET", "/tasks", None, {OWN: 200, OTHER: 200, ORG: 200}),
    ("GET", "/tasks/tiny/board", None, {OWN: 200, OTHER: 200, ORG: 200}),
    ("GET", "/tasks/tiny/score-history", None, {OWN: 200, OTHER: 200, ORG: 200}),
    ("GET", "/tasks/tiny/round-board", None, {OWN: 404, OTHER: 404, ORG: 404}),
    ("GET", "/tasks/tiny/history", None, {OWN: 200, OTHER: 200, ORG: 200}),  # each sees their own
    ("GET", "/tasks/tiny/check", None, {OTHER: 403, OWN: 403, ORG: 200}),
    ("GET", "/tasks/tiny/changes", None, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/tasks/tiny/rescore", {"dry_run": True}, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/tasks/nosuch/prepare", {"scale": 0.1}, {OTHER: 403, OWN: 403, ORG: 404}),
    ("POST", "/tasks", "PACK", {OTHER: 403, OWN: 403, ORG: 200}),
    ("DELETE", "/tasks/tiny2", None, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/users", {"name": "{newuser}"}, {OTHER: 403, OWN: 403, ORG: 200}),
    ("GET", "/users", None, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/users/carol/token", None, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/users/carol/disable", None, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/baselines", {"name": "bob"}, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/submissions/1/hide", {"hidden": True}, {OTHER: 403, OWN: 403, ORG: 200}),
    ("GET", "/tasks/tiny/hidden", None, {OTHER: 403, OWN: 403, ORG: 200}),
    ("GET", "/audit", None, {OTHER: 403, OWN: 403, ORG: 200}),
    ("GET", "/clock", None, {OWN: 200, OTHER: 200, ORG: 200}),
    ("PUT", "/clock", {"real": True}, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/contests", "CONTEST", {OTHER: 403, OWN: 403, ORG: 200}),
    ("GET", "/contests", None, {OWN: 200, OTHER: 200, ORG: 200}),
    ("GET", "/contests/c1/teams", None, {OWN: 200, OTHER: 200, ORG: 200}),
    ("POST", "/contests/c1/teams", {"team": "t2", "users": ["bob"]}, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/rounds/close", {"round": "c1/r1"}, {OTHER: 403, OWN: 403, ORG: 200}),
    ("POST", "/sessions/remove", {"pattern": "alice/tiny/1"}, {OTHER: 403, OWN: 200, ORG: 404}),  # own removes
    ("POST", "/sessions", "CODE", {OWN: 200, OTHER: 200, ORG: 200}),  # anyone may start their own session
]

CONTEST = """
name = "c1"
[teams]
t1 = ["alice"]
[[rounds]]
name = "r1"
tasks = ["tiny3"]
start = 2026-01-01T00:00:00
end = 2030-01-01T00:00:00
"""


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


def _request(client, method, path, body, token, packs, actor, n):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    path = path.replace("{ck}", {OWN: "1", ORG: "0"}.get(actor, "0"))
    params = {}
    if isinstance(body, str) and body in packs:
        headers["Content-Type"] = "application/x-tar"
        if body == "CODE":
            params = {"task": "tiny"}
        return client.request(method, "/api/v1" + path, content=packs[body], headers=headers, params=params)
    if body == "CONTEST":
        body = {"toml": CONTEST}
    if isinstance(body, dict) and body.get("name") == "{newuser}":
        body = {"name": f"new{n}"}
    return client.request(method, "/api/v1" + path, json=body, headers=headers)


def test_every_endpoint_answers_each_caller_with_its_status(world, served):
    tokens, packs = world
    spec = httpx.get(f"{served.url}/api/v1/openapi.json").json()
    operations = {(m.upper(), p.removeprefix("/api/v1")) for p, ops in spec["paths"].items() for m in ops}
    covered = {(m, p.replace("alice/tiny/1", "{user}/{task}/{number}")) for m, p, _, _ in MATRIX}
    normalise = {"/checkpoints/0/archive": "/checkpoints/{checkpoint}/archive", "/checkpoints/{ck}":
                 "/checkpoints/{pattern}", "/submissions/1": "/submissions/{sub_id}", "/tasks/tiny/": "/tasks/{task}/",
                 "/tasks/nosuch/": "/tasks/{task}/", "/tasks/tiny2": "/tasks/{task}", "/users/carol/": "/users/{name}/",
                 "/contests/c1/": "/contests/{contest}/"}
    shown = set()
    for m, p in covered:
        for a, b in normalise.items():
            p = p.replace(a, b)
        shown.add((m, p))
    assert operations - shown == set(), "endpoints without a row in the permission matrix"

    failures = []
    with httpx.Client(base_url=served.url, timeout=60) as client:
        for n, (method, path, body, expected) in enumerate(MATRIX):
            for actor, token in (("none", None), ("bad", "nsml_0000_not-a-token")):
                got = _request(client, method, path, body, token, packs, actor, n).status_code
                if got != 401:
                    failures.append(f"{method} {path} as {actor}: {got}, expected 401")
            for actor in (OTHER, OWN, ORG):
                if actor not in expected:
                    continue
                r = _request(client, method, path, body, tokens[actor], packs, actor, n)
                if r.status_code != expected[actor]:
                    failures.append(f"{method} {path} as {actor}: {r.status_code}, expected {expected[actor]}: "
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
