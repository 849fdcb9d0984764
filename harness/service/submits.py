"""`nsml submit`: quota check, queue the inference run, wait for its score."""
from __future__ import annotations

import ast
import os
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from harness.contest.gate import check_gpu_request, gate
from harness.core import clock
from harness.core.clock import utcnow
from harness.core.enums import RunKind, RunStatus
from harness.core.errors import NotFound, PermissionDenied, QuotaExceeded, UserError
from harness.core.names import is_check, parse_session_name
from harness.runs.create import RunOptions, check_esm, check_storage, new_run, queue_run
from harness.runs.create import time_limit as runs_time_limit
from harness.runs.snapshot import check_entry
from harness.scheduler.lease import submit_key, wake
from harness.scheduler.waiting import wait_run
from harness.scoring.board_rules import counted_clause
from harness.scoring.grade import prediction_path
from harness.scoring.ladder_board import visible_score
from harness.state import Harness
from harness.store.models import Round, Submission
from harness.taskpacks import layout

from . import permissions
from .checkpoints import has_checkpoint
from .sessions import prepare_environment


def check_quota(db, user_id: int, task, quota: int, period: float, now=None, team=None) -> None:
    """At most `quota` counted submits per `period` seconds per user (in a contest round: per team) and task
    (quota <= 0: unlimited). `now` is the contest clock's time (simulated in `contest simulate`)."""
    if quota <= 0:
        return
    now = now or utcnow()
    since = now - timedelta(seconds=period)
    who = Submission.team_id == team.id if team is not None else Submission.user_id == user_id
    recent = db.scalars(select(Submission).where(
        who, Submission.task_id == task.id, counted_clause(),
        Submission.created_at > since, Submission.created_at <= now).order_by(Submission.created_at)).all()
    if len(recent) >= quota:
        nxt = recent[len(recent) - quota].created_at + timedelta(seconds=period)
        holder = f" for team {team.name}" if team is not None else ""
        raise QuotaExceeded(f"submit quota reached for {task.name}: {quota} per {period:g} s{holder}; "
                            f"next submit allowed at {nxt.isoformat(timespec='seconds')} UTC")


def _own_checkpoint(h: Harness, db, session: str, checkpoint: str):
    """(the caller, SESSION) when SESSION is the caller's and has CHECKPOINT; else the one refusal of each case."""
    me = h.user(db)
    sess = permissions.own_session(h, db, session)  # (another user's is not there, to a participant)
    if sess.user_id != me.id:  # an organizer's: a submission is ranked under its submitter, so only one's own
        raise PermissionDenied(f"SESSION: {session} belongs to {sess.user.name}, not {me.name}")
    if not has_checkpoint(db, sess, checkpoint):
        raise NotFound(f"session {session} has no checkpoint {checkpoint!r} (see 'model ls {session}')")
    return me, sess


