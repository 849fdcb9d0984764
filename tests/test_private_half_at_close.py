"""`[scheduler] private_halves_at_close`: a participant's session running beside a private half's grade sees it
(the machine's CPU, its free space: docs/threat-model.md), so an operator may keep every private half to its
round's end (one rule: harness.scheduler.lease.private_due_now and private_kept). Before the end nothing grades
one (the scheduler, a rescore) and nothing waits for one; from the end the round's final selection is frozen, the
halves are scored with no hold, and the close has them."""
import time

import pytest
from test_private_half_later import ORGANIZER, _contest, _expected_private, _row, _session

from harness.store.models import Submission

AT_CLOSE = "[scheduler]\nidle_exit_seconds = 1\nprivate_halves_at_close = true\n"


def test_kept_to_the_rounds_end_a_private_half_is_scored_only_once_the_round_has_ended(cli, tmp_path, state_root):
    """`[scheduler] private_halves_at_close`: a participant's session running beside a private half's grade sees
    it (the machine's CPU, its free space: docs/threat-model.md), so an operator may keep every private half until
    its round takes no more submits. Before the end no scheduler stays up for one, the organizer's preview shows
    none at once (it does not wait for them), and a rescore grades the public half again and leaves the private
    one due; once the round has ended the preview scores it, and the close has it."""
    from harness.contest.rounds import PREVIEW_WAIT
    from harness.scheduler.lease import FileLock
    (state_root / "harness.toml").write_text(AT_CLOSE)
    name = _contest(cli, tmp_path, slow=0)
    got = cli.json("submit", name, "0", user="alice")
    assert got["status"] == "succeeded" and _row(got["id"])[:3] == ("succeeded", True, None)
    lock, start = FileLock(state_root / ".harness" / "scheduler.lock"), time.monotonic()
    while not lock.is_free() and time.monotonic() - start < 30:
        time.sleep(0.1)
    assert lock.is_free()  # (an idle scheduler left: a private half kept to the end holds none up)
    assert _row(got["id"])[:3] == ("succeeded", True, None)
    start = time.monotonic()
    [row] = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)["rows"]
    assert row["private"] is None and time.monotonic() - start < PREVIEW_WAIT  # (not waited for)
    evaluation = tmp_path / "tiny" / "evaluation.py"  # the organizer "fixes" the evaluator: the error rate now
    evaluation.write_text(evaluation.read_text().replace("print(sum(p == l", "print(1 - sum(p == l"))
    [mine] = cli.json("rescore", "tiny", user=ORGANIZER)["submissions"]
    assert mine["after"][1:] == [pytest.approx(1 - got["score"]), None]  # the public half graded again
    assert _row(got["id"])[:3] == ("succeeded", True, None)  # and the private one still kept
    cli("contest", "clock", "2026-07-02T01:00:00", user=ORGANIZER)  # the round has ended, not closed yet
    [row] = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)["rows"]
    assert row["private"] == pytest.approx(1 - _expected_private())  # scored now, by the evaluator of now
    assert _row(got["id"])[1:3] == (False, pytest.approx(1 - _expected_private()))
    closed = cli.json("contest", "close", "cup/r1", user=ORGANIZER)
    assert closed["boards"]["tiny"][0]["private"] == pytest.approx(1 - _expected_private())
    assert not closed["no_private_score"]


def _scheduler_left(state_root, within=30) -> bool:
    from harness.scheduler.lease import FileLock
    lock, start = FileLock(state_root / ".harness" / "scheduler.lock"), time.monotonic()
    while not lock.is_free() and time.monotonic() - start < within:
        time.sleep(0.1)
    return lock.is_free()


def test_from_the_rounds_end_its_final_selection_is_frozen(cli, tmp_path, state_root):
    """Review of this stop: the halves are scored from the end, not the close, and any command then starts the
    scheduler (a participant's `history` too); had the selection stayed open until the close, a session watching
    them graded one by one could have chosen its finals by what it saw."""
    (state_root / "harness.toml").write_text(AT_CLOSE)
    name = _contest(cli, tmp_path, slow=0)
    got = cli.json("submit", name, "0", user="alice")
    assert cli.json("submit", "select", str(got["id"]), user="alice")["selected"] == [got["id"]]  # open: as ever
    cli("contest", "clock", "2026-07-02T00:00:01", user=ORGANIZER)  # ended, not closed
    refused = cli("submit", "select", str(got["id"]), user="alice", code=2).stderr
    assert "round cup/r1 has ended; its selection is final" in refused


