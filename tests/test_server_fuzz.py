"""schemathesis fuzzes the OpenAPI document of a real `harness serve` (loopback, bounded examples): whatever a
request holds, the answer is never a 5xx. Run as a participant and as an organizer (organizer commands reach
their validation instead of stopping at 403)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ORGANIZER, make_tiny_task


@pytest.mark.parametrize("who", ["alice", ORGANIZER])
def test_schemathesis_finds_no_server_error(cli, served, remote_cli, tmp_path, who):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    token = remote_cli.token(who)
    st = Path(sys.executable).with_name("st")
    cmd = [str(st), "run", f"{served.url}/api/v1/openapi.json", "--checks", "not_a_server_error",
           "--max-examples", "6", "--seed", "1", "-H", f"Authorization: Bearer {token}", "--request-timeout", "40",
           "--exclude-path-regex", "/log$",  # a followed log streams until its session ends: asked for below
           "--exclude-operation-id", "upload_session", "--exclude-operation-id", "upload_task",  # tar bodies: see
           # test_server_uploads.py
           "--phases", "examples,coverage,fuzzing"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "Fuzzing" in out and re.search(r"\b[1-9]\d* passed", out) and not re.search(r"\b0 passed", out), \
        out[-3000:]
    print(out[-1500:])


def test_log_endpoints_answer_garbage_without_a_server_error(cli, served, remote_cli):
    import httpx
    token = remote_cli.token("alice")
    with httpx.Client(base_url=served.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}) as c:
        for path in ("/sessions/x/y/1/log", "/sessions/%2e%2e/tiny/1/log", "/sessions/a/b/99999999999999999999/log",
                     "/submissions/0/log", "/submissions/-1/log?follow=true", "/submissions/abc/log"):
            assert c.get(path).status_code < 500, path
