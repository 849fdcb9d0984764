"""schemathesis fuzzes the OpenAPI document of a real `harness serve` (loopback, bounded examples): whatever a
request holds, the answer is never a 5xx. Run as a participant and as an organizer (organizer commands reach
their validation instead of stopping at 403)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant


@pytest.mark.parametrize("who", ["alice", ORGANIZER])
def test_schemathesis_finds_no_server_error(cli, served, remote_cli, tmp_path, who):
    """As a participant, the fuzz also leaves the service serving others: bob's session, submit, ps and board
    succeed afterwards and the task's files are unchanged (an organizer's fuzz may change tasks: it is theirs)."""
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    token = remote_cli.token(who)
    from test_trust import _tree_digest
    before = _tree_digest(tmp_path / "tiny")
    st = Path(sys.executable).with_name("st")
    cmd = [str(st), "run", f"{served.url}/api/v1/openapi.json", "--checks", "not_a_server_error",
           "--max-examples", "6", "--seed", "1", "-H", f"Authorization: Bearer {token}", "--request-timeout", "40",
           "--exclude-path-regex", "/log$",  # a followed log streams until its session ends: asked for below
           "--exclude-operation-id", "start_session", "--exclude-operation-id", "add_task",  # tar bodies: see
           # test_server_uploads.py
           "--phases", "examples,coverage,fuzzing"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "Fuzzing" in out and re.search(r"\b[1-9]\d* passed", out) and not re.search(r"\b0 passed", out), \
        out[-3000:]
    print(out[-1500:])
    if who == ORGANIZER:
        return
    bob = remote_cli("run", "-d", "tiny", "-e", "main.py", "-a", "--epochs 1", participant(tmp_path / "bob", NSML_MAIN),
                     user="bob").stdout.split()[1]
    remote_cli("logs", "-f", bob, user="bob")
    assert remote_cli.json("submit", bob, "0", user="bob")["status"] == "succeeded"
    assert any(r["name"] == bob for r in remote_cli.json("ps", "-a", user="bob"))
    assert any(r["user"] == "bob" for r in remote_cli.json("board", "tiny", user="bob"))
    assert _tree_digest(tmp_path / "tiny") == before


def test_log_endpoints_answer_garbage_without_a_server_error(cli, served, remote_cli):
    import httpx
    token = remote_cli.token("alice")
    with httpx.Client(base_url=served.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}) as c:
        for path in ("/sessions/x/y/1/log", "/sessions/%2e%2e/tiny/1/log", "/sessions/a/b/99999999999999999999/log",
                     "/submissions/0/log", "/submissions/-1/log?follow=true", "/submissions/abc/log"):
            assert c.get(path).status_code < 500, path