def start_submit(h: Harness, session: str, checkpoint: str, dry_run: bool = False,
                 time_limit: float | None = None, runtime: str | None = None, entry: str | None = None,
                 esm: str | None = None, note=None) -> tuple[int, int]:
    """Queue a submit; returns (submission id, run id). ENTRY: infer with another entry file of the same code
    (NSML's `submit -e`); ESM: the participant's registration number, recorded. NOTE: told when the checkpoint's
    earlier submission is the answer."""
    checkpoint = str(checkpoint)
    _user, task_of, number = parse_session_name(session)
    if is_check(number) and not dry_run:
        raise UserError(f"SESSION: {session} is a session of `nsml check` (its dry runs only); run the code with "
                        f"`nsml run` to submit it")
    with h.tx() as db:  # (its environment first, outside the serialised transaction: a build takes minutes)
        _, sess = _own_checkpoint(h, db, session, checkpoint)
        code, use = Path(sess.code_dir), (runtime or sess.run.runtime, h.manifest(sess.task).source_builds)
        confined = permissions.code_confined(sess)
    permissions.check_confined(h.settings, use[0], confined)  # (the session's runtime too: bwrap may have stopped)
    if dry_run:  # what it keeps (its log, its graded prediction) counts with the user's sessions (runs.create)
        check_storage(h.settings, h.settings.user, h.store)
    prepare_environment(h, code, *use)
    # One transaction per task at a time: the quota check and the insert it guards cannot interleave.
    with h.tx(serialize=submit_key(task_of)) as db:
        me, sess = _own_checkpoint(h, db, session, checkpoint)
        task = sess.task
        entry = check_entry(Path(sess.code_dir), entry) if entry else None
        check_esm(esm)
        # Idempotent: a retried submit of the same checkpoint waits for the one under way, or gets the score it
        # already has; it never makes a second row. (A failed one may be submitted again.)
        same = [RunStatus.QUEUED, RunStatus.RUNNING] + ([] if dry_run else [RunStatus.SUCCEEDED])
        earlier = db.scalar(select(Submission).where(
            Submission.session_id == sess.id, Submission.checkpoint == checkpoint, Submission.dry_run == dry_run,
            Submission.status.in_(same)).order_by(Submission.id.desc()).limit(1))
        if earlier is not None and (earlier.run.spec or {}).get("entry") == entry:
            under_way = earlier.status is not RunStatus.SUCCEEDED
            if note:
                note(f"checkpoint {checkpoint} of {session} was {'being ' if under_way else ''}submitted already, "
                     f"as submission {earlier.id}: {'waiting for it' if under_way else 'its score'} (counted once)")
            return earlier.id, earlier.run_id
        manifest = h.manifest(task)
        if dry_run and not layout.has_split(Path(task.path), dry_run=True):
            raise UserError(f"-t: task {task.name} has no test_submit split")
        admitted = gate(h, db, me, task.name, "a submit", practice=dry_run)
        now = clock.now(h.settings)
        if not dry_run:  # a contest round's quota is its team's; elsewhere the task's, per user
            rule = admitted.round if admitted else None
            check_quota(db, me.id, task, rule.submit_quota if rule else manifest.submit_quota,
                        rule.submit_period if rule else manifest.submit_period, now, admitted and admitted.team)
        check_gpu_request(db, admitted, sess.run.gpus)
        limit = runs_time_limit(time_limit, manifest.submit_seconds or h.settings.default_submit_time_limit)
        run = new_run(h.settings, RunKind.SUBMIT, RunOptions(gpus=sess.run.gpus, cpus=sess.run.cpus,
                                                     memory=None, runtime=runtime or sess.run.runtime), limit,
                      default_memory=manifest.memory)  # the task's limit now (or the default)
        run.memory = min(filter(None, (sess.run.memory, run.memory)), default=None)  # and never over the session's
        run.shm_size = sess.run.shm_size
        run.spec = {**run.spec, **{k: v for k, v in (("entry", entry), ("esm", esm), ("confine", confined),
                                                     ("gpu_model", (sess.run.spec or {}).get("gpu_model"))) if v}}
        if admitted is not None:
            run.team_id, run.team_gpu_quota = admitted.team.id, admitted.gpu_quota
        queue_run(h.settings, db, me.id, run)
        sub = Submission(user_id=me.id, task_id=task.id, session_id=sess.id, session_name=sess.name,
                         checkpoint=checkpoint, run_id=run.id, dry_run=dry_run, status=RunStatus.QUEUED,
                         created_at=now, provenance={},
                         team_id=admitted.team.id if admitted else None,
                         round_id=admitted.round.id if admitted and not dry_run else None)
        db.add(sub)
        db.flush()
        ids = sub.id, run.id
    wake(h.settings)
    return ids


def submission_info(h: Harness, sub_id: int) -> dict:
    """A submission as its owner may see it. The infer log path only for organizers: participant code in a
    submit run sees the test inputs and could print them."""
    with h.tx() as db:
        sub = permissions.own_submission(h.settings, db.get(Submission, sub_id), sub_id)
        info = {"id": sub.id, "user": sub.user.name, "task": sub.task.name, "session": sub.session_name,
                "checkpoint": sub.checkpoint, "dry_run": sub.dry_run, "status": sub.status.value,
                "reason": sub.reason.value if sub.reason else None, "score": sub.score,
                "message": permissions.submission_message(h.settings, sub.dry_run, sub.reason, sub.message),
                "counted": sub.counted, "created": sub.created_at.isoformat(timespec="seconds"),
                "isolation": (sub.run.spec or {}).get("isolation"), "esm": (sub.run.spec or {}).get("esm"),
                "entry": (sub.run.spec or {}).get("entry")}
        if sub.round_id is not None:
            rnd = db.get(Round, sub.round_id)
            info["score"], ladder = visible_score(sub, rnd, permissions.is_organizer(h.settings))
            info.update(round=rnd.label, team=sub.team.name, score_kind="public", selected=sub.selected,
                        public_board=rnd.public_board.value, ladder=ladder)
            if rnd.closed or permissions.is_organizer(h.settings):
                info["private_score"] = sub.private_score
        if permissions.is_organizer(h.settings):
            info["log"] = sub.run.log_path
            info["provenance"] = sub.provenance
        if sub.dry_run and sub.status.terminal:  # test_submit is not secret: NSML's -t was for debugging
            info["predictions_head"] = _head(prediction_path(sub.run.run_dir), PREDICTIONS_SHOWN)
            if sub.status is not RunStatus.SUCCEEDED:
                info["log_tail"] = _tail(Path(sub.run.log_path), LOG_TAIL_LINES)
        return info


