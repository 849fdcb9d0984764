"""The listings `ps` and `board` show, as SQL text with one row builder each.

They run through `rows(sql, **params)` (harness.store.quick): stdlib sqlite3 for a fast CLI, or an open SQLAlchemy
session in the library — one query, one way of turning its rows into what is printed. Nothing here imports
SQLAlchemy or the models.
"""
from __future__ import annotations

from harness.core.enums import HARNESS_FAULTS, Direction, RunStatus

from .quick import as_json, as_time

FAULTS = sorted(r.value for r in HARNESS_FAULTS)  # never counted (core.enums.counted)
COUNTED = "dry_run = :no AND (reason IS NULL OR reason NOT IN (:faults))"  # core.enums.counted, in SQL

# Each user's best submission on a task's own board (submissions outside contest rounds), earliest first among
# equal scores; counts and the last counted submit per user. NaN never ranks (SQLite stores it as NULL; on
# PostgreSQL `score <> 'NaN'` leaves it out); a hidden submission never ranks (moderation). Two steps: one pass
# over the task's rows (covered by ix_submissions_board_user) gives each user's best score, submit count and last
# submit; then one seek per user (ix_submissions_board_first) finds the earliest submission with that score.
RANKED = "dry_run = :no AND status = :succeeded AND score IS NOT NULL AND score <> 'NaN' AND hidden = :no"
BOARD_SQL = f"""
WITH per AS (
    SELECT user_id, {{best}}(CASE WHEN {RANKED} THEN score END) AS best,
           sum(CASE WHEN {COUNTED} THEN 1 ELSE 0 END) AS submits, max(CASE WHEN {COUNTED} THEN created_at END) AS last
    FROM submissions WHERE task_id = :task AND round_id IS NULL GROUP BY user_id),
firsts AS (
    SELECT p.user_id, p.submits, p.last,
           (SELECT s.id FROM submissions s
            WHERE s.task_id = :task AND s.round_id IS NULL AND s.user_id = p.user_id AND s.dry_run = :no
              AND s.status = :succeeded AND s.hidden = :no AND s.score = p.best
            ORDER BY s.created_at, s.id LIMIT 1) AS id
    FROM per p WHERE p.best IS NOT NULL)
SELECT u.name, s.score, s.session_name, s.checkpoint, f.submits, f.last, s.id, u.baseline, s.score_low,
       s.score_high, s.interval_note
FROM firsts f JOIN submissions s ON s.id = f.id JOIN users u ON u.id = f.user_id
ORDER BY s.score {{order}}, s.created_at, s.id
"""


# A round's team board on one task: per team its best public submission (earliest among equal scores), its final
# one (the best private score among those it selected, or its best public one when it selected none — of those
# with a private score: a submission whose private half failed keeps its public score and never says so before
# close, so the team's choice falls to the ones that have one), how many it selected, and its counted submits.
# The private ranking is the caller's (contest.rounds), over these rows. On a Ladder board ({{shown}}) only the
# submissions the Ladder accepted are public scores (harness.scoring.ladder_board); a team may still select any of
# its scored submissions for the private board.
TEAM_BOARD_SQL = f"""
WITH scored AS (
    SELECT id, team_id, score, private_score, selected, created_at, score_low, score_high, private_low, private_high,
           interval_note, CASE WHEN {{shown}} THEN 1 ELSE 0 END AS shown,
           row_number() OVER (PARTITION BY team_id
                              ORDER BY CASE WHEN {{shown}} THEN 0 ELSE 1 END, score {{order}}, created_at, id) AS rn,
           row_number() OVER (PARTITION BY team_id
                              ORDER BY CASE WHEN private_score IS NULL OR private_score = 'NaN' THEN 1 ELSE 0 END,
                                       CASE WHEN {{shown}} THEN 0 ELSE 1 END, score {{order}}, created_at, id) AS auto,
           sum(CASE WHEN selected THEN 1 ELSE 0 END) OVER (PARTITION BY team_id) AS nsel
    FROM submissions WHERE round_id = :round AND task_id = :task AND {RANKED}),
picks AS (
    SELECT team_id, id, private_score, created_at, private_low, private_high,
           row_number() OVER (PARTITION BY team_id
                              ORDER BY CASE WHEN selected THEN 0 ELSE 1 END, private_score {{order}}, created_at, id)
               AS rn
    FROM scored
    WHERE private_score IS NOT NULL AND private_score <> 'NaN' AND (selected OR auto = 1)),
final AS (SELECT team_id, id, private_score, created_at, private_low, private_high FROM picks WHERE rn = 1),
counts AS (
    SELECT team_id AS who, count(*) AS submits, max(created_at) AS last FROM submissions
    WHERE round_id = :round AND task_id = :task AND {COUNTED} GROUP BY team_id)
SELECT t.name, s.id, s.score, s.nsel, f.id, f.private_score, f.created_at, c.submits, c.last, t.baseline,
       s.score_low, s.score_high, s.interval_note, f.private_low, f.private_high, s.shown
FROM scored s JOIN teams t ON t.id = s.team_id
LEFT JOIN final f ON f.team_id = s.team_id LEFT JOIN counts c ON c.who = s.team_id
WHERE s.rn = 1
ORDER BY s.shown DESC, s.score {{order}}, s.created_at, s.id
"""
NOTHING_SHOWN = "nothing shown by the Ladder (yet)"  # scored, yet none shown: a public row without a public score
LADDER_SHOWN = "ladder_accepted = :yes"


