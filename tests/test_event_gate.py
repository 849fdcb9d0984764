"""The events-file gate fuzzed: whatever a line holds, it becomes a typed report or checkpoint within bounds, or a
one-line refusal — never another exception. End to end, a session that writes a few hundred hostile lines gets
exactly the lines the gate accepts recorded (nothing lost, nothing inflated) while another user is served."""
import json
import math
import random
from datetime import datetime, timezone

from helpers import ORGANIZER, make_tiny_task, participant
from hypothesis import given, settings
from hypothesis import strategies as st
from test_trust import _tree_digest

from harness.runs import event_gate, events

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 500), max_value=10 ** 500),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=3)),
                      max_leaves=8)
KEYS = st.one_of(st.text(max_size=80), st.sampled_from(["loss", "val/acc@1", "<script>", "=SUM(A1)", "a" * 65, ""]))
EVENTS = st.fixed_dictionaries({"type": st.sampled_from(["report", "checkpoint", "loader_error", "score", None])},
                               optional={"metrics": st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=5)),
                                         "name": st.one_of(VALUES, KEYS), "step": VALUES, "scope": VALUES,
                                         "summary": VALUES, "time": VALUES, "elapsed": VALUES})


def _line(event) -> bytes:
    return json.dumps(event, allow_nan=True, default=str).encode()


def _holds_bounds(got) -> None:
    if isinstance(got, event_gate.Report):
        assert 1 <= len(got.metrics) <= event_gate.MAX_KEYS
        for key, value in got.metrics.items():
            assert event_gate.KEY_ALPHABET.fullmatch(key)
            assert isinstance(value, float) and math.isfinite(value) and abs(value) <= event_gate.MAX_ABS
        assert got.step is None or (isinstance(got.step, int) and abs(got.step) < 2 ** 31)
        assert isinstance(got.summary, bool)
    else:
        assert isinstance(got, event_gate.Checkpoint) and math.isfinite(got.elapsed) and got.elapsed >= 0
        assert event_gate.checkpoint_name_problem(got.name) is None
    assert got.at <= datetime.now(timezone.utc).replace(tzinfo=None)  # never dated after it was read


@settings(max_examples=1500, deadline=None)
@given(st.one_of(EVENTS.map(_line), st.binary(max_size=200)))
def test_every_line_is_an_event_within_bounds_or_a_one_line_refusal(line):
    try:
        got = event_gate.parse(line)
    except event_gate.Refused as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
        return
    _holds_bounds(got)


def _hostile_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ['{"type": "report", "metrics": {"%s": %s}}', '{"type": "report", "step": %s, "metrics": {"k": %s}}',
              '{"type": "checkpoint", "name": "%s"}', '{"type": "%s", "v": %s}', '%s %s']
    words = ["loss", "acc", "<b>x</b>", "=1+1", "..", "1e400", "NaN", "-Infinity", "1" + "0" * 400, "0.25", "3",
             '"str"', "[1, 2]", "null", "true", "\\u001b[2J", "a" * 70, "-7", "1e30", "1.5e30"]
    out = []
    for _ in range(n):
        piece = rng.choice(pieces)
        out.append(piece % tuple(rng.choice(words) for _ in range(piece.count("%s"))))
    return out


def test_a_flood_of_hostile_lines_records_exactly_what_the_gate_accepts(cli, tmp_path, nsml_folder):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    task_before = _tree_digest(tmp_path / "tiny")
    lines = _hostile_lines(400, seed=22)
    accepted = []
    for line in lines:
        try:
            got = event_gate.parse(line.encode())
        except event_gate.Refused:
            continue
        if isinstance(got, event_gate.Report):
            accepted += list(got.metrics.items())
    assert 5 < len(accepted) < 200  # the corpus holds both kinds
    folder = participant(tmp_path / "flood", "import os, json\nlines = json.load(open('lines.json'))\n"
                         "open(os.environ['NSML_EVENTS'], 'a').write('\\n'.join(lines) + '\\n')\n")
    (folder / "lines.json").write_text(json.dumps(lines))
    name = cli("run", "-d", "tiny", "-e", "main.py", folder).stdout.split()[1]
    other = cli("run", "-d", "tiny", "-e", "main.py", "-a", "--epochs 1", nsml_folder, user="carol").stdout.split()[1]
    cli("logs", "-f", name)
    cli("logs", "-f", other, user="carol")
    assert cli.json("submit", other, "0", user="carol")["status"] == "succeeded"
    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Metric, Session
    h = Harness(load_settings())
    with h.tx() as db:
        sess = db.query(Session).filter(Session.name == name).one()
        stored = [(m.key, m.value) for m in db.query(Metric).filter(Metric.session_id == sess.id).order_by(Metric.id)]
    assert stored == accepted
    assert "more events refused in this pass" in cli("logs", name).stdout
    assert any(r["name"] == other for r in cli.json("ps", "-a", user="carol"))
    assert any(r["user"] == "carol" for r in cli.json("board", "tiny", user="carol"))
    assert _tree_digest(tmp_path / "tiny") == task_before


