"""`LocalApi`: every operation declared in harness.api done here, by this process's library and state root, for the
identity in its Harness's settings (the CLI's own user, or a server request's account)."""
from __future__ import annotations

from pathlib import Path

from harness.api import Api
from harness.core.enums import RunStatus
from harness.core.errors import PermissionDenied, UserError
from harness.runs.create import RunOptions
from harness.state import Harness

from . import accounts, boards, checkpoints, contests, metrics, moderation, quick_reads, sessions, submits, tasks
from .log_streams import SLOTS, follow_file, read_chunks


class LocalApi(Api):
    """The API done here, by this process's library, for the identity of H's settings."""

    def __init__(self, h: Harness):
        self.h = h

    def whoami(self) -> dict:
        return self.h.settings.identity()

    def add_user(self, name, organizer=False, team=None):
        return accounts.add_user(self.h, name, organizer, team)

    def list_users(self):
        return accounts.list_users(self.h)

    def disable_user(self, name):
        accounts.disable_user(self.h, name)

    def reset_token(self, name):
        return accounts.reset_token(self.h, name)

    def _options(self, opts: dict, note=None) -> RunOptions:
        from harness import runtime

        from .permissions import check_confined, check_runtime
        runtime.check_settings(self.h.settings)
        name = opts.get("runtime") or self.h.settings.runtime
        runtime.check_name(name, self.h.settings)
        check_runtime(self.h.settings, opts.get("runtime"))
        chosen, why = runtime.resolve(name, self.h.settings)
        check_confined(self.h.settings, chosen)
        if why and note:
            note(why)
        more = opts.get("datasets") or ()
        if not isinstance(more, (list, tuple)):
            raise UserError("-d/--dataset: the tasks more than the session's own must be a list of names")
        return RunOptions(**{**opts, "runtime": chosen, "datasets": tuple(more)})

    def _admit_session(self, task, memo, opts) -> None:
        """start_session's checks that need no code (the server makes them before it reads the upload)."""
        sessions.admit_session(self.h, task, memo, self._options(opts))

    def start_session(self, task, folder, entry, args, memo, opts, note):
        return sessions.start_session(self.h, task, folder, entry, args, memo, self._options(opts, note),
                                      notify=lambda line: note and note(f"Note: {line}"))

    def fork_session(self, session, checkpoint, args, memo, opts, note):
        return sessions.fork_session(self.h, session, checkpoint, args, memo, self._options(opts, note))

    def list_sessions(self, all_, last, task):
        return sessions.list_sessions(self.h, all_=all_, last=last, task=task)

    def inventory(self):
        from harness.store.quick import sa_rows
        with self.h.tx() as db:
            return quick_reads.inventory(self.h.settings, sa_rows(db))

    def session_info(self, session):
        info = sessions.session_info(self.h, session)
        return {k: v for k, v in info.items() if k not in ("log", "run_id")}

    def session_log(self, session, follow=False):
        info = sessions.session_info(self.h, session)
        path = Path(info["log"])
        if not follow:
            return read_chunks(path)
        return SLOTS.hold(self.h.settings.user, follow_file(
            path, lambda: RunStatus(sessions.session_info(self.h, session)["status"]).terminal,
            lambda: sessions.ensure_running(self.h.settings)))

    def session_metrics(self, session, x="step", keys=None):
        return metrics.series(self.h, session, x, keys)

    def stop_sessions(self, pattern):
        return sessions.stop_sessions(self.h, pattern)

    def remove_sessions(self, pattern):
        return sessions.remove_sessions(self.h, pattern)

    def set_memo(self, session, text):
        sessions.set_memo(self.h, session, text)

    def list_checkpoints(self, session):
        return checkpoints.list_checkpoints(self.h, session)

    def remove_checkpoints(self, session, pattern):
        return checkpoints.remove_checkpoints(self.h, session, pattern)

    def pull_checkpoint(self, session, checkpoint, dest):
        target, skipped = checkpoints.pull_checkpoint(self.h, session, checkpoint, dest)
        return str(target), skipped

    def start_submit(self, session, checkpoint, dry_run, time_limit, runtime, entry, esm, verbose, note):
        from .permissions import is_organizer
        if verbose and not dry_run and not is_organizer(self.h.settings):
            raise UserError("-v/--verbose: the infer log of a real submit saw the hidden test inputs and is shown to "
                            "organizers only; use -t -v to debug on test_submit")
        chosen = self._options({"runtime": runtime}, note).runtime if runtime else None
        sub_id, _run = submits.start_submit(self.h, session, checkpoint, dry_run, time_limit, chosen, entry, esm,
                                            note)
        return sub_id

    def submission_info(self, sub_id):
        return submits.submission_info(self.h, sub_id)

    def infer_log(self, sub_id, follow=False):
        _info, path = submits.log_path(self.h, sub_id)
        if path is None:
            raise PermissionDenied(f"submission {sub_id}: infer logs of real submits are shown to organizers only")
        if not follow:
            return read_chunks(path)
        run_id = submits.run_id_of(self.h, sub_id)
        return SLOTS.hold(self.h.settings.user, follow_file(path, lambda: sessions.run_status(self.h, run_id).terminal,
                                                            lambda: sessions.ensure_running(self.h.settings)))

    def wait_submission(self, sub_id, timeout=30.0, *, progress=None):
        run_id = submits.run_id_of(self.h, sub_id)  # (rights first: a refused caller takes no slot)
        release = SLOTS.take(self.h.settings.user)  # a wait holds a server thread, like a log follow
        try:
            sessions.wait_run(self.h, run_id, timeout=timeout)
        finally:
            release()
        return submits.submission_info(self.h, sub_id)

    def select_submissions(self, ids):
        return contests.select_submissions(self.h, ids)

    def history(self, task, page, per_page):
        rows = boards.history(self.h, task, page=page, per_page=per_page)
        total = boards.history_count(self.h, task) if len(rows) == per_page or page > 1 else len(rows)
        return rows, total

    def board(self, task):
        if contests.in_a_round(self.h, task):
            return {"kind": "round", **contests.board(self.h, task)}
        title, rows = boards.board_with_title(self.h, task)
        return {"kind": "users", "title": title, "rows": rows}

    def round_board(self, task, round_ref, private):
        return contests.board(self.h, task, round_ref, private)

    def score_history(self, task, top=10):
        return boards.score_history(self.h, task, top)

    def list_tasks(self):
        return tasks.list_tasks(self.h)

    def task_readme(self, task):
        return tasks.task_readme(self.h, task)

    def prepare_task(self, task, scale, seed, corpus, replace):
        manifest, path = tasks.prepare_builtin(self.h, task, scale=scale, seed=seed, corpus=list(corpus),
                                               replace=replace)
        return {"name": manifest.name, "path": str(path)}

    def add_task(self, folder, replace, name, metric, direction, note=None):
        return tasks.add_pack(self.h, Path(folder), replace=replace, name=name, metric=metric,
                              direction=direction, echo=note).name

    def check_task(self, task):
        return tasks.check_pack(self.h, task)

    def remove_task(self, task):
        tasks.remove(self.h, task)

    def task_changes(self, task):
        return tasks.changes(self.h, task)

    def hide_submission(self, sub_id, hidden=True):
        return moderation.hide_submission(self.h, sub_id, hidden)

    def mark_baseline(self, name, team=False, on=True):
        return moderation.mark_baseline(self.h, name, team, on)

    def hidden_entries(self, task):
        return moderation.hidden_entries(self.h, task)

    def audit(self, limit=200):
        return moderation.audit(self.h, limit)

    def create_contest(self, file, prepare=False, scale=1.0, note=None):
        name, spec = contests.create(self.h, Path(file), prepare=prepare, scale=scale, echo=note)
        return {"name": name, "rounds": len(spec["rounds"]), "teams": len(spec["teams"])}

    def list_contests(self):
        return contests.list_contests(self.h)

    def show_teams(self, contest):
        return contests.show_teams(self.h, contest)

    def add_team(self, contest, team, users):
        contests.add_team(self.h, contest, team, list(users))

    def close_round(self, round_ref, force=False):
        return contests.close(self.h, round_ref, force)

    def clock(self):
        now, simulated = contests.clock_now(self.h)
        return {"now": now.isoformat(timespec="seconds"), "simulated": simulated}

    def set_clock(self, when=None, real=False):
        if not when and not real:
            raise UserError("when: give a time (ISO, UTC) or real = true")
        contests.set_clock(self.h, None if real else when)
        now, simulated = contests.clock_now(self.h)
        return {"now": now.isoformat(timespec="seconds"), "simulated": simulated}

    def rescore(self, task, dry_run, *, progress=None):
        from harness.core.progress import silent
        rows, moves = contests.rescore(self.h, task, dry_run, progress or silent)
        return {"submissions": rows, "rank_changes": moves, "dry_run": dry_run}
