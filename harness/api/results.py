"""What the operations return, as types (TypedDicts: typing only, nothing to import at run time). Every front end
gets the same JSON-able data: the CLI prints it (-j as it is), the server sends it, the dashboard renders it.
The server documents each result's schema in the OpenAPI document, and tests/test_api_results.py checks real
results against these types, so a field cannot appear or change type without its declaration saying so."""
from __future__ import annotations

from typing import Any, NotRequired, Optional, TypedDict


class Whoami(TypedDict):
    user: str
    organizer: bool
    server: Optional[str]


class SessionRow(TypedDict):
    name: str
    status: str
    reason: Optional[str]
    message: Optional[str]
    exit_code: Optional[int]
    cpus: Optional[float]
    gpus: int
    gpu_ids: list[Any]
    created: Optional[str]
    started: Optional[str]
    ended: Optional[str]
    entry: str
    args: list[str]
    memo: str
    forked_from: Optional[str]
    isolation: Optional[str]
    reserved_flags: Optional[list[str]]
    esm: Optional[str]
    gpu_model: Optional[str]
    datasets: list[str]  # the tasks more than its own whose training data it reads (NSML's -d a,b)
    node: Optional[dict]
    summary: dict[str, Any]


class GpuReading(TypedDict):
    index: int
    model: str
    memory_used: int  # bytes
    memory_total: int  # bytes
    utilization: int  # percent


class Inventory(TypedDict):
    executor: str
    gpus: int
    in_use: int
    nodes: list[dict]
    devices: list[GpuReading]  # NVML's readings of this machine's devices now (none without a driver)


class Series(TypedDict):
    x: list[float]
    y: list[float]
    points: NotRequired[int]  # how many were recorded (x and y are downsampled to at most 1,000)


class SessionMetrics(TypedDict):
    session: str
    args: list[str]
    status: str
    x: str
    series: dict[str, Series]
    metrics: int  # how many metrics the session has: more than `series` holds past service.metrics.MAX_SERIES


class CheckpointRow(TypedDict):
    checkpoint: str
    last_modified: Optional[str]
    elapsed: Optional[float]
    summary: dict[str, Any]
    size: Optional[int]


class _Outcome(TypedDict):
    """What every view of a submission shows (its history row; its whole record, Submission)."""
    id: int
    session: Optional[str]
    checkpoint: str
    dry_run: bool
    status: str
    reason: Optional[str]
    score: Optional[float]
    message: Optional[str]
    created: str
    private_score: NotRequired[Optional[float]]
    provenance: NotRequired[Optional[dict]]
    ladder: NotRequired[Optional[str]]  # a Ladder round's word on it (harness.scoring.ladder_board)


class Submission(_Outcome):
    user: str
    task: str
    counted: bool
    isolation: Optional[str]
    esm: Optional[str]
    entry: Optional[str]
    round: NotRequired[str]
    team: NotRequired[str]
    score_kind: NotRequired[str]
    selected: NotRequired[bool]
    public_board: NotRequired[str]  # a round's: plain or ladder
    reserved_flags: NotRequired[Optional[list[str]]]
    log_head: NotRequired[list[str]]
    log_tail: NotRequired[list[str]]


class HistoryRow(_Outcome):
    selected: bool
    in_round: bool  # a contest round's submission (it has a private score and can be selected)
    reserved_flags: Optional[list[str]]


class BoardRow(TypedDict):
    rank: int
    user: str
    score: float
    session: Optional[str]
    checkpoint: str
    submits: int
    last_submit: Optional[str]
    submission: int
    baseline: bool
    interval: Optional[list[float]]  # the score's 95% bootstrap interval [low, high] (harness.scoring.score_interval)
    interval_note: Optional[str]  # why it has none


class Board(TypedDict):
    """A task's board: "users" (rows: BoardRow, and a title) outside rounds; "round" (a round's public team
    board, with RoundBoard's fields) inside one."""
    kind: str
    rows: list[dict]
    title: NotRequired[str]
    round: NotRequired[str]
    task: NotRequired[str]
    metric: NotRequired[Optional[str]]
    direction: NotRequired[str]
    status: NotRequired[str]
    private_shown: NotRequired[bool]
    shakeup: NotRequired[Optional[dict]]
    public_board: NotRequired[str]


class ScoreHistory(TypedDict):
    task: str
    direction: str
    series: dict[str, Series]


class TaskRow(TypedDict):
    name: str
    prepared: bool
    metric: Optional[str]
    direction: Optional[str]
    submissions: int
    source: NotRequired[str]  # where it is on the server's disk, or which entry point: organizers only
    path: NotRequired[str]


class CheckRow(TypedDict):
    check: str
    ok: bool
    detail: str


class TaskChange(TypedDict):
    time: str
    action: str
    user: Optional[str]
    path: Optional[str]
    old_evaluator: Optional[str]
    new_evaluator: Optional[str]
    old_data: Optional[str]
    new_data: Optional[str]


class Prepared(TypedDict):
    name: str
    path: str


class UserRow(TypedDict):
    user: str
    organizer: bool
    disabled: bool
    token_set: Optional[str]
    created_by: Optional[str]


class Hidden(TypedDict):
    id: int
    hidden: bool
    task: str
    user: str


class Baseline(TypedDict):
    name: str
    team: bool
    baseline: bool


class HiddenEntry(TypedDict):
    id: int
    user: str
    team: Optional[str]
    score: Optional[float]
    session: Optional[str]
    checkpoint: str
    hidden_by: Optional[str]
    hidden_at: Optional[str]


class AuditRow(TypedDict):
    time: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class Clock(TypedDict):
    now: str
    simulated: bool


class Rescored(TypedDict):
    submissions: list[dict]
    rank_changes: list[dict]
    dry_run: bool


class ContestMade(TypedDict):
    name: str
    rounds: int
    teams: int


class Selected(TypedDict):
    round: str
    team: str
    selected: list[int]


class ContestRound(TypedDict):
    contest: str
    round: str
    tasks: str  # its tasks, "a, b" (to a participant, before the round reveals them: a line saying when)
    revealed: bool  # whether the caller may know its tasks (reveal = "open": from the round's opening)
    status: str
    start: str
    end: str
    teams: int
    quota: str
    gpu_quota: Any  # a number, or "N (team: n, ...)" where some teams have their own
    qualify: Any
    qualifiers: Optional[list[str]]


class TeamRow(TypedDict):
    team: str
    members: str
    rounds: str


class RoundBoard(TypedDict):
    round: str
    task: str
    metric: Optional[str]
    direction: str
    status: str
    public_board: str  # plain, or ladder (harness.scoring.ladder_board)
    private_shown: bool
    rows: list[dict]
    shakeup: NotRequired[Optional[dict]]  # with the private board: expected shake-up (harness.scoring.board_ties)


class Closed(TypedDict):
    round: str
    closed_at: str
    boards: dict[str, list[dict]]
    qualifiers: dict[str, str]
    next_round: Optional[str]
    cut_short: Optional[str]
    no_private_score: list[dict]  # {submission, task, team, selected}: scored, yet their private half failed
    clock_simulated: bool
    clock_now: str  # the contest clock's time at the close (closed_at is never before the round opened)
