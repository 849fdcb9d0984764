"""The background scheduler: one per state root, holding its lease (harness.scheduler.lease) while it works.

It starts queued runs when their GPUs are free (round robin over owners: fair_share), watches running ones (limits,
stops, events, disk), renews heartbeats, records outcomes, scores submits in threads; the CLI starts it, idle ends it.

Every state change is one transaction, written before what it describes: a run is ``launching`` before its code
starts (a crash requeues it), ``running`` with its pid, ``scoring`` once its inference ended (a crash rescores it;
a submit that blamed the task's loader is judged there too, off the loop: scoring.loader_probe).
"""
from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select, update

from harness.core import doorbell
from harness.core.clock import utcnow
from harness.core.enums import FailureReason, RunKind, RunPhase, RunStatus
from harness.core.errors import ClusterUnavailable
from harness.core.settings import SETTINGS_FILE, Settings, load_settings
from harness.runs.create import refused_at_launch
from harness.runs.ending import mark, requeue, sync_submission
from harness.runs.events import collect, collect_all, record
from harness.runs.spec import spec_for
from harness.runtime import Handle, LaunchRefused, Outcome, env_store, gpus
from harness.runtime.disk_limits import DiskWatch, over_limit
from harness.runtime.executors import get_executor
from harness.scoring import ladder_board, loader_probe, provenance
from harness.scoring.grade import apply, grade_run
from harness.store import Store
from harness.store.models import Round, Run, Session, Submission

from . import private_half
from .fair_share import Turns
from .lease import has_pending_work
from .recovery import recover_runs

log = logging.getLogger("harness.scheduler")
HEARTBEAT_EVERY = 1.0


