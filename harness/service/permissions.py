"""Who may do what: the one place identity and rights are checked (the CLI and the coming HTTP API both call it).

Rules:
- A participant acts only on their own sessions, checkpoints and submissions; wildcards expand among their own.
- Organizers (``organizers`` in harness.toml; when the list is absent, the OS account that runs the harness) may
  act on anyone's, and alone may add, prepare, replace or remove tasks, and run the contest's organizer commands.
- A task of a round that has not revealed it yet (contest.gate.hidden_tasks: reveal = "open", the default) is, to
  a participant, as unknown as a name never registered: not listed, its README, board and history not read, no
  run of it, and no "did you mean" names it. So is a task not prepared yet (a built-in, a pack in extra_task_paths):
  only organizers prepare, and see those.
- Every check is here; the floors below trust their callers (the service) to have made it.
"""
from __future__ import annotations

import fnmatch

from sqlalchemy import select

from harness.contest.gate import hidden_tasks
from harness.core import clock
from harness.core.enums import FailureReason
from harness.core.errors import NotFound, PermissionDenied
from harness.scoring.grade import UNSAFE_PREDICTION
from harness.scoring.loader_probe import CLAIM_REFUSED
from harness.state import Harness
from harness.store.models import Session, Task, User


def is_organizer(settings) -> bool:
    return settings.is_organizer


def hidden_from(h: Harness, db) -> frozenset[str]:
    """The tasks the caller may not know of yet (none, to an organizer)."""
    return frozenset() if is_organizer(h.settings) else hidden_tasks(db, clock.now(h.settings))


def task_of(h: Harness, db, name: str) -> Task:
    """The prepared task NAME as the caller may know it: a hidden one (`hidden_from`), and to a participant one not
    prepared yet, is NotFound, in the words of a name never registered. Every look-up of a task by a name a
    participant gave goes through here."""
    return h.task(db, name, hidden_from(h, db), sources=is_organizer(h.settings))


def require_organizer(settings, command: str) -> None:
    if not is_organizer(settings):
        raise PermissionDenied(f"{command} is an organizer command: user {settings.user!r} is not in 'organizers' "
                               f"of the state root's harness.toml, nor an account made with `user add --organizer`")
        #                        (no path: a server's caller learns none)


def check_runtime(settings, asked: str | None) -> None:
    """Where a participant's code runs is the organizer's choice: their --runtime (ASKED) may name `runtime` or one
    of `runtime_choices` (harness.toml), or what `auto` picks where that is allowed. An organizer may name any."""
    allowed = [settings.runtime, *settings.runtime_choices]
    if not asked or asked in allowed or is_organizer(settings) or ("auto" in allowed and _auto() == asked):
        return
    raise PermissionDenied(f"--runtime {asked}: participants' code runs under {' or '.join(map(repr, allowed))} "
                           f"here (an organizer may allow more: runtime_choices in harness.toml)")


def code_confined(sess) -> bool:
    """Whether the code of session SESS runs confined or not at all (its run's demand: a participant's over HTTP,
    runs.create): so does every run of that code, a fork's and a submit's, whoever asks — an organizer's included
    (the demand is the code's, not the caller's)."""
    return bool((sess.run.spec or {}).get("confine"))


def check_confined(settings, runtime: str, demanded: bool = False) -> None:
    """A run that a participant asks for over HTTP (Settings.must_confine), or of code that DEMANDED it
    (`code_confined`), that the process runtime could not confine (no working bubblewrap under `[process]
    sandbox = "auto"`) is refused now, not run unconfined: the runtime's own rule
    (runtime.process.resolve_sandbox), which it applies again when it starts the run."""
    if runtime == "process" and (settings.must_confine or demanded):
        from harness.runtime.base import LaunchRefused
        from harness.runtime.process import resolve_sandbox
        try:
            resolve_sandbox(settings.process_sandbox, confine=True)
        except LaunchRefused as exc:
            raise PermissionDenied(str(exc)) from None


def _auto() -> str:
    from harness import runtime
    return runtime.resolve("auto")[0]


def may_act_on(settings, owner: str) -> bool:
    return owner == settings.user or is_organizer(settings)


