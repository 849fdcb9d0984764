"""Boards computed in SQL give the same answer as a straightforward Python reference, at 100,000 submissions."""
import random
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from harness.contest.rounds import compute_board
from harness.core.enums import Direction, FailureReason, RunKind, RunStatus
from harness.scoring.board_rules import user_board
from harness.state import Harness
from harness.store.models import Contest, Round, Run, Submission, Task, Team, User

REASONS = [None] * 6 + [FailureReason.EXIT_CODE, FailureReason.SCORER_ERROR, FailureReason.LOST,
                        FailureReason.INVALID_PREDICTION]


def _ranked(items, score, direction):
    sign = -1.0 if direction is Direction.HIGHER else 1.0
    ordered = sorted(items, key=lambda s: (sign * score(s), s["created_at"], s["id"]))
    out = []
    for i, s in enumerate(ordered):
        out.append((out[-1][0] if out and score(out[-1][1]) == score(s) else i + 1, s))
    return out


def _counted(s):
    return not s["dry_run"] and not (s["reason"] is not None and s["reason"].harness_fault)


BASELINES = {"u0003", "u0500", "team007"}


def _scored(s):
    return s["status"] is RunStatus.SUCCEEDED and s["score"] is not None and not s["hidden"]  # hidden never ranks


def reference_user_board(subs, users, direction):
    mine = [s for s in subs if not s["dry_run"] and s["round_id"] is None]
    counts, last, scored = {}, {}, {}
    for s in sorted(mine, key=lambda s: (s["created_at"], s["id"])):
        if _counted(s):
            counts[s["user_id"]] = counts.get(s["user_id"], 0) + 1
            last[s["user_id"]] = s["created_at"]
        if _scored(s):
            scored.setdefault(s["user_id"], []).append(s)
    best = [_ranked(v, lambda s: s["score"], direction)[0][1] for v in scored.values()]
    return [{"rank": r, "user": users[s["user_id"]], "score": s["score"], "session": s["session_name"],
             "checkpoint": s["checkpoint"], "submits": counts.get(s["user_id"], 0),
             "last_submit": last[s["user_id"]].isoformat(timespec="seconds"), "submission": s["id"],
             "baseline": users[s["user_id"]] in BASELINES, "interval": _pair(s, "score"),
             "interval_note": s.get("interval_note"), "tie": None, "beats_next": None}  # no kept values here
            for r, s in _ranked(best, lambda s: s["score"], direction)]


def _pair(s, prefix):
    return None if s is None or s.get(f"{prefix}_low") is None else [s[f"{prefix}_low"], s[f"{prefix}_high"]]


def reference_team_board(subs, teams, round_id, direction):
    mine = [s for s in subs if not s["dry_run"] and s["round_id"] == round_id]
    counts, last, by_team = {}, {}, {}
    for s in sorted(mine, key=lambda s: (s["created_at"], s["id"])):
        if _counted(s):
            counts[s["team_id"]] = counts.get(s["team_id"], 0) + 1
            last[s["team_id"]] = s["created_at"]
        if _scored(s):
            by_team.setdefault(s["team_id"], []).append(s)
    best, final = {}, {}
    for team, scored in by_team.items():
        best[team] = _ranked(scored, lambda s: s["score"], direction)[0][1]
        have = [s for s in scored if s["private_score"] is not None]  # (a failed private half has none)
        picks = [s for s in have if s["selected"]] or [r[1] for r in _ranked(have, lambda s: s["score"], direction)[:1]]
        if picks:
            final[team] = _ranked(picks, lambda s: s["private_score"], direction)[0][1]
    pub = {s["team_id"]: r for r, s in _ranked(list(best.values()), lambda s: s["score"], direction)}
    priv = {s["team_id"]: r for r, s in _ranked(list(final.values()), lambda s: s["private_score"], direction)}
    rows = []
    for team, s in best.items():
        f = final.get(team)
        rows.append({"team": teams[team], "public_rank": pub[team], "public": s["score"],
                     "public_submission": s["id"], "private_rank": priv.get(team),
                     "private": f["private_score"] if f else None, "final_submission": f["id"] if f else None,
                     "selected": sum(1 for x in by_team[team] if x["selected"]),
                     "shakeup": pub[team] - priv[team] if team in priv else None,
                     "submits": counts.get(team, 0), "last_submit": last[team].isoformat(timespec="seconds"),
                     "baseline": teams[team] in BASELINES, "public_interval": _pair(s, "score"),
                     "interval_note": s.get("interval_note"), "private_interval": _pair(f, "private"),
                     "reason": None})
    return sorted(rows, key=lambda r: (r["public_rank"], r["team"]))