class Scheduler:
    def __init__(self, settings: Settings, store: Store):
        self.settings, self.store = settings, store
        self.handles: dict[int, Handle] = {}
        self.gpu_busy: dict[int, list[int]] = {}  # GPUs admitted per run (indices into the executor's inventory)
        self.placed: dict[int, object] = {}  # runs a cluster has placed (their node is recorded)
        self.scoring: dict[int, Future] = {}
        self._ended_submits: list[int] = []  # submit runs ended since the last tick (their teams' Ladders)
        self._ended_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="score")
        self.private = private_half.Worker(store, private_half.threads(settings))  # (no run slot)
        self.executor = get_executor(settings)
        self._last_heartbeat = 0.0
        self._settings_mtime: float | None = None
        self.checkpoint_dirs: dict[int, Path] = {}  # training runs: where their checkpoints are saved
        self.disk = DiskWatch()
        self.served: dict[int, int] = {}  # owner → when last served (scheduler.fair_share)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # scoring threads ring it when done

    def wait_for_events(self, bell: doorbell.Doorbell, timeout: float) -> None:
        """Sleep until a run ends, a score is ready, somebody rings, or TIMEOUT (limits and heartbeats)."""
        fds = [bell.fd, self._wake_r] + [fd for h in self.handles.values() if (fd := h.exit_fd()) is not None]
        ready = doorbell.wait_readable(fds, timeout)
        if bell.fd in ready:
            bell.drain()
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass

    def _ring(self, _future=None) -> None:
        try:
            os.write(self._wake_w, b".")
        except OSError:  # full (a wake is pending) or closed at shutdown
            pass

    def _submit_scoring(self, run_id: int) -> None:
        fut = self.pool.submit(self._score, run_id)
        fut.add_done_callback(self._ring)
        self.scoring[run_id] = fut

    def runtime(self, name: str):
        return self.executor.runtime(name)

    def recover(self) -> None:
        """We hold the lock: nothing marked running is watched by anyone else (old environments: `_heartbeat`)."""
        for run_id in recover_runs(self.settings, self.store, self.executor):
            log.warning("run %s: scoring again after a restart", run_id)
            self._submit_scoring(run_id)

    # -- one pass ------------------------------------------------------------------------------------------
    def _reload_settings(self) -> None:
        """Pick up edits of harness.toml (GPU inventory, limits) without a restart."""
        path = self.settings.root / SETTINGS_FILE
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime != self._settings_mtime:
            self._settings_mtime = mtime
            try:
                fresh = load_settings(root=self.settings.root, db=self.settings.db_url, user=self.settings.user)
            except Exception as exc:  # noqa: BLE001 - a broken file: keep the last good settings
                log.error("harness.toml not reloaded: %s", exc)
                return
            if (fresh.executor, fresh.cluster_address) != (self.settings.executor, self.settings.cluster_address):
                log.warning("[cluster] changed: it applies to the next scheduler (runs in flight stay where they are)")
                fresh.executor, fresh.cluster_address = self.settings.executor, self.settings.cluster_address
            self.settings = fresh
            self.executor.reload(fresh)

    def tick(self) -> bool:
        """One pass over running and queued runs. Returns False when there is nothing left to do."""
        self._reload_settings()
        to_score = self._watch()
        for run_id in to_score:  # after the commit: a crash from here on finds the run in its scoring phase
            self._submit_scoring(run_id)
        self._start_queued()
        self._collect_scores()
        self.private.tick(self.settings)
        self._replay_ladders()
        self._heartbeat()
        return bool(self.handles or self.scoring or self.private.busy) or has_pending_work(self.store, self.settings)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat < HEARTBEAT_EVERY:
            return
        self._last_heartbeat = now
        if env_store.collection_due(self.settings.envs_dir):  # (at its first tick, then hourly while it lasts)
            self.pool.submit(env_store.collect_garbage, self.settings.envs_dir)
        ids = list(self.handles) + list(self.scoring)
        if ids:
            with self.store.tx() as db:
                db.execute(update(Run).where(Run.id.in_(ids)).values(heartbeat_at=utcnow()))

    def _watch(self) -> list[int]:
        """Poll every watched run, then record what happened in one transaction. Limits, stop requests and the
        events file are handled outside any transaction (files a run wrote are read with bounds, see ingest).
        Returns the submit runs whose inference ended well, to be scored."""
        if not self.handles:
            return []
        with self.store.tx() as db:
            watched = {rid: (stop, offset) for rid, stop, offset in db.execute(
                select(Run.id, Run.stop_requested, Run.events_offset).where(Run.id.in_(list(self.handles))))}
        ended: dict[int, Outcome] = {}
        collected, placed = {}, {}
        for run_id, (stop, offset) in watched.items():
            handle = self.handles[run_id]
            where = handle.placement()
            if where is not None and run_id not in self.placed:
                placed[run_id] = self.placed[run_id] = where
            over = self.disk.verdict(run_id)
            if over:
                handle.cancel(FailureReason.DISK_QUOTA, over)
            if stop:
                handle.cancel(FailureReason.STOPPED, "stopped by the user")
            outcome = handle.poll()
            if outcome is not None and outcome.reason is not FailureReason.DISK_QUOTA:  # at every end: what it
                over = over_limit(handle.spec.disk_limits)  # wrote after the last scan (or hid from it) counts too
                if over:
                    outcome = Outcome(RunStatus.FAILED, FailureReason.DISK_QUOTA, outcome.exit_code, over)
            checkpoints = self.checkpoint_dirs.get(run_id)
            if checkpoints is not None:
                collected[run_id] = collect(handle.spec.paths.run, offset or 0, checkpoints) if outcome is None \
                    else collect_all(handle.spec.paths.run, offset or 0, checkpoints, beat=self._heartbeat)
            self._heartbeat()  # one run's end (its checkpoints measured, its last output waited for) never makes
            #                    every run's heartbeat stale
            if outcome is not None:
                ended[run_id] = outcome
        to_score, done = [], []
        with self.store.tx() as db:
            for run_id, where in placed.items():  # a cluster placed it: the node and the GPU ids it gave
                run = db.get(Run, run_id)
                run.gpu_ids, run.pid = list(where.gpu_ids), where.pid
                run.spec = {**(run.spec or {}), "node": where.record(), "isolation": self.handles[run_id].isolation}
            for run_id, got in collected.items():
                run = db.get(Run, run_id)
                record(db, run, db.scalar(select(Session).where(Session.run_id == run_id)), got)
            for run_id, outcome in ended.items():
                run, handle = db.get(Run, run_id), self.handles.pop(run_id)
                done.append(handle)
                self.gpu_busy.pop(run_id, None)
                self.placed.pop(run_id, None)
                self.checkpoint_dirs.pop(run_id, None)
                self.disk.forget(run_id)
                if outcome.status is RunStatus.QUEUED:  # its node went away before its code started
                    requeue(db, run, outcome.message)
                    continue
                run.spec = {**(run.spec or {}), "isolation": handle.isolation,
                            **({"environment": handle.environment} if handle.environment else {})}
                if run.kind is RunKind.SUBMIT and (outcome.status is RunStatus.SUCCEEDED
                                                   or loader_probe.is_claim(outcome)):  # (checked in a thread too)
                    run.exit_code, run.phase = outcome.exit_code, RunPhase.SCORING
                    run.message = outcome.message or run.message  # (a claim's: kept should its probe fail)
                    to_score.append(run.id)
                else:
                    self._finish(db, run, outcome)
        for handle in done:  # its outcome is recorded: now its resources go (a container, say)
            handle.close()
        return to_score

    def _start_queued(self) -> None:
        """Mark the runs that fit as launching (one transaction), then start each one."""
        chosen = []
        with self.store.tx() as db:
            waiting = db.scalars(select(Run).where(Run.status == RunStatus.QUEUED)).all()
            refused = refused_at_launch(db, waiting)
            for run in waiting:  # (whether or not a slot is free)
                why = "stopped before it started" if run.stop_requested else refused.get(run.id)
                if why:
                    self._finish(db, run, Outcome(RunStatus.STOPPED, FailureReason.STOPPED, None, why))
            turns = Turns(db, [r for r in waiting if r.status is RunStatus.QUEUED], self.settings.max_running_per_user,
                          self.served)
            queued = turns.order
            if not queued:
                return
            try:
                inventory = self.executor.gpu_models()
            except ClusterUnavailable as exc:  # the runs wait (nothing is failed for the cluster's absence)
                note = f"waiting for the cluster: {exc}"
                for run in queued:
                    if run.message != note:
                        run.message = note
                return
            busy = {g for ids in self.gpu_busy.values() for g in ids}
            team_held = self._team_gpus(db)
            gpu_blocked = False
            for run in queued:
                if len(self.handles) + len(self.scoring) + len(chosen) >= self.settings.max_concurrent_runs:
                    break
                note = turns.held(run)
                if note is not None:  # its owner has limits.running_per_user runs running
                    run.message = note
                    continue
                ids: list[int] = []
                if run.gpus > len(inventory):  # it would wait forever: say so instead
                    self._finish(db, run, Outcome(RunStatus.FAILED, FailureReason.LAUNCH_ERROR, None,
                                                  f"{run.gpus} GPU(s) requested, the inventory has "
                                                  f"{len(inventory)}"))
                    continue
                if run.gpus and run.team_id is not None and run.team_gpu_quota is not None \
                        and team_held.get(run.team_id, 0) + run.gpus > run.team_gpu_quota:
                    # over its team's GPU quota: it waits for the team's own runs, blocking no one else
                    note = (f"waiting for the team's GPU quota: {team_held.get(run.team_id, 0)} of "
                            f"{run.team_gpu_quota} held, {run.gpus} asked")
                    if run.message != note:
                        run.message = note
                    continue
                if run.gpus:
                    if gpu_blocked:
                        continue  # among GPU runs nobody overtakes the first one (in serve order) that waits
                    got = gpus.allocate(inventory, busy, run.gpus, (run.spec or {}).get("gpu_model"))
                    if got is None:
                        gpu_blocked = True
                        continue
                    ids = got
                busy.update(ids)
                if run.team_id is not None:
                    team_held[run.team_id] = team_held.get(run.team_id, 0) + len(ids)
                run.status, run.phase, run.gpu_ids, run.message = RunStatus.RUNNING, RunPhase.LAUNCHING, ids, None
                run.started_at = run.heartbeat_at = utcnow()
                run.attempts += 1
                sync_submission(db, run)
                self.gpu_busy[run.id] = ids
                turns.started(run)
                chosen.append(run.id)
        for run_id in chosen:
            self._launch(run_id)
            self._heartbeat()  # (a launch may take seconds, a container's say: many of them never stale the others)

    def _team_gpus(self, db) -> dict[int, int]:
        """GPUs each team's runs hold now (runs whose inference ended have given theirs back)."""
        held: dict[int, int] = {}
        ids = [rid for rid, g in self.gpu_busy.items() if g]
        if ids:
            for team_id, n in db.execute(select(Run.team_id, Run.gpus).where(Run.id.in_(ids),
                                                                              Run.team_id.is_not(None))):
                held[team_id] = held.get(team_id, 0) + n
        return held

    def _launch(self, run_id: int) -> None:
        with self.store.tx() as db:
            run = db.get(Run, run_id)
            try:
                handle = self.runtime(run.runtime).start(spec_for(self.settings, db, run))
            except Exception as exc:  # noqa: BLE001 - the run fails with a named reason, the scheduler goes on
                log.error("run %s failed to start: %s", run.id, traceback.format_exc())
                self.gpu_busy.pop(run_id, None)
                reason = exc.reason if isinstance(exc, LaunchRefused) else FailureReason.LAUNCH_ERROR
                self._finish(db, run, Outcome(RunStatus.FAILED, reason, None, f"could not start: {exc}"))
                return
            run.pid, run.phase = handle.pid, RunPhase.RUNNING
            run.spec = {**(run.spec or {}), "isolation": handle.isolation}  # shown while it runs, not only after
            self.handles[run.id] = handle
            if run.kind is RunKind.TRAIN:
                self.checkpoint_dirs[run.id] = handle.spec.paths.checkpoints
            self.disk.watch(run.id, handle.spec.disk_limits, handle)  # (measured frozen, with what it holds)

    # -- outcomes ------------------------------------------------------------------------------------------
    def _finish(self, db, run: Run, outcome: Outcome, replayed: bool = False) -> None:
        """Record a run's end. A submit's team Ladder (if any) decides the next ones once this commits, unless
        the caller REPLAYED it in this very transaction (a grade)."""
        mark(db, run, outcome.status, outcome.reason, outcome.message)
        run.exit_code = outcome.exit_code
        if run.kind is RunKind.SUBMIT and not replayed:
            with self._ended_lock:
                self._ended_submits.append(run.id)

    def _replay_ladders(self) -> None:
        """Replay the Ladder of every team whose submit ended since the last tick (after those commits)."""
        with self._ended_lock:
            ended, self._ended_submits = self._ended_submits, []
        if not ended:
            return
        try:
            ladder_board.replay_after_end(self.store, ended)
        except Exception:  # noqa: BLE001 - a locked database, say: tried again next tick, never lost
            log.error("Ladder replay failed, retried next tick: %s", traceback.format_exc())
            with self._ended_lock:
                self._ended_submits = ended + self._ended_submits

    def _score(self, run_id: int) -> None:
        """Worker thread: grade a finished submit run with the task's evaluator, or judge its claim that the task's
        loader failed (scoring.loader_probe: the probe may take a minute, never the loop's); idempotent."""
        with self.store.tx() as db:
            run = db.get(Run, run_id)
            sub = db.scalar(select(Submission).where(Submission.run_id == run_id))
            dataset, dry_run, run_dir, log_file = Path(sub.task.path), sub.dry_run, run.run_dir, Path(run.log_path)
            rnd = db.get(Round, sub.round_id) if sub.round_id else None
            ladder = ladder_board.key(sub) if ladder_board.is_ladder(rnd) and sub.team_id is not None else None
            if rnd is not None:
                db.expunge(rnd)
            sess = db.get(Session, sub.session_id) if sub.session_id else None
            code_dir = Path(sess.code_dir) if sess else None
            environment, runtime = (run.spec or {}).get("environment"), run.runtime
            claim = None  # it blamed the task's loader: judged, never graded
            if run.exit_code == loader_probe.CLAIM_EXIT:
                claim = sub.task.name, Outcome(RunStatus.FAILED, FailureReason.EXIT_CODE, run.exit_code, run.message)
        if claim is not None:
            result = loader_probe.judge(self.settings, runtime, environment, dataset, dry_run, *claim)
        else:
            result = grade_run(self.settings, run_dir, log_file, dataset, dry_run, rnd, runtime, defer_private=True)
        origin = provenance.record(code_dir, dataset, dry_run, environment, runtime) if code_dir and not claim else {}
        with self.store.tx(serialize=ladder) as db:  # a Ladder round: one team's grades one after another
            run = db.get(Run, run_id)
            sub = db.scalar(select(Submission).where(Submission.run_id == run_id))
            sub.provenance = {**(sub.provenance or {}), **origin}
            if isinstance(result, Outcome):
                outcome = result
            elif result.ok:
                apply(sub, result)
                outcome = Outcome(RunStatus.SUCCEEDED, None, run.exit_code, "")
            else:
                outcome = Outcome(RunStatus.FAILED, result.reason, run.exit_code, result.message)
            self._finish(db, run, outcome, replayed=ladder is not None)
            if ladder is not None:  # decided before anyone is told the submission ended (submit order)
                ladder_board.replay(db, db.get(Round, sub.round_id), sub.task, sub.team_id)

    def _collect_scores(self) -> None:
        for run_id, fut in list(self.scoring.items()):
            if not fut.done():
                continue
            del self.scoring[run_id]
            exc = fut.exception()
            if exc is not None:
                log.error("scoring run %s crashed: %r", run_id, exc)
                with self.store.tx() as db:
                    self._finish(db, db.get(Run, run_id), Outcome(RunStatus.FAILED, FailureReason.HARNESS_ERROR,
                                                                  None, f"scoring crashed: {exc}"))

    def shutdown(self) -> None:
        for handle in self.handles.values():  # (each signalled at once, then each waited for: a cancel never waits)
            handle.cancel(FailureReason.HARNESS_ERROR, "the scheduler was shut down")
        for handle in self.handles.values():
            handle.wait(handle.spec.kill_grace + 5.0)
            handle.close()
        self.disk.close()
        self.pool.shutdown(wait=True)
        self.private.shutdown()
        self.executor.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
