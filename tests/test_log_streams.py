"""Log streams are a hostile channel of resource use: a participant's run writes the log (up to limits.log_bytes),
and a participant's requests open reads and follows of it. A read holds one chunk of it in memory, never the whole
log; follows are capped per account and in all, so one participant holding follows open cannot take the server's
worker threads from everybody else; a follow whose client left gives its slot back."""
import gc
import time

import httpx
import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant

from harness.core.errors import QuotaExceeded
from harness.service import log_streams
from harness.service.log_streams import FollowSlots, follow_file, read_chunks


def test_a_log_is_read_a_chunk_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(log_streams, "LOG_CHUNK", 1000)
    log = tmp_path / "log"
    log.write_bytes(bytes(range(256)) * 20)
    chunks = list(read_chunks(log))
    assert b"".join(chunks) == log.read_bytes() and max(map(len, chunks)) == 1000 and len(chunks) == 6
    assert list(read_chunks(tmp_path / "none")) == []
    ended = []
    followed = follow_file(log, lambda: bool(ended), recheck=0.05)
    got = [next(followed) for _ in range(6)]
    assert b"".join(got) == log.read_bytes()  # what is there comes at once, a chunk at a time, before any wait
    with open(log, "ab") as fh:
        fh.write(b"more")
    ended.append(True)
    assert b"".join(followed).endswith(b"more")


def test_an_idle_follow_comes_back_to_its_reader(tmp_path):
    """Nothing new for RECHECK seconds: an empty chunk, so the server's thread returns and can see the client
    gone, instead of waiting inside the stream until the run writes or ends (hours)."""
    log = tmp_path / "log"
    log.write_bytes(b"")
    followed = follow_file(log, lambda: False, recheck=0.1)
    start = time.monotonic()
    assert next(followed) == b"" and time.monotonic() - start < 2
    followed.close()


def test_the_last_follows_are_kept_for_accounts_that_hold_none():
    """A few colluding accounts fill the slots up to the kept quarter; past it, only an account that holds none
    may open one, so every other user still can."""
    slots = FollowSlots(per_account=4, in_all=8)  # the last 8 // 4 = 2 are kept
    held = [slots.take(user) for user in ("alice", "bob", "carol") for _ in range(2)]  # 6 of 8
    with pytest.raises(QuotaExceeded, match="has 6 long waits open"):
        slots.take("alice")  # alice holds 2 already: the kept ones are not hers
    held += [slots.take("dave"), slots.take("erin")]
    with pytest.raises(QuotaExceeded, match="has 8 long waits open"):
        slots.take("frank")  # all 8 taken: nobody
    for release in held:
        release()
    assert slots.held("alice") == 0 and [slots.take("alice") for _ in range(4)]


def test_follow_slots_cap_an_account_and_everybody_and_come_back_however_a_stream_ends():
    slots = FollowSlots(per_account=2, in_all=3)
    a1 = slots.hold("alice", iter([b"x"]))
    a2 = slots.hold("alice", iter([b"y"]))
    with pytest.raises(QuotaExceeded, match="2 long waits of yours"):
        slots.hold("alice", iter([]))
    b1 = slots.hold("bob", iter([]))
    with pytest.raises(QuotaExceeded, match="has 3 long waits open"):
        slots.hold("carol", iter([]))
    assert list(a1) == [b"x"] and slots.held("alice") == 1  # read to its end
    next(a2)
    a2.close()  # closed mid-stream
    assert slots.held("alice") == 0
    del b1  # dropped before it was ever read: no finally would run
    gc.collect()
    assert slots.held("bob") == 0
    release = slots.take("carol")
    release()
    release()  # twice: released once
    assert slots.held("carol") == 0 and [slots.hold("dave", iter([])) for _ in range(2)]


@pytest.fixture
def silent_session(cli, served, remote_cli, tmp_path):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    tokens = {u: remote_cli.token(u) for u in ("alice", "bob")}
    quiet = NSML_MAIN.replace("import nsml", "import time\nimport nsml\ntime.sleep(90)", 1)
    name = cli("run", "-d", "tiny", participant(tmp_path / "quiet", quiet)).stdout.split()[1]
    return name, tokens


def test_one_participants_follows_cannot_stop_other_users(served, silent_session):
    """Alice opens log follows of her silent session one after another and keeps them open: past her share she gets
    429 at once, and bob is served meanwhile; when her clients leave, her slots come back within seconds."""
    name, tokens = silent_session
    user, task, number = name.split("/")
    path = f"{served.url}/api/v1/sessions/{user}/{task}/{number}/log"
    alice = httpx.Client(headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=30)
    bob = httpx.Client(headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=10)
    opened, refused = [], 0
    for _ in range(45):  # more than the server's 40 worker threads
        r = alice.send(alice.build_request("GET", path, params={"follow": True}), stream=True)
        if r.status_code == 429:
            refused += 1
            assert "long waits of yours" in r.read().decode()
            r.close()
        else:
            assert r.status_code == 200
            opened.append(r)
    assert len(opened) == log_streams.FOLLOWS_PER_ACCOUNT and refused == 45 - len(opened)
    start = time.monotonic()
    assert bob.get(f"{served.url}/api/v1/whoami").json()["user"] == "bob"
    assert bob.get(f"{served.url}/api/v1/sessions", params={"all": True}).status_code == 200
    assert time.monotonic() - start < 5
    for r in opened:
        r.close()
    deadline = time.monotonic() + 20
    while True:  # the server's streams notice the gone clients at their next idle beat (about a second)
        r = alice.send(alice.build_request("GET", path, params={"follow": True}), stream=True)
        status = r.status_code
        r.close()
        if status == 200:
            break
        assert time.monotonic() < deadline, "a follow whose client left kept its slot"
        time.sleep(0.5)