def _populate(h, n_subs, n_users, n_teams, seed):
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1)
    with h.tx() as db:
        task = Task(name="big", path="/nowhere", metric="accuracy", direction=Direction.HIGHER)
        contest = Contest(name="c", spec={})
        db.add_all([task, contest])
        db.flush()
        rnd = Round(contest_id=contest.id, number=1, name="r1", tasks=["big"], starts_at=t0, ends_at=t0)
        db.add(rnd)
        users = [User(name=f"u{i:04d}", baseline=f"u{i:04d}" in BASELINES) for i in range(n_users)]
        teams = [Team(contest_id=contest.id, name=f"team{i:03d}", baseline=f"team{i:03d}" in BASELINES)
                 for i in range(n_teams)]
        db.add_all(users + teams)
        db.flush()
        run = Run(kind=RunKind.SUBMIT, runtime="process", status=RunStatus.SUCCEEDED, gpu_ids=[])
        db.add(run)
        db.flush()
        ids = dict(task=task.id, round=rnd.id, run=run.id, users=[u.id for u in users], teams=[t.id for t in teams])
        names = {u.id: u.name for u in users}, {t.id: t.name for t in teams}
    rows = []
    for i in range(n_subs):
        in_round = rng.random() < 0.3
        reason = rng.choice(REASONS)
        status = RunStatus.SUCCEEDED if reason is None and rng.random() < 0.9 else RunStatus.FAILED
        if reason is None and status is RunStatus.FAILED:
            reason = FailureReason.TIMEOUT
        scored = status is RunStatus.SUCCEEDED
        spans = scored and rng.random() < 0.8  # most scored ones have their intervals, some say why not
        rows.append(dict(score_low=rng.random() / 2 if spans else None, score_high=0.5 + rng.random() / 2 if spans
                         else None, private_low=0.1 if spans and in_round else None,
                         private_high=0.9 if spans and in_round else None,
                         interval_note=None if spans or not scored else "no interval: opaque", user_id=rng.choice(ids["users"]), task_id=ids["task"], run_id=ids["run"],
                         session_name="x/big/1", checkpoint=str(rng.randrange(5)), dry_run=rng.random() < 0.05,
                         status=status, reason=reason,
                         score=round(rng.random(), 2) if scored else None,  # few distinct values: many ties
                         private_score=(round(rng.random(), 2) if rng.random() < 0.95 else None)
                         if scored and in_round else None,
                         team_id=rng.choice(ids["teams"]) if in_round else None,
                         round_id=ids["round"] if in_round else None,
                         selected=in_round and scored and rng.random() < 0.01,
                         hidden=rng.random() < 0.02,  # moderated: never ranks, still counts as a submit
                         created_at=t0 + timedelta(seconds=rng.randrange(10 ** 6)), provenance={}))
    with h.tx() as db:
        db.execute(insert(Submission), rows)
        subs = [dict(zip(("id", *rows[0]), (r[0], *[getattr(r[1], k) for k in rows[0]])))
                for r in db.execute(select(Submission.id, Submission)).all()]
    return subs, names, ids


def test_boards_in_sql_match_the_python_reference_at_100k():
    h = Harness()
    subs, (users, teams), ids = _populate(h, 100_000, 1000, 60, seed=7)
    for direction in Direction:
        _compare(h, subs, users, teams, ids, direction)


def _compare(h, subs, users, teams, ids, direction):
    with h.tx() as db:
        task = db.get(Task, ids["task"])
        task.direction = direction
        db.flush()
        got_users = user_board(db, task)
        got_teams = compute_board(db, db.get(Round, ids["round"]), task)
    want_users = reference_user_board(subs, users, direction)
    assert len(want_users) > 900 and any(a["rank"] == b["rank"] for a, b in zip(want_users, want_users[1:]))
    assert got_users == want_users
    want_teams = reference_team_board(subs, teams, ids["round"], direction)
    assert any(r["selected"] for r in want_teams) and any(r["shakeup"] for r in want_teams)
    assert got_teams == want_teams


