"""The graphs' data: every reported metric as a series, downsampled on the server to at most 1,000 points
(NSML's limit), x by step or wall time; `nsml plot` writes them as a PNG; another user's metrics are refused."""
from datetime import timedelta

import pytest
from helpers import ORGANIZER, run_session

from harness.service.metrics import MAX_POINTS, downsample
from harness.state import Harness
from harness.store.models import Metric, Session


def test_downsample_keeps_the_ends_and_at_most_the_limit():
    xs = list(range(5000))
    ys = [float(x % 7) for x in xs]
    dx, dy = downsample(xs, ys)
    assert len(dx) == len(dy) == MAX_POINTS and dx[0] == 0 and dx[-1] == 4999 and dy[-1] == ys[-1]
    assert dx == sorted(dx) and min(ys) <= min(dy) <= max(dy) <= max(ys)
    assert downsample([1, 2], [3.0, 4.0]) == ([1, 2], [3.0, 4.0])


def test_a_long_run_is_served_downsampled_by_step_and_by_time(cli, tiny_task, nsml_folder):
    name = run_session(cli, nsml_folder)
    h = Harness()
    with h.tx() as db:
        sess = db.query(Session).filter_by(name=name).one()
        t0 = sess.run.started_at
        db.add_all(Metric(session_id=sess.id, key="valid__acc", value=i / 3000, raw=i / 3000, step=i,
                          created_at=t0 + timedelta(seconds=i)) for i in range(3000))
    from harness.service.local import LocalApi
    got = LocalApi(h).session_metrics(name, "step")
    acc = got["series"]["valid/acc"]
    assert acc["points"] == 3000 and len(acc["x"]) == MAX_POINTS and acc["x"][-1] == 2999
    assert set(got["series"]) == {"valid/acc", "epoch", "train/loss"}
    by_time = LocalApi(h).session_metrics(name, "time", ["valid__acc"])["series"]["valid/acc"]
    assert len(by_time["x"]) == MAX_POINTS and by_time["x"][-1] == pytest.approx(2999, abs=1)


def test_nsml_plot_writes_a_png_and_refuses_what_is_not_there(cli, tiny_task, nsml_folder, tmp_path):
    name = run_session(cli, nsml_folder, "-a", "--epochs 4")
    out = cli("plot", name, "train/loss", "-o", tmp_path / "loss.png", "--smooth", "0.5").stdout
    assert "1 metric(s)" in out and (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 metric(s)" in cli("plot", name, "-o", tmp_path / "all.png").stdout
    r = cli("plot", name, "nosuch", code=2)
    assert "no reported metrics named nosuch" in r.stderr and "Traceback" not in r.output
    other = cli("plot", name, user="bob", code=2)
    assert f"unknown session {name!r}" in other.stderr and "alice" not in other.stderr.replace(name, "")
    assert "2 metric(s)" in cli("plot", name, "-o", tmp_path / "org.png", user=ORGANIZER).stdout


def test_reports_without_a_step_are_numbered_in_order(cli, tiny_task, nsml_folder):
    name = run_session(cli, nsml_folder)
    h = Harness()
    with h.tx() as db:
        sess = db.query(Session).filter_by(name=name).one()
        db.add_all(Metric(session_id=sess.id, key="valid__f1", value=v, raw=v, step=None) for v in (0.1, 0.2, 0.3))
    from harness.service.local import LocalApi
    f1 = LocalApi(h).session_metrics(name, "step", ["valid/f1"])["series"]["valid/f1"]
    assert f1["x"] == [0, 1, 2] and f1["y"] == [0.1, 0.2, 0.3]


def test_series_asked_again_are_kept_until_a_new_point_and_never_shared_with_a_caller(cli, tiny_task, nsml_folder,
                                                                                        monkeypatch):
    """A page polled in many tabs reads the session's points once: the answer is kept until the session records
    another (then it has it), and what a caller does to its answer never reaches the next caller's."""
    from harness.service import metrics
    from harness.service.local import LocalApi
    name = run_session(cli, nsml_folder)
    api, reads = LocalApi(Harness()), []
    real = metrics._series
    monkeypatch.setattr(metrics, "_series", lambda *a: reads.append(a) or real(*a))
    first = api.session_metrics(name, "step")
    first["series"]["epoch"]["y"].append(99.0)  # a caller's own change
    again = api.session_metrics(name, "step")
    assert len(reads) == 1 and 99.0 not in again["series"]["epoch"]["y"] and again["status"] == "succeeded"
    api.session_metrics(name, "time")  # another question: read
    assert len(reads) == 2
    with Harness().tx() as db:
        sess = db.query(Session).filter_by(name=name).one()
        db.add(Metric(session_id=sess.id, key="epoch", value=7.0, raw=7.0, step=1000))
    fresh = api.session_metrics(name, "step")
    assert len(reads) == 3 and fresh["series"]["epoch"]["y"][-1] == 7.0


def test_the_series_memo_holds_a_bounded_number_of_points(cli, tiny_task, nsml_folder, monkeypatch):
    from harness.service import metrics
    from harness.service.local import LocalApi
    name = run_session(cli, nsml_folder)
    api, reads = LocalApi(Harness()), []
    real = metrics._series
    monkeypatch.setattr(metrics, "_series", lambda *a: reads.append(a) or real(*a))
    monkeypatch.setattr(metrics, "MEMO_POINTS", 1)  # any answer is over it: nothing is kept
    monkeypatch.setattr(metrics, "_MEMO", type(metrics._MEMO)())
    assert api.session_metrics(name, "step") == api.session_metrics(name, "step")
    assert len(reads) == 2 and not metrics._MEMO
