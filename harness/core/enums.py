"""Statuses, failure reasons and other closed vocabularies."""
from __future__ import annotations

import enum

from .errors import UserError


class RunKind(str, enum.Enum):
    TRAIN = "train"
    SUBMIT = "submit"


class RunStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED)


class RunPhase(str, enum.Enum):
    """Where a running run is, recorded before it happens (see harness.scheduler): what recovery does after a
    crash depends on it."""

    LAUNCHING = "launching"  # marked, its code not started yet: a crash requeues it
    RUNNING = "running"  # its code started: a crash fails it as lost
    SCORING = "scoring"  # a submit whose inference ended (or blamed the loader: judged): a crash scores it again


class FailureReason(str, enum.Enum):
    """Why a run or a submission did not succeed."""

    TIMEOUT = "timeout"
    OOM = "oom"
    EXIT_CODE = "exit_code"
    MISSING_OUTPUT = "missing_output"
    INVALID_PREDICTION = "invalid_prediction"
    SCORER_ERROR = "scorer_error"
    STOPPED = "stopped"
    LAUNCH_ERROR = "launch_error"
    DISK_QUOTA = "disk_quota"
    HARNESS_ERROR = "harness_error"
    LOST = "lost"
    LOADER_ERROR = "loader_error"  # the task's data_loader.py failed outside the participant's infer

    @property
    def harness_fault(self) -> bool:
        """Failures that are not the participant's fault never count against a quota."""
        return self in HARNESS_FAULTS


HARNESS_FAULTS = frozenset({FailureReason.HARNESS_ERROR, FailureReason.LOST, FailureReason.SCORER_ERROR,
                            FailureReason.LOADER_ERROR})


def counted(dry_run: bool, reason: FailureReason | None) -> bool:
    """The one rule of what counts (against a quota, on a board's submit counts): not a dry run, and not failed
    through the harness's fault. Its SQL forms (store.read_sql COUNTED, scoring.board_rules.counted_clause) are
    built from HARNESS_FAULTS and checked against this by tests/test_board_sql.py."""
    return not dry_run and (reason is None or reason not in HARNESS_FAULTS)


class Direction(str, enum.Enum):
    """Which way a task's metric is better: the one home of "better" (Python, and the SQL words for it)."""
    HIGHER = "higher"
    LOWER = "lower"

    @classmethod
    def parse(cls, text: object, what: str) -> "Direction":
        """A direction from a manifest or a flag; WHAT names where it came from in the one-line error."""
        try:
            return cls(str(text).lower())
        except ValueError:
            raise UserError(f"{what}: direction must be 'higher' or 'lower', got {text!r}") from None

    def better(self, a: float, b: float) -> bool:
        return a > b if self is Direction.HIGHER else a < b

    def sort_key(self, score: float) -> float:
        """Sorts best first (ascending)."""
        return -score if self is Direction.HIGHER else score

    @property
    def sign(self) -> float:
        """+1 or -1: a difference times it is positive when the first score is the better one."""
        return 1.0 if self is Direction.HIGHER else -1.0

    @property
    def sql_best(self) -> str:
        """The SQL aggregate of the best score."""
        return "max" if self is Direction.HIGHER else "min"

    @property
    def sql_order(self) -> str:
        """The SQL order that puts the best score first."""
        return "DESC" if self is Direction.HIGHER else "ASC"


class RoundStatus(str, enum.Enum):
    """Where a contest round stands (derived from its times and whether it was opened or closed)."""

    PENDING = "pending"  # not opened yet: an earlier round is still running, or its start time is ahead
    OPEN = "open"
    ENDED = "ended"  # past its end time, not closed yet: no more submits, boards not revealed
    CLOSED = "closed"  # frozen, private board revealed, qualifiers entered into the next round


class Reveal(str, enum.Enum):
    """When participants learn a round's tasks (harness.contest.gate.reveals): organizers always see them."""

    OPEN = "open"  # when the round opens: before, a task of it is as unknown to them as one never registered
    ALWAYS = "always"  # from the contest's creation: listed, its README and board read, only runs refused


class PublicBoard(str, enum.Enum):
    """What a round's public board shows of a team (harness.scoring.ladder_board)."""

    PLAIN = "plain"  # its best public score, as every submit reports it
    LADDER = "ladder"  # the Ladder (Blum & Hardt 2015): a score shown only when it beats the shown one beyond noise


class GpuPolicy(str, enum.Enum):
    """What happens to a session that would take its team over the round's GPU quota."""

    WAIT = "wait"  # it queues until the team's other runs free their GPUs
    REFUSE = "refuse"  # `run` refuses it at once
