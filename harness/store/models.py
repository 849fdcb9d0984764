"""SQLAlchemy 2 models: users, tasks, sessions, runs, checkpoints, metrics and submissions.

A *run* is one execution of participant code (a training session, or the inference half of a submit); the
scheduler only knows runs.  Sessions and submissions each point at the run that executes them.
"""


from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from harness.core.clock import utcnow
from harness.core.enums import (
    Direction,
    FailureReason,
    GpuPolicy,
    PublicBoard,
    Reveal,
    RunKind,
    RunPhase,
    RunStatus,
    counted,
)


def _enum(cls, name, length=32):
    return Enum(cls, name=name, native_enum=False, length=length,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


class Said(TypeDecorator):
    """Text that may quote what a run or an evaluator printed (a run's and a submission's message): a NUL in it,
    which PostgreSQL refuses in any text and a participant's prediction can put in an evaluator's complaint, is
    stored as U+FFFD on every store alike (a write that failed on it failed the scoring: an uncounted submit)."""
    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")  # marked on boards
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Account(Base):
    """A server login (harness serve): the user's rights and hashed API token. Local mode needs none."""
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    organizer: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    token_id: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    token_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    token_salt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_set_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    user: Mapped[User] = relationship()


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    path: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(String(64), default="score")
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"), default=Direction.HIGHER)
    prepared_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[RunKind] = mapped_column(_enum(RunKind, "run_kind"))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"), default=RunStatus.QUEUED,
                                              index=True)
    reason: Mapped[FailureReason | None] = mapped_column(_enum(FailureReason, "failure_reason"), nullable=True)
    message: Mapped[str | None] = mapped_column(Said, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runtime: Mapped[str] = mapped_column(String(32), default="process")
    spec: Mapped[dict] = mapped_column(JSON, default=dict)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_ids: Mapped[list] = mapped_column(JSON, default=list)
    cpus: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    shm_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    time_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    phase: Mapped[RunPhase | None] = mapped_column(_enum(RunPhase, "run_phase", length=16), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), nullable=True, index=True)
    team_gpu_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the round's, when queued
    run_dir: Mapped[str] = mapped_column(Text, default="")
    events_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def log_path(self) -> str:
        return f"{self.run_dir}/log.txt"


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("user_id", "task_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    number: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    entry: Mapped[str] = mapped_column(Text)
    args: Mapped[list] = mapped_column(JSON, default=list)
    memo: Mapped[str] = mapped_column(Text, default="")
    dir: Mapped[str] = mapped_column(Text)
    forked_from: Mapped[str | None] = mapped_column(String(300), nullable=True)
    fork_checkpoint: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User] = relationship()
    task: Mapped[Task] = relationship()
    run: Mapped[Run] = relationship()
    checkpoints: Mapped[list["Checkpoint"]] = relationship(back_populates="session",
                                                           cascade="all, delete-orphan")
    metrics: Mapped[list["Metric"]] = relationship(cascade="all, delete-orphan")

    @property
    def code_dir(self) -> str:
        return f"{self.dir}/code"

    @property
    def checkpoint_dir(self) -> str:
        return f"{self.dir}/checkpoints"


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("session_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    name: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    elapsed: Mapped[float] = mapped_column(Float, default=0.0)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    modified_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    session: Mapped[Session] = relationship(back_populates="checkpoints")


class Metric(Base):
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    key: Mapped[str] = mapped_column(String(256))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    raw: Mapped[object] = mapped_column(JSON, nullable=True)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    scope: Mapped[str | None] = mapped_column(String(128), nullable=True)
    summary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (  # the boards (covering: no table reads; the team one only holds round submissions),
        #                  history and quota windows use these (migration 0005)
        Index("ix_submissions_board_user", "task_id", "round_id", "user_id", "dry_run", "status", "score",
              "created_at", "reason", "hidden"),
        Index("ix_submissions_board_team", "round_id", "task_id", "team_id", "dry_run", "status", "score",
              "created_at", "reason", "hidden", sqlite_where=text("round_id IS NOT NULL"),
              postgresql_where=text("round_id IS NOT NULL")),
        Index("ix_submissions_user_task", "user_id", "task_id", "created_at"),
        Index("ix_submissions_team_task", "team_id", "task_id", "created_at"),
        Index("ix_submissions_board_first", "task_id", "round_id", "user_id", "dry_run", "status", "hidden", "score",
              "created_at"),  # each user's earliest best by one seek (migration 0008)
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"), nullable=True)
    session_name: Mapped[str] = mapped_column(String(300))
    checkpoint: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "submission_status"), default=RunStatus.QUEUED)
    reason: Mapped[FailureReason | None] = mapped_column(_enum(FailureReason, "submission_reason"),
                                                         nullable=True)
    message: Mapped[str | None] = mapped_column(Said, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # in a contest round: the public score
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), nullable=True, index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"), nullable=True, index=True)
    private_score: Mapped[float | None] = mapped_column(Float, nullable=True)  # organizers only until close
    # scored on its public half, its private half not yet (harness.scheduler.private_half: after the submit is
    # reported, so that its time says nothing of the private half; a round closes once none is due) (0013)
    private_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0", index=True)
    # the score's 95% bootstrap interval (harness.scoring.score_interval), the private one's, or why none (0009)
    score_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    private_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    private_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    interval_note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    selected: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # a Ladder round's submission: whether it became its team's shown public score (None elsewhere, or unscored)
    ladder_accepted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")  # never ranks (moderation)
    hidden_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    hidden_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    provenance: Mapped[dict | None] = mapped_column(JSON, nullable=True, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    user: Mapped[User] = relationship()
    task: Mapped[Task] = relationship()
    run: Mapped[Run] = relationship()
    team: Mapped["Team | None"] = relationship()

    @property
    def counted(self) -> bool:
        """Counts against the quota: not a dry run, and not failed through the harness's fault."""
        return counted(self.dry_run, self.reason)


class Contest(Base):
    """A contest defined by a contest.toml: its rounds and teams."""

    __tablename__ = "contests"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    rounds: Mapped[list["Round"]] = relationship(back_populates="contest", order_by="Round.number")
    teams: Mapped[list["Team"]] = relationship(back_populates="contest", order_by="Team.name")


class Round(Base):
    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("contest_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    contest_id: Mapped[int] = mapped_column(ForeignKey("contests.id"))
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    tasks: Mapped[list] = mapped_column(JSON, default=list)
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    submit_quota: Mapped[int] = mapped_column(Integer, default=1)
    submit_period: Mapped[float] = mapped_column(Float, default=3600.0)
    gpu_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gpu_quota_teams: Mapped[dict] = mapped_column(JSON, default=dict)  # team name → its own quota
    gpu_policy: Mapped[GpuPolicy] = mapped_column(_enum(GpuPolicy, "gpu_policy"), default=GpuPolicy.WAIT)
    public_fraction: Mapped[float] = mapped_column(Float, default=0.3)
    public_board: Mapped[PublicBoard] = mapped_column(_enum(PublicBoard, "public_board", 16),
                                                      default=PublicBoard.PLAIN, server_default="plain")
    reveal: Mapped[Reveal] = mapped_column(_enum(Reveal, "reveal", 16), default=Reveal.OPEN, server_default="open")
    split_seed: Mapped[int] = mapped_column(Integer, default=0)
    selection_limit: Mapped[int] = mapped_column(Integer, default=2)
    qualify: Mapped[dict] = mapped_column(JSON, default=dict)  # {"top": K} or {"threshold": X} or {}
    entry: Mapped[str] = mapped_column(String(16), default="all")  # all | qualified
    opened_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    results: Mapped[dict] = mapped_column(JSON, default=dict)  # written at close: boards and qualifiers

    contest: Mapped[Contest] = relationship(back_populates="rounds")

    @property
    def label(self) -> str:
        return f"{self.contest.name}/{self.name}"

    @property
    def closed(self) -> bool:
        """Frozen, with its private board revealed to everyone."""
        return self.closed_at is not None


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("contest_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    contest_id: Mapped[int] = mapped_column(ForeignKey("contests.id"))
    name: Mapped[str] = mapped_column(String(128))
    baseline: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")  # marked on boards

    contest: Mapped[Contest] = relationship(back_populates="teams")
    members: Mapped[list["TeamMember"]] = relationship(cascade="all, delete-orphan")


class TeamMember(Base):
    """A user is in at most one team per contest."""

    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("contest_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    contest_id: Mapped[int] = mapped_column(ForeignKey("contests.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    user: Mapped[User] = relationship()


class RoundEntry(Base):
    """A team admitted to a round: registered (first round) or qualified (by the previous round's close)."""

    __tablename__ = "round_entries"
    __table_args__ = (UniqueConstraint("round_id", "team_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    reason: Mapped[str] = mapped_column(Text, default="registered")

    team: Mapped[Team] = relationship()


class TaskChange(Base):
    """A task registered, replaced (its evaluator or test data changed under existing scores) or removed."""

    __tablename__ = "task_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(16))  # add | prepare | replace | remove
    user: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text, default="")
    old_evaluator: Mapped[str | None] = mapped_column(String(80), nullable=True)
    new_evaluator: Mapped[str | None] = mapped_column(String(80), nullable=True)
    old_data: Mapped[str | None] = mapped_column(String(80), nullable=True)
    new_data: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """An organizer's action on the contest (hide, unhide, baseline, rescore, close): who, when, what."""
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[object] = mapped_column(JSON, nullable=True)