def test_the_counted_rule_has_one_meaning_in_python_and_in_both_sql_forms(tmp_path):
    """core.enums.counted is the rule; store.read_sql.COUNTED (the quick path's SQL text) and
    scoring.board_rules.counted_clause (the library's) say the same for every dry-run flag and reason."""
    import sqlite3

    from harness.core.enums import counted
    from harness.scoring.board_rules import counted_clause
    from harness.store import read_sql
    cases = [(dry, reason) for dry in (False, True) for reason in [None, *FailureReason]]
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE submissions (id INTEGER, dry_run BOOLEAN, reason TEXT)")
    con.executemany("INSERT INTO submissions VALUES (?, ?, ?)",
                    [(i, dry, reason.value if reason else None) for i, (dry, reason) in enumerate(cases)])
    sql = read_sql.COUNTED.replace("(:faults)", "(" + ",".join("?" * len(read_sql.FAULTS)) + ")")
    by_text = {i for (i,) in con.execute(f"SELECT id FROM submissions WHERE {sql.replace(':no', '?', 1)}",
                                         [False, *read_sql.FAULTS])}
    assert by_text == {i for i, (dry, reason) in enumerate(cases) if counted(dry, reason)}
    h = Harness()
    try:
        with h.tx() as db:
            user = User(name="rule")
            task = Task(name="rule", path=str(tmp_path), metric="m")
            db.add_all([user, task])
            db.flush()
            for dry, reason in cases:
                run = Run(kind=RunKind.SUBMIT, runtime="process", status=RunStatus.FAILED, gpu_ids=[])
                db.add(run)
                db.flush()
                db.add(Submission(user_id=user.id, task_id=task.id, checkpoint="0", run_id=run.id, dry_run=dry,
                                  reason=reason, status=RunStatus.FAILED, session_name="rule/rule/1"))
            db.flush()
            subs = db.scalars(select(Submission).where(Submission.task_id == task.id)).all()
            chosen = set(db.scalars(select(Submission.id).where(Submission.task_id == task.id, counted_clause())))
            assert chosen == {s.id for s in subs if s.counted} and len(chosen) == sum(counted(*c) for c in cases)
    finally:
        h.store.close()


def test_the_launch_regate_reads_a_queue_of_any_length(tmp_path):
    """20,000 queued runs of no team (past SQLite's stock limit of 32,766 variables when their ids were bound,
    twice): one join, and each run of a task that has joined a round is named."""
    import sqlite3
    from datetime import datetime

    from sqlalchemy import event, insert, select

    from harness.core.enums import RunKind, RunStatus
    from harness.runs.create import refused_at_launch
    from harness.store.engine import open_store
    from harness.store.models import Contest, Round, Run, Session, Task, User
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    event.listen(store.engine, "connect",  # (this build allows 250,000; a stock SQLite, 32,766)
                 lambda conn, _record: conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766))
    store.engine.dispose()
    n = 20_000
    with store.tx() as db:
        user, task, free = User(name="u"), Task(name="tiny", path="/t"), Task(name="free", path="/f")
        contest = Contest(name="c")
        db.add_all([user, task, free, contest])
        db.flush()
        db.add(Round(contest_id=contest.id, number=1, name="r1", tasks=["tiny"], starts_at=datetime(2026, 1, 1),
                     ends_at=datetime(2026, 1, 2), results={}))
        db.execute(insert(Run), [{"kind": RunKind.TRAIN, "status": RunStatus.QUEUED, "spec": {}, "gpu_ids": []}] * n)
        ids = list(db.scalars(select(Run.id).order_by(Run.id)))
        db.execute(insert(Session), [{"name": f"u/t/{i}", "number": i, "user_id": user.id, "run_id": run_id,
                                      "task_id": (task if i % 2 else free).id, "entry": "main.py", "dir": "/d"}
                                     for i, run_id in enumerate(ids)])
    with store.tx() as db:
        waiting = db.scalars(select(Run).where(Run.status == RunStatus.QUEUED)).all()
        refused = refused_at_launch(db, waiting)
    assert len(refused) == n // 2 and all("task tiny joined a contest round" in why for why in refused.values())