def team_board_rows(rows, round_id: int, task_id: int, direction: Direction, ladder: bool = False) -> list[dict]:
    """A round's team rows in public order, public ranks set (ties share one); the private fields are the final
    submission's, for the caller to rank (`_final_at`: when it was made, the private tie-break). LADDER: the
    round's public board is the Ladder (only accepted submissions are public scores)."""
    sql = TEAM_BOARD_SQL.format(order=direction.sql_order, shown=LADDER_SHOWN if ladder else "1 = 1")
    out = [{"team": team, "public_rank": None, "public": public, "public_submission": pub_id, "private_rank": None,
            "private": private, "final_submission": final_id, "selected": int(nsel or 0), "shakeup": None,
            "submits": n or 0, "last_submit": _stamp(last), "_final_at": as_time(final_at), "baseline": bool(baseline),
            "public_interval": _pair(low, high), "interval_note": note, "private_interval": _pair(plow, phigh),
            "_shown": bool(shown)}
           for team, pub_id, public, nsel, final_id, private, final_at, n, last, baseline, low, high, note, plow, phigh,
           shown in rows(sql, round=round_id, task=task_id, no=False, yes=True, succeeded=RunStatus.SUCCEEDED.value,
                         faults=FAULTS)]
    rank_rows([r for r in out if r["_shown"]], "public", "public_rank")
    for r in out:
        if not r.pop("_shown"):  # on the private board all the same: private scoring ignores the Ladder
            r.update(public=None, public_submission=None, public_interval=None, interval_note=None)
    return out


def board_rows(rows, task_id: int, direction: Direction) -> list[dict]:
    """Rank, user, score, session, checkpoint, submits, last submit, the ranked submission, whether the user is a
    baseline. Ties share a rank; earlier first."""
    sql = BOARD_SQL.format(best=direction.sql_best, order=direction.sql_order)
    out = [{"rank": 0, "user": name, "score": score, "session": session, "checkpoint": ckpt,
            "submits": n or 0, "last_submit": _stamp(last), "submission": sub_id, "baseline": bool(baseline),
            "interval": _pair(low, high), "interval_note": note}
           for name, score, session, ckpt, n, last, sub_id, baseline, low, high, note in rows(
               sql, task=task_id, no=False, succeeded=RunStatus.SUCCEEDED.value, faults=FAULTS)]
    rank_rows(out, "score")
    return out


def run_dirs(rows, submission_ids: list[int]) -> dict[int, str]:
    """Submission id → its run's folder (where its graded files are), for the ids given."""
    if not submission_ids:
        return {}
    sql = "SELECT s.id, r.run_dir FROM submissions s JOIN runs r ON r.id = s.run_id WHERE s.id IN (:ids)"
    return {sub_id: run_dir for sub_id, run_dir in rows(sql, ids=list(submission_ids))}


def _pair(low, high) -> list[float] | None:
    """A score's interval as [low, high], or None when it has none."""
    return None if low is None or high is None else [low, high]


def rank_rows(rows: list[dict], field: str, into: str = "rank") -> None:
    """Set row[INTO] on rows already in board order: equal scores (FIELD) share a rank. Every board's rule."""
    for i, row in enumerate(rows):
        row[into] = rows[i - 1][into] if i and rows[i - 1][field] == row[field] else i + 1


SESSIONS_SQL = """
SELECT s.id, s.name, r.status, r.reason, r.message, r.exit_code, r.gpus, r.gpu_ids, s.created_at, r.started_at,
       r.ended_at, s.entry, s.args, s.memo, s.forked_from, r.spec, r.cpus
FROM sessions s JOIN runs r ON r.id = s.run_id
WHERE {who} {task} {live} {checks}
ORDER BY s.id DESC {last}
"""
SUMMARY_SQL = "SELECT session_id, key, raw FROM metrics WHERE session_id IN (:ids) AND summary = :yes ORDER BY id"