def test_a_submission_wait_takes_one_of_the_same_slots(cli, tiny_task, tmp_path, monkeypatch):
    """Forty waits on one's own submission held every worker thread as forty follows did: a wait takes a slot for
    as long as it blocks, gives it back when it returns, and over the cap is refused at once (the remote client
    then asks again a second later)."""
    from helpers import run_session

    from harness.core.settings import load_settings
    from harness.service import local
    from harness.state import Harness
    name = run_session(cli, participant(tmp_path / "p", NSML_MAIN))
    assert cli("submit", name, "1").stdout.splitlines() == ["Score: 1.0", "Done"]
    slots = FollowSlots(per_account=1, in_all=5)
    monkeypatch.setattr(local, "SLOTS", slots)
    api = local.LocalApi(Harness(load_settings()))
    assert api.wait_submission(1, timeout=1)["status"] == "succeeded" and slots.held("alice") == 0
    release = slots.take("alice")
    with pytest.raises(QuotaExceeded, match="long waits of yours"):
        api.wait_submission(1, timeout=1)
    release()
    assert api.wait_submission(1, timeout=1)["score"] == 1.0


FLOOD = '''
import os, sys, time
chunk = b"x" * (1 << 20)
print("first line", flush=True)
for _ in range(48):
    os.write(1, chunk)
os.write(2, b"still going\\n")
'''


def test_a_flooding_run_never_grows_its_log_past_the_limit(cli, tiny_task, tmp_path, state_root):
    """The run wrote into its log file itself, cut back only at the scheduler's looks: 1.5 GB against a 1 MiB
    limit in a quarter of a second (the hostile review of stop 48). The harness writes it now (runtime.run_log):
    at no moment is it past the limit and the cut's mark, the run's first lines are kept, and the run, which
    waits on its pipe past the limit (its output read at run_log.DRAIN_RATE), ends well."""
    import threading

    from helpers import run_session

    from harness.runtime import run_log
    limit = 1 << 20
    (state_root / "harness.toml").write_text(f"[limits]\nlog_bytes = {limit}\n")
    code = participant(tmp_path / "flood", FLOOD)
    name = run_session(cli, code, wait=False)
    runs, peak, done = state_root / ".harness" / "runs", [0], threading.Event()

    def watch():
        while not done.is_set():
            for path in runs.glob("*/log.txt"):
                try:
                    st = path.stat()
                except OSError:
                    continue
                peak[0] = max(peak[0], st.st_size, st.st_blocks * 512)
            time.sleep(0.01)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        cli("logs", "-f", name)
    finally:
        done.set()
        watcher.join()
    [row] = [r for r in cli.json("ps", "-a") if r["name"] == name]
    assert row["status"] == "succeeded", row
    marker = f"\n[harness] log truncated: over {limit} bytes\n"
    assert 0 < peak[0] <= limit + len(marker) + 4096, peak  # (a block's rounding of what is allocated)
    text = cli("logs", name).stdout
    assert text.startswith("first line") and marker.strip() in text and "still going" not in text
    assert run_log.DRAIN_RATE >= 1 << 20


def test_a_run_printing_a_byte_at_a_time_costs_the_relay_a_hundred_reads_a_second(tmp_path, monkeypatch):
    """The harness reads the run's output now, so a run that writes a byte at a time would wake it as often as it
    writes: a read that empties the pipe waits run_log.GATHER_SECONDS for more to gather. Nothing is lost, and
    past the limit the cut is marked once."""
    import subprocess
    import sys

    from harness.runtime import run_log
    reads, real = [], run_log.CappedLog.write
    monkeypatch.setattr(run_log.CappedLog, "write", lambda self, chunk: reads.append(len(chunk)) or real(self, chunk))
    log = tmp_path / "log.txt"
    relay = run_log.LogRelay(log, 1 << 20)
    writer = subprocess.Popen([sys.executable, "-c", "import os, time\nend = time.monotonic() + 1.5\n"
                               "while time.monotonic() < end:\n    os.write(1, b'x')\n"], stdout=relay.write_end)
    relay.started()
    assert writer.wait(30) == 0
    relay.finish()
    assert sum(reads) > 1000 and len(reads) <= 2.0 / run_log.GATHER_SECONDS, (len(reads), sum(reads))
    kept = log.read_bytes()
    assert kept == b"x" * sum(reads) if sum(reads) <= 1 << 20 else kept.count(b"log truncated") == 1