def test_checkpoint_lines_are_measured_once_a_name_and_a_bounded_number_a_read(tmp_path):
    """A run naming the same big checkpoint 2,000 times, then 40 others, costs one measurement of it; at most
    MAX_CHECKPOINTS_PER_PASS names are measured in one read and the rest wait for the next (nothing lost)."""
    run, ckpts = tmp_path / "run", tmp_path / "checkpoints"
    (run / "nsml").mkdir(parents=True)
    (ckpts / "big").mkdir(parents=True)
    for i in range(2000):
        (ckpts / "big" / f"f{i}").touch()
    names = ["big"] * 2000 + [f"c{i}" for i in range(40)]
    for name in names[2000:]:
        (ckpts / name).mkdir()
    (run / events.EVENTS_REL).write_text("".join(json.dumps({"type": "checkpoint", "name": n}) + "\n" for n in names))
    seen, offset, reads = [], 0, 0
    while True:
        got = events.collect(run, offset, ckpts)
        if got.end == offset:
            break
        reads += 1
        batch = [c.name for c, _size in got.events]
        assert len(batch) == len(set(batch)) <= events.MAX_CHECKPOINTS_PER_PASS
        seen += batch
        offset = got.end
    assert sorted(set(seen)) == sorted(set(names)) and seen.count("big") == 1 and reads >= 3


def test_huge_times_are_the_harness_clock_and_an_ended_run_is_read_to_its_end(tmp_path):
    for line in (b'{"type": "report", "metrics": {"a": 1}, "time": 1' + b"0" * 400 + b"}",
                 b'{"type": "checkpoint", "name": "a", "time": -1e400, "elapsed": 1' + b"0" * 400 + b"}"):
        event_gate.parse(line)  # found by the fuzz test: math.isfinite(10**400) raised OverflowError
    run = tmp_path / "run"
    (run / "nsml").mkdir(parents=True)
    (tmp_path / "ck" / "last").mkdir(parents=True)
    report = json.dumps({"type": "report", "metrics": {"loss": 0.5}}) + "\n"
    (run / events.EVENTS_REL).write_text(report * 50_000 + json.dumps({"type": "checkpoint", "name": "last"}) + "\n")
    one = events.collect(run, 0, tmp_path / "ck")
    assert len(one.events) == events.MAX_EVENTS_PER_PASS  # a pass reads a bounded slice
    everything = events.collect_all(run, 0, tmp_path / "ck")
    assert len(everything.events) == 50_001 and everything.events[-1][0].name == "last"


def test_the_reads_after_a_run_ended_share_one_time_budget_and_beat_between_reads(tmp_path, monkeypatch):
    """Checkpoints slow to measure (70,000 empty folders each, saved again and again) once made the end-of-run read
    last minutes in one scheduler pass, so every other run's heartbeat went stale and the next command anyone ran
    took the scheduler for hung and lost every run. The reads share END_SCAN_SECONDS and the scheduler beats
    between them."""
    run = tmp_path / "run"
    (run / "nsml").mkdir(parents=True)
    for name in ("a", "b"):
        (tmp_path / "ck" / name).mkdir(parents=True)
    line = "".join(json.dumps({"type": "checkpoint", "name": n}) + "\n" for n in ("a", "b"))
    (run / events.EVENTS_REL).write_text(line * 10)
    monkeypatch.setattr(events, "MAX_EVENTS_AT_END", 2)  # a read of two lines: ten reads
    beats = []
    everything = events.collect_all(run, 0, tmp_path / "ck", beat=lambda: beats.append(1))
    assert len(everything.events) == 20 and len(beats) == 10  # a budget to spare: all of it, beating between
    monkeypatch.setattr(events, "END_SCAN_SECONDS", 0.0)
    cut = events.collect_all(run, 0, tmp_path / "ck", beat=lambda: beats.append(1))
    assert len(cut.events) == 2 and any("took over 0 s" in n for n in cut.notes)


def test_a_checkpoint_slow_to_walk_holds_no_pass_up_and_loses_no_event(tmp_path, monkeypatch):
    """A run could make a checkpoint slow to walk (100,000 entries, renamed as they are walked) and save it again
    every pass: measured on the scheduler's thread, that held every pass up for seconds, for everyone (attacker
    review); an honest checkpoint of many folders on a busy machine must not hold its run's events back either.
    While the run runs, a walk past the read's budget records the checkpoint at what it found, and that name is
    not walked again for SLOW_AGAIN_SECONDS; once the run has ended, each name is walked whole, once."""
    run, ckpts = tmp_path / "run", tmp_path / "ck"
    (run / "nsml").mkdir(parents=True)
    (ckpts / "slow").mkdir(parents=True)
    for i in range(50):
        (ckpts / "slow" / f"f{i}").write_bytes(b"x" * 100)
    report = json.dumps({"type": "report", "metrics": {"loss": 0.5}}) + "\n"
    save = json.dumps({"type": "checkpoint", "name": "slow"}) + "\n"
    (run / events.EVENTS_REL).write_text(report + (save + report) * 30)
    monkeypatch.setattr(events, "FIRST_SCAN_SECONDS", 1e-9)  # (a walk no read's budget can finish)
    walks = []
    real = events.usage
    monkeypatch.setattr(events, "usage", lambda *a: walks.append(a[0]) or real(*a))
    got = events.collect(run, 0, ckpts)
    assert got.end == (run / events.EVENTS_REL).stat().st_size and not got.notes  # every event read, none refused
    [(checkpoint, size)] = [e for e in got.events if isinstance(e, tuple)]
    assert checkpoint.name == "slow" and size < 5000 and len(got.events) == 32 and len(walks) == 1
    again = events.collect(run, 0, ckpts)  # (saved again next pass: what the slow walk found stands)
    assert len(again.events) == 32 and len(walks) == 1
    monkeypatch.setattr(events, "MAX_EVENTS_AT_END", 2)  # (a save and a report a read: thirty reads)
    everything = events.collect_all(run, len(report), ckpts)
    assert [e[1] for e in everything.events if isinstance(e, tuple)] == [5000] * 30  # whole, once it has ended
    assert len(walks) == 2