def session_rows(rows, user_id: int | None = None, task_id: int | None = None, all_: bool = False,
                 last: int | None = None, session_id: int | None = None) -> list[dict]:
    """`nsml ps`: a user's sessions, newest first, without `nsml check`'s own; without ALL_ only queued and
    running ones (or the one session SESSION_ID, for `session_info`)."""
    sql = SESSIONS_SQL.format(who="s.user_id = :user" if session_id is None else "s.id = :session",
                              task="AND s.task_id = :task" if task_id is not None else "",
                              live="" if all_ else "AND r.status IN (:live)", last="LIMIT :last" if last else "",
                              checks="AND s.number >= 0" if session_id is None else "")  # core.names.is_check
    found = rows(sql, user=user_id, session=session_id, task=task_id, live=[RunStatus.QUEUED.value, RunStatus.RUNNING.value],
                 last=last)
    summaries: dict[int, dict] = {}
    if found:
        for sid, key, raw in rows(SUMMARY_SQL, ids=[r[0] for r in found], yes=True):
            summaries.setdefault(sid, {})[key.replace("__", "/")] = as_json(raw)
    out = []
    for (sid, name, status, reason, message, exit_code, gpus, gpu_ids, created, started, ended, entry, args, memo,
         forked_from, spec, cpus) in found:
        spec = as_json(spec) or {}
        out.append({"name": name, "status": status, "reason": reason, "message": message, "exit_code": exit_code,
                    "cpus": cpus, "gpus": gpus, "gpu_ids": as_json(gpu_ids), "created": _stamp(created),
                    "started": _stamp(started), "ended": _stamp(ended), "entry": entry, "args": as_json(args),
                    "memo": memo, "forked_from": forked_from, "isolation": spec.get("isolation"),
                    "reserved_flags": spec.get("reserved_flags"), "esm": spec.get("esm"),
                    "gpu_model": spec.get("gpu_model"), "datasets": spec.get("datasets") or [],
                    "node": spec.get("node"),
                    "summary": summaries.get(sid, {})})
    return out


def gpus_in_use(rows) -> dict[str, int]:
    """How many GPUs running runs (sessions and submits, everyone's) hold, by the id of the node a cluster placed
    them on ("" for this machine, and for a run a cluster has not placed yet)."""
    held: dict[str, int] = {}
    for gpu_ids, spec in rows("SELECT gpu_ids, spec FROM runs WHERE status = :running",
                              running=RunStatus.RUNNING.value):
        node = (as_json(spec) or {}).get("node") or {}
        where = node.get("id", "")
        held[where] = held.get(where, 0) + len((node.get("gpu_ids") if node else as_json(gpu_ids)) or [])
    return held


def gpus_held_by(rows, uid: int) -> set[int]:
    """This machine's device indices that the running runs of user UID hold: sessions and dry runs. Never a real
    submit's: its infer reads the hidden test inputs and could set its device's memory use to carry them, read back
    every second."""
    held: set[int] = set()
    for table, only in (("sessions", ""), ("submissions", " AND t.dry_run = :dry")):
        for (gpu_ids,) in rows(f"SELECT r.gpu_ids FROM runs r JOIN {table} t ON t.run_id = r.id "
                               f"WHERE r.status = :running AND t.user_id = :uid{only}",
                               running=RunStatus.RUNNING.value, uid=uid, dry=True):
            held.update(i for i in as_json(gpu_ids) or [] if isinstance(i, int))
    return held


def user_id(rows, name: str) -> int | None:
    found = rows("SELECT id FROM users WHERE name = :name", name=name)
    return found[0][0] if found else None


def task_of(rows, name: str) -> tuple[int, str, Direction] | None:
    found = rows("SELECT id, metric, direction FROM tasks WHERE name = :name", name=name)
    return (found[0][0], found[0][1], Direction(found[0][2])) if found else None


def tasks_in_rounds(rows) -> set[str]:
    """Every task that a contest round holds."""
    return {task for (tasks,) in rows("SELECT tasks FROM rounds") for task in as_json(tasks) or []}


def in_a_round(rows, task: str) -> bool:
    """Whether any contest round holds TASK (its board is then a team board: the full path shows it)."""
    return task in tasks_in_rounds(rows)


def queued_teamless_tasks(rows) -> dict[int, str]:
    """The task of each queued run of no team: its session's or its submission's (a session's `-d` tasks more are
    in its run's spec). One query, no list of ids bound, however long the queue."""
    part = ("SELECT r.id, t.name FROM runs r JOIN {kind} s ON s.run_id = r.id JOIN tasks t ON t.id = s.task_id "
            "WHERE r.status = :queued AND r.team_id IS NULL")
    return dict(rows(f"{part.format(kind='sessions')} UNION ALL {part.format(kind='submissions')}",
                     queued=RunStatus.QUEUED.value))


def _stamp(value) -> str | None:
    value = as_time(value)
    return value.isoformat(timespec="seconds") if value is not None else None