def test_a_rescore_before_the_end_grades_no_private_half(cli, tmp_path, state_root):
    """Review of this stop: a submission that was not due (its evaluator failed on the public half, then was
    fixed) was graded whole by a rescore, its private score there while the round took submits."""
    (state_root / "harness.toml").write_text(AT_CLOSE)
    name = _contest(cli, tmp_path, slow=0)
    evaluation = tmp_path / "tiny" / "evaluation.py"
    good = evaluation.read_text()  # a bug on the public half alone (its 6 labels): the submit fails
    evaluation.write_text(good.replace("preds = open", "if len(labels) == 6:\n    raise RuntimeError('bug')\n"
                                       "preds = open", 1))
    got = cli.json("submit", name, "0", user="alice", code=None)
    assert _row(got["id"])[:3] == ("failed", False, None)
    evaluation.write_text(good)  # fixed, and rescored while the round is open
    [mine] = cli.json("rescore", "tiny", user=ORGANIZER)["submissions"]
    assert mine["after"][0] == "succeeded" and mine["after"][2] is None
    assert _row(got["id"])[:3] == ("succeeded", True, None)  # the private half kept to the end
    cli("contest", "clock", "2026-07-02T01:00:00", user=ORGANIZER)
    closed = cli.json("contest", "close", "cup/r1", user=ORGANIZER)
    assert closed["boards"]["tiny"][0]["private"] == pytest.approx(_expected_private())


def test_a_round_that_ends_while_a_rescore_waits_is_rescored_all_the_same(cli, tmp_path, state_root, monkeypatch):
    """Review of this stop: the halves kept were looked up after the wait for the others; a round that ended
    meanwhile had its submissions left out (their public scores the old evaluator's, their private the new's)."""
    from harness.core import clock
    from harness.service import contests
    (state_root / "harness.toml").write_text(AT_CLOSE)
    got = cli.json("submit", _contest(cli, tmp_path, slow=0), "0", user="alice")
    assert _scheduler_left(state_root)
    evaluation = tmp_path / "tiny" / "evaluation.py"  # the organizer's fix: the error rate now
    evaluation.write_text(evaluation.read_text().replace("print(sum(p == l", "print(1 - sum(p == l"))
    wait = contests.wait_private

    def the_round_ends_meanwhile(h, *args, **kwargs):
        done = wait(h, *args, **kwargs)
        clock.set_clock(h.settings, clock.now(h.settings).replace(day=2, hour=0, minute=0, second=1))
        return done
    monkeypatch.setattr(contests, "wait_private", the_round_ends_meanwhile)
    [mine] = cli.json("rescore", "tiny", user=ORGANIZER)["submissions"]
    assert mine["id"] == got["id"] and mine["after"][1] == pytest.approx(1 - got["score"])


def test_kept_halves_hold_no_scheduler_up_after_the_end(monkeypatch, tmp_path, state_root):
    """Review of this stop: each half taken at the end added its longest time to the hold, one after another
    (100 halves: 23 hours); the selection frozen at the end, when the scheduler leaves tells nothing of use."""
    from harness.core.settings import load_settings
    from harness.scheduler import private_half
    (state_root / "harness.toml").write_text(AT_CLOSE)
    settings = load_settings()
    monkeypatch.setattr(private_half, "score", lambda *a: None)
    monkeypatch.setattr(private_half, "due", lambda store, s: [(i, str(tmp_path)) for i in range(100)])
    worker = private_half.Worker(None, 4)
    try:
        worker.tick(settings)
        assert worker.hold_until <= time.monotonic()
    finally:
        worker.shutdown()


def _set(sub_id, **values):
    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Submission
    h = Harness(load_settings(user=ORGANIZER))
    try:
        with h.tx() as db:
            sub = db.get(Submission, sub_id)
            for name, value in values.items():
                setattr(sub, name, value)
            return sub.run_id
    finally:
        h.store.close()


def test_no_private_half_is_scored_while_a_submit_of_its_round_is_still_to_report(cli, tmp_path, state_root):
    """Review of this stop: from the end alone, the others' private halves were scored while a submit made before
    it still ran; its inference could watch them, then choose what to predict, and its report could still make it
    its team's best-public pick. A round is graded once it has ended and reports nothing more (or is closed)."""
    from harness.core.enums import RunStatus
    from harness.core.settings import load_settings
    from harness.scheduler import private_half
    from harness.state import Harness
    (state_root / "harness.toml").write_text(AT_CLOSE)
    first = cli.json("submit", _contest(cli, tmp_path, slow=0), "0", user="alice")
    late = cli.json("submit", _session(cli, tmp_path, "other"), "0", user="alice")
    assert _scheduler_left(state_root)
    _set(late["id"], status=RunStatus.RUNNING, score=None, private_due=False)  # (as one still inferring)
    cli("contest", "clock", "2026-07-02T00:00:01", user=ORGANIZER)  # ended, not closed
    h = Harness(load_settings(user=ORGANIZER))
    try:
        assert private_half.due(h.store, h.settings) == []
    finally:
        h.store.close()
    [row] = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)["rows"]
    assert row["private"] is None and _row(first["id"])[:3] == ("succeeded", True, None)
    _set(late["id"], status=RunStatus.SUCCEEDED, score=late["score"], private_due=True)  # reported
    [row] = cli.json("contest", "board", "tiny", "--private", user=ORGANIZER)["rows"]
    assert row["private"] is not None and _row(first["id"])[1] is False and _row(late["id"])[1] is False


