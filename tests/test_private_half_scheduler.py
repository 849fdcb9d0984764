"""The scheduler's side of a round's private halves (harness.scheduler.private_half): they are scored off every
run slot and grade thread, several at once, at a low priority (in a container too), and nothing of the scheduler
tells when one was scored: its life past a submit is the private half's longest time, a retried try does not grow
it, and a private half's end wakes no pass."""
import time

import pytest
from helpers import make_tiny_task
from test_private_half_later import _contest, _expected_private, _row

HOLD = 8  # [scheduler] private_hold_seconds in the test below: longer than its slow private half (5 s)


@pytest.mark.parametrize("slow", [0, 5])
def test_the_scheduler_stays_as_long_however_soon_the_private_half_is_scored(cli, tmp_path, state_root, slow):
    """Its life past a submit's report is the private half's longest time plus its idle time, whatever the
    evaluator did on the hidden labels (review 2: an otherwise idle scheduler left once the private half was
    scored, and whether the next command found it running told whether that took longer than a chosen time)."""
    from harness.scheduler.lease import FileLock
    (state_root / "harness.toml").write_text(f"[scheduler]\nidle_exit_seconds = 1\nprivate_hold_seconds = {HOLD}\n")
    name = _contest(cli, tmp_path, slow=slow)
    lock = FileLock(state_root / ".harness" / "scheduler.lock")
    got = cli.json("submit", name, "0", user="alice")
    reported = time.monotonic()
    assert _row(got["id"])[:2] == ("succeeded", True) or slow == 0  # (a fast half may be scored already)
    while not lock.is_free() and time.monotonic() - reported < HOLD + 30:
        time.sleep(0.1)
    stayed = time.monotonic() - reported
    assert HOLD - 0.5 < stayed < HOLD + 1 + 4, stayed  # (the hold, then its idle second; slack for a busy machine)
    assert _row(got["id"])[1:3] == (False, _expected_private())


def test_a_private_half_taken_again_after_a_failed_try_does_not_grow_the_hold(monkeypatch, tmp_path):
    """Review of stop 51: each try of one submission's private half (a database that failed it) grew the hold by
    a whole private half's time, so an outage of an hour kept the scheduler up for days."""
    from harness.core.settings import load_settings
    from harness.scheduler import private_half
    settings = load_settings()
    monkeypatch.setattr(private_half, "score", lambda *a: None)  # (as a failed try: it returns, due still)
    monkeypatch.setattr(private_half, "due", lambda store, settings: [(1, str(tmp_path / "gone"))])
    worker = private_half.Worker(None, 1)
    start = time.monotonic()
    for _ in range(10):
        worker.tick(settings)
        time.sleep(0.02)
    one = private_half.private_half_seconds(settings, tmp_path / "gone")
    assert one <= worker.hold_until - start <= one + 1


def test_private_halves_are_scored_several_at_once_at_a_low_priority(monkeypatch, tmp_path):
    """After a flood at a round's end its close waits for every private half: a quarter of the run slots score
    them at once, each thread at the private halves' niceness; the scheduler's hold covers them all."""
    import os
    import threading

    from harness.core.settings import load_settings
    from harness.scheduler import private_half
    settings = load_settings()
    settings.max_concurrent_runs, settings.private_hold = 8, 5
    lock, now, most, seen = threading.Lock(), [0], [0], []

    def score(settings, store, run_id):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        seen.append(os.getpriority(os.PRIO_PROCESS, 0))
        time.sleep(0.5)
        with lock:
            now[0] -= 1
    monkeypatch.setattr(private_half, "score", score)
    monkeypatch.setattr(private_half, "due",
                        lambda store, settings: [(run_id, str(tmp_path)) for run_id in (1, 2, 3, 4, 5)])
    worker = private_half.Worker(None, private_half.threads(settings))
    start = time.monotonic()
    worker.tick(settings)
    worker.pool.shutdown(wait=True)
    assert most[0] == 2 and seen == [private_half.PRIORITY] * 5
    assert worker.busy and worker.hold_until - start >= 5 * 5  # (held as if one after another)


def test_a_private_halfs_end_wakes_no_scheduler_pass(monkeypatch, tmp_path):
    """Review of stop 51: its end rang the scheduler's bell, and the extra pass it made (off the scheduler's
    rhythm, reading every running session's events file) told a running session when the private half was
    scored. Now the next regular pass forgets it."""
    import os

    from harness.core.settings import load_settings
    from harness.scheduler import private_half
    from harness.scheduler.loop import Scheduler
    from harness.store import open_store
    settings = load_settings()
    ended = []
    monkeypatch.setattr(private_half, "score", lambda *a: ended.append(time.monotonic()))
    monkeypatch.setattr(private_half, "due", lambda store, settings: [(7, str(tmp_path))] if not ended else [])
    scheduler = Scheduler(settings, open_store(settings.db_url))
    try:
        scheduler.private.tick(settings)
        scheduler.private.pool.shutdown(wait=True)
        assert ended and 7 in scheduler.private.running
        with pytest.raises(BlockingIOError):  # nothing rang
            os.read(scheduler._wake_r, 16)
        scheduler.private.tick(settings)
        assert not scheduler.private.running and scheduler.private.busy  # (forgotten; held still)
    finally:
        scheduler.shutdown()


NICENESS_EVAL = '''
import argparse
import os
p = argparse.ArgumentParser()
p.add_argument("--prediction", type=str)
p.parse_args()
open("/data/starthon/test/test_label").read()  # the fixed path: a 2019 evaluator, run in a container here
print(os.nice(0))  # its own niceness, as its score
'''


@pytest.mark.docker
def test_a_container_evaluator_started_by_a_lowered_thread_runs_as_low(tmp_path, state_root, docker_ready,
                                                                        monkeypatch):
    """A private half's evaluator (scheduler.private_half: its thread at niceness 10) in a container runs at that
    niceness, and its container's CPU weight is lowered to match, not at the Docker daemon's priority."""
    import threading

    from harness.core.settings import load_settings
    from harness.scheduler.private_half import PRIORITY, lower_priority
    from harness.scoring import evaluator, evaluator_call
    from harness.taskpacks import layout
    from harness.taskpacks.registry import Manifest
    pack = make_tiny_task(tmp_path / "starthon", name="starthon")
    (pack / "evaluation.py").write_text(NICENESS_EVAL)
    prediction = tmp_path / "prediction"
    prediction.write_text("1\n")
    settings, manifest = load_settings(), Manifest.read(pack)
    call = evaluator_call.detect(pack, manifest)
    call.image, call.prefer = settings.docker_image, "docker"
    got, commands = {}, []
    real = evaluator_call.command
    monkeypatch.setattr(evaluator, "command", lambda *a, **k: commands.append(real(*a, **k)) or commands[-1])
    for name, lower in (("plain", False), ("lowered", True)):
        def score(name=name, lower=lower):
            if lower:
                lower_priority()
            got[name] = evaluator.evaluate(layout.evaluator(pack), prediction, layout.label_path(pack, False), 60,
                                           None, call).score
        thread = threading.Thread(target=score)
        thread.start()
        thread.join(120)
    assert got == {"plain": 0, "lowered": PRIORITY}
    assert "--cpu-shares" not in commands[0] and commands[1][commands[1].index("--cpu-shares") + 1] == "110"