def require_owner(settings, owner: str, what: str) -> None:
    """WHAT (e.g. 'session alice/tiny/1') belongs to OWNER: only they or an organizer may act on it."""
    if not may_act_on(settings, owner):
        raise PermissionDenied(f"{what} belongs to {owner}; user {settings.user!r} may act only on their own")


def own_session(h: Harness, db, name: str) -> Session:
    """A session the current user may act on: their own, or anyone's for an organizer. Another user's session is
    to a participant as one that is not there (the same words): which sessions, and how many, a rival has is not
    told (the hostile review of stop 48: a 403 naming its owner, a 404 otherwise)."""
    mine = None if is_organizer(h.settings) else h.settings.user
    sess = h.session(db, name, owner=mine)  # (hints: their own only)
    if not may_act_on(h.settings, sess.user.name):
        raise h.unknown_session(db, sess.name, mine)
    return sess


def own_submission(settings, sub, sub_id: int):
    """SUB (a Submission, or None), when the current user may see it: their own, or anyone's for an organizer;
    else the same NotFound as an id with no submission (whose ids are whose is not told)."""
    if sub is None or not may_act_on(settings, sub.user.name):
        raise NotFound(f"--submission: no submission {sub_id}")
    return sub


def sessions_matching(h: Harness, db, pattern: str) -> list[Session]:
    """Sessions whose name matches a pattern with NSML's wildcards (* and ?), among those the user may act on
    (their own; an organizer's patterns reach everyone's)."""
    if not any(c in pattern for c in "*?["):
        return [own_session(h, db, pattern)]
    query = select(Session.name)
    if not is_organizer(h.settings):
        query = query.join(User, Session.user_id == User.id).where(User.name == h.settings.user)
    chosen = [n for n in db.scalars(query).all() if fnmatch.fnmatchcase(n, pattern)]
    if not chosen:
        raise NotFound(f"no session of yours matches {pattern!r}")
    return list(db.scalars(select(Session).where(Session.name.in_(chosen)).order_by(Session.id)))


# What a participant reads about their own real submit that failed: never text that the evaluator or the loader
# wrote (it may quote the hidden labels or test inputs — and participant code in a submit run sees the inputs, so
# a prediction it wrote can hold them, and an evaluator's complaint about it would quote them back). Nor anything
# the infer chooses among: its exit code or signal (8 bits of test data a submit), the bytes it wrote (a sparse
# file sized to carry them), which unsafe file it left or whether its prediction was missing or empty. The
# harness's own messages (time, memory) are kept; the reason itself stays (~3 bits), and the run's time.
HIDDEN_FROM_PARTICIPANTS = {
    FailureReason.EXIT_CODE: "your infer's process ended with an error (a real submit does not say which: its "
                             "code could carry test data; submit -t shows the run and its log on test_submit)",
    FailureReason.DISK_QUOTA: "the run wrote more than its disk limit (limits.scratch_bytes; a real submit does not "
                              "say how much: the run chooses that figure)",
    FailureReason.MISSING_OUTPUT: "feed_infer wrote no prediction, or an empty one (submit -t shows which)",
    FailureReason.INVALID_PREDICTION: "the prediction is not valid for this task (submit -t shows why on test_submit)",
    FailureReason.SCORER_ERROR: "the task's evaluator failed (not counted; organizers see why)",
    FailureReason.LOADER_ERROR: "the task's data loader failed before your infer was called (not counted; "
                                "organizers see why)",
}


def submission_message(settings, dry_run: bool, reason: FailureReason | None, message: str | None) -> str | None:
    """The failure message of a submission as the current user may read it (the one home of this rule)."""
    if dry_run or is_organizer(settings) or reason not in HIDDEN_FROM_PARTICIPANTS or message is None:
        return message
    if reason is FailureReason.INVALID_PREDICTION and message.startswith(UNSAFE_PREDICTION):
        return f"{UNSAFE_PREDICTION} (submit -t says what it found instead)"  # (which of link, FIFO, socket, size:
        #                                                                    the run's choice, not said)
    if reason is FailureReason.EXIT_CODE and message.startswith(CLAIM_REFUSED):
        return message  # the harness's own words about a loader claim (its exit code is always the claim's)
    return HIDDEN_FROM_PARTICIPANTS[reason]