def test_a_closed_rounds_private_scores_stand_whatever_the_clock_says(cli, tmp_path, state_root):
    """Review of this stop: with the contest clock set back before a closed round's end (a replay), a rescore took
    it for a round not ended and dropped its private scores from the revealed board."""
    (state_root / "harness.toml").write_text(AT_CLOSE)
    got = cli.json("submit", _contest(cli, tmp_path, slow=0), "0", user="alice")
    cli("contest", "clock", "2026-07-02T01:00:00", user=ORGANIZER)
    assert cli.json("contest", "close", "cup/r1", user=ORGANIZER)["boards"]["tiny"][0]["private"] is not None
    cli("contest", "clock", "2026-07-01T12:00:00", user=ORGANIZER)
    [mine] = cli.json("rescore", "tiny", user=ORGANIZER)["submissions"]
    assert mine["after"][2] == pytest.approx(_expected_private()) and _row(got["id"])[1] is False
    [row] = cli.json("contest", "board", "tiny", user="alice")["rows"]
    assert row["private"] == pytest.approx(_expected_private())


def test_without_the_setting_the_selection_stays_open_to_the_close_and_a_rescore_grades_both_halves(
        cli, tmp_path, state_root):
    (state_root / "harness.toml").write_text("[scheduler]\nidle_exit_seconds = 1\n")
    got = cli.json("submit", _contest(cli, tmp_path, slow=0), "0", user="alice")
    cli("contest", "clock", "2026-07-02T00:00:01", user=ORGANIZER)
    assert cli.json("submit", "select", str(got["id"]), user="alice")["selected"] == [got["id"]]
    [mine] = cli.json("rescore", "tiny", user=ORGANIZER)["submissions"]
    assert mine["after"][2] == pytest.approx(_expected_private()) and _row(got["id"])[1] is False


def test_a_submit_let_in_just_before_the_end_is_seen_before_any_private_half_is_graded(cli, tmp_path, state_root,
                                                                                        monkeypatch):
    """Review 3 of this stop: a submit passes the round's gate before the end and commits its queued row a moment
    later; a plain read between the two found the round ended with nothing to report. The check before a kept
    half is graded (lease.round_graded) runs one after another with the submits of the round's tasks: it waits
    for the commit, and sees the submit queued."""
    import threading

    from harness.core import clock
    from harness.core.settings import load_settings
    from harness.scheduler import lease
    from harness.service import submits
    from harness.state import Harness
    (state_root / "harness.toml").write_text(AT_CLOSE)
    first = cli.json("submit", _contest(cli, tmp_path, slow=0), "0", user="alice")
    other = _session(cli, tmp_path, "other")
    assert _scheduler_left(state_root) and _row(first["id"])[:2] == ("succeeded", True)
    cli("contest", "clock", "2026-07-01T23:59:59", user=ORGANIZER)  # a second before the end
    org = Harness(load_settings(user=ORGANIZER))
    with org.tx() as db:
        round_id = db.get(Submission, first["id"]).round_id
    seen, check = {}, None
    gate = submits.check_gpu_request

    def the_end_passes_meanwhile(db, admitted, gpus):  # admitted, not committed yet: the scheduler looks now
        nonlocal check
        gate(db, admitted, gpus)
        clock.set_clock(org.settings, clock.now(org.settings).replace(day=2, hour=1))
        check = threading.Thread(target=lambda: seen.update(
            graded=lease.round_graded(org.settings, org.store, round_id, ["tiny"])))
        check.start()
        time.sleep(1)  # (it waits for this submit's transaction)
        seen["before_commit"] = "graded" in seen
    monkeypatch.setattr(submits, "check_gpu_request", the_end_passes_meanwhile)
    monkeypatch.setattr(submits, "wake", lambda settings: None)
    h = Harness(load_settings(user="alice"))
    try:
        late, _ = submits.start_submit(h, other, "0")
    finally:
        h.store.close()
    check.join(30)
    org.store.close()
    assert seen == {"before_commit": False, "graded": False}  # it waited, then saw the late submit queued
    assert _row(late)[0] == "queued"