PREDICTIONS_SHOWN, LOG_TAIL_LINES = 10, 20


NPY_MAGIC = b"\x93NUMPY"


def _head(path: Path, n: int) -> list[str]:
    """The first N lines of a prediction file, or one line describing it when it is not text (`np.save` output,
    pickles): its raw bytes would only garble the terminal."""
    try:
        with open(path, "rb") as fh:
            start = fh.read(4096)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return []
    if start.startswith(NPY_MAGIC) or b"\0" in start:
        return [_binary(start, size)]
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(start) - 4:  # not merely a character cut at the 4 KiB boundary
            return [_binary(start, size)]
    text = start.decode("utf-8", errors="replace")
    if "\n" not in text.rstrip("\n") and (items := _json_items(text, n)):  # one line of JSON: its first records
        return items
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [line.rstrip("\n")[:300] for _, line in zip(range(n), fh)]


def _json_items(text: str, n: int) -> list[str]:
    """The first N elements of a JSON list (or items of a JSON object) that TEXT, a file's first 4 KiB, begins;
    [] where it begins none (an element cut at the 4 KiB ends the list early)."""
    import json
    body = text.lstrip()
    if body[:1] not in ("[", "{"):
        return []
    decoder, out, i = json.JSONDecoder(), [], 1
    try:
        while len(out) < n:
            while i < len(body) and body[i] in " \t\r\n,":
                i += 1
            if i >= len(body) or body[i] in "]}":
                break
            key = None
            if body[0] == "{":
                key, i = decoder.raw_decode(body, i)
                i = body.index(":", i) + 1
                while i < len(body) and body[i] in " \t\r\n":
                    i += 1
            value, i = decoder.raw_decode(body, i)
            shown = json.dumps(value, ensure_ascii=False)
            out.append((shown if key is None else f"{json.dumps(key, ensure_ascii=False)}: {shown}")[:300])
    except (ValueError, RecursionError):
        pass
    return out


def _binary(start: bytes, size: int) -> str:
    if start.startswith(NPY_MAGIC) and len(start) > 10:
        header_len = int.from_bytes(start[8:10], "little")
        try:
            header = ast.literal_eval(start[10:10 + min(header_len, 1024)].decode("latin-1").strip())
            return (f"(a numpy .npy array of {size} bytes: shape {tuple(header['shape'])}, dtype "
                    f"{header['descr']}; the evaluator reads it, the terminal cannot)")
        except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
            pass
    return f"(a binary file of {size} bytes, not text: the evaluator reads it, the terminal cannot)"


def _tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 64 * 1024))
            return fh.read().decode("utf-8", errors="replace").splitlines()[-n:]
    except OSError:
        return []


def may_read_log(h: Harness, info: dict) -> bool:
    """Infer logs: organizers always; a participant only their own dry runs (real submits see hidden inputs)."""
    return permissions.is_organizer(h.settings) or (info["dry_run"] and info["user"] == h.settings.user)


def log_path(h: Harness, sub_id: int) -> tuple[dict, Path | None]:
    info = submission_info(h, sub_id)
    if not may_read_log(h, info):
        return info, None
    with h.tx() as db:
        return info, Path(db.get(Submission, sub_id).run.log_path)


def submit(h: Harness, session: str, checkpoint: str, dry_run: bool = False,
           time_limit: float | None = None, runtime: str | None = None, entry: str | None = None,
           esm: str | None = None) -> dict:
    sub_id, run_id = start_submit(h, session, checkpoint, dry_run, time_limit, runtime, entry, esm)
    wait_run(h, run_id)
    return submission_info(h, sub_id)


def run_id_of(h: Harness, sub_id: int) -> int:
    """The run serving a submission its caller may see."""
    submission_info(h, sub_id)  # NotFound for none, and for another user's
    with h.tx() as db:
        return db.get(Submission, sub_id).run_id