def test_a_flood_of_checkpoints_after_many_summary_keys_keeps_each_copy_small_and_the_count_bounded(
        cli, tmp_path, nsml_folder, monkeypatch):
    """A run reports many distinct summary keys once, then saves checkpoint after checkpoint: each checkpoint keeps
    the summary's last MAX_SUMMARY_KEYS values (read once a pass, then kept up to date), a session keeps at most
    MAX_CHECKPOINTS (one note past it), and a run whose session was removed while it stopped records nothing and
    fails nobody's pass."""
    from datetime import datetime, timezone

    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Checkpoint, Run, Session
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    name = cli("run", "-d", "tiny", "-e", "main.py", "-a", "--epochs 1", nsml_folder).stdout.split()[1]
    cli("logs", "-f", name)
    now = datetime.now(timezone.utc)
    flood = [event_gate.Report({f"k{i}": float(i) for i in range(40)}, None, None, True, now)]
    for i in range(30):
        flood += [(event_gate.Checkpoint(f"c{i}", 1.0, now), 0),
                  event_gate.Report({"loss": float(i)}, i, None, True, now)]
    h = Harness(load_settings())
    with h.tx() as db:
        sess = db.query(Session).filter(Session.name == name).one()
        before = db.query(Checkpoint).filter(Checkpoint.session_id == sess.id).count()
        monkeypatch.setattr(events, "MAX_SUMMARY_KEYS", 3)
        monkeypatch.setattr(events, "MAX_CHECKPOINTS", before + 10)
        run = db.get(Run, sess.run_id)
        got = events.Collected(events=flood, end=(run.events_offset or 0) + 10)
        assert events.record(db, run, sess, got) == len(flood)
        rows = {c.name: c.summary for c in db.query(Checkpoint).filter(Checkpoint.session_id == sess.id)
                if c.name.startswith("c")}
        assert sorted(rows) == sorted(f"c{i}" for i in range(10))
        assert rows["c0"] == {"k37": 37.0, "k38": 38.0, "k39": 39.0}
        assert rows["c9"] == {"k38": 38.0, "k39": 39.0, "loss": 8.0}
        assert events.latest_summary(db, sess.id) == {"k38": 38.0, "k39": 39.0, "loss": 29.0}  # the same rule
        offset = run.events_offset
        assert events.record(db, run, None, events.Collected(events=flood, end=offset + 5)) == 0
        assert run.events_offset == offset + 5
    assert cli("logs", name).stdout.count(f"the session holds {before + 10} checkpoints, its limit") == 1


def test_an_event_dated_in_the_future_is_dated_now():
    """A checkpoint dated 2099 would stay `model ls`'s newest whatever came after it."""
    got = event_gate.parse(b'{"type": "checkpoint", "name": "a", "time": 4070908800}')
    assert got.at <= datetime.now(timezone.utc).replace(tzinfo=None) and got.at.year >= 2026


def test_a_checkpoint_moving_under_the_walk_while_its_run_runs_is_recorded_at_what_was_found(tmp_path, monkeypatch):
    """An honest run may still be writing beside a checkpoint it saved: its save is recorded at what the walk
    found, never lost, and the name is not walked again for SLOW_AGAIN_SECONDS (a renamer costs one walk)."""
    from harness.core.tree_usage import Usage
    run, ckpts = tmp_path / "run", tmp_path / "ck"
    (run / "nsml").mkdir(parents=True)
    (ckpts / "best").mkdir(parents=True)
    (run / events.EVENTS_REL).write_text(json.dumps({"type": "checkpoint", "name": "best"}) + "\n")
    walks = []
    moving = Usage(size=123, complete=False, moved=True, retry=True, why="files and folders moved")
    monkeypatch.setattr(events, "usage", lambda *a: walks.append(a[0]) or moving)
    for _ in range(3):
        got = events.collect(run, 0, ckpts)
        assert [(e[0].name, e[1]) for e in got.events] == [("best", 123)] and not got.notes
    assert len(walks) == 1
