"""Every operation of the API, declared once. The local implementation (harness.service.local.LocalApi), the HTTP
client (harness.client.RemoteApi), the server's routes (harness.server.derived), the OpenAPI document, the
permission matrix test and `nsml api` (the reference) are all read from here; tests/test_api_declared.py fails
when a route, a client method or a CLI command exists without its declaration.

To add an operation: declare it here, write its method on LocalApi. Its route and its client method follow.
"""
from __future__ import annotations

from . import results as R
from .declare import Arg, Kind, Operation, Paging, Registry, Right, each

OPERATIONS = Registry()
op = OPERATIONS.add

NAME = dict(min_length=1, max_length=200)
SESSION = Arg("session", str, min_length=5, max_length=300)
NAMED = Arg("name", str, **NAME)
TASK = Arg("task", str, **NAME)
MAX_ID = 2 ** 62  # a submission's id, a session's number: what a store's integer holds, and the web's bound too
SUB = Arg("sub_id", int, ge=1, le=MAX_ID)
RUN_OPTS = Arg("opts", dict, default={})  # gpus, cpus, memory, ... (the server checks them: server.derived.RunOpts)
ARGS = Arg("args", str | None, default=None, max_length=10_000)
MEMO = Arg("memo", str, default="", max_length=1000)
RUNTIME = Arg("runtime", str | None, default=None, max_length=64)

# -- identity and accounts ------------------------------------------------------------------------------------
op(Operation("whoami", "GET", "/whoami", result=R.Whoami, cli=("whoami",),
             doc="Who the caller is: user, organizer or not, and the server (None locally)."))
op(Operation("add_user", "POST", "/users", (NAMED, Arg("organizer", bool, default=False),
             Arg("team", str | None, default=None, **NAME)), result=str, right=Right.ORGANIZER,
             cli=("user add",), doc="A new account; its token (shown once)."))
op(Operation("list_users", "GET", "/users", result=list[R.UserRow], right=Right.ORGANIZER, paging=Paging.LIST,
             cli=("user ls",), doc="Every account: name, organizer, team, disabled."))
op(Operation("disable_user", "POST", "/users/{name}/disable", (NAMED,), right=Right.ORGANIZER,
             cli=("user disable",), doc="The account's token stops working; its entries stay."))
op(Operation("reset_token", "POST", "/users/{name}/token", (NAMED,), result=str, right=Right.ORGANIZER,
             cli=("user token reset",), doc="A new token for the account; the old one stops working."))

# -- sessions -------------------------------------------------------------------------------------------------
op(Operation("start_session", "POST", "/sessions", (TASK, Arg("folder", str, max_length=4096, path=True),
             Arg("entry", str, default="main.py", max_length=255), ARGS, MEMO, RUN_OPTS), result=str,
             kind=Kind.CUSTOM, notes=True, cli=("run",),
             doc="`nsml run`: the folder (a tar stream over HTTP) becomes a new session; its name."))
op(Operation("fork_session", "POST", "/sessions{session}/fork", (SESSION, Arg("checkpoint", str, **NAME), ARGS,
             MEMO, RUN_OPTS), result=str, right=Right.OWNER, notes=True, cli=("fork",),
             doc="A new session from another's code and checkpoint."))
op(Operation("list_sessions", "GET", "/sessions", (Arg("all_", bool, default=False, alias="all"),
             Arg("last", int | None, default=None, ge=1, le=10 ** 6), Arg("task", str | None, default=None, **NAME)),
             result=list[R.SessionRow], paging=Paging.LIST, cli=("ps",), doc="Your sessions (organizers: --all)."))
op(Operation("inventory", "GET", "/inventory", result=R.Inventory, cli=("ps",),
             doc="The GPUs runs may get (a cluster's node by node) and how many are in use: counts only."))
op(Operation("session_info", "GET", "/sessions{session}", (SESSION,), result=R.SessionRow, right=Right.OWNER,
             cli=("logs", "run"), doc="One session: status, times, options, checkpoints."))
op(Operation("session_log", "GET", "/sessions{session}/log", (SESSION, Arg("follow", bool, default=False)),
             right=Right.OWNER, kind=Kind.STREAM, cli=("logs",),
             doc="The session's log; with follow, streamed as it grows until the session ends."))
op(Operation("session_metrics", "GET", "/sessions{session}/metrics", (SESSION,
             Arg("x", str, default="step", pattern="^(step|time)$"),
             Arg("keys", list[str] | None, default=None, max_length=100, items=each(max_length=200))),
             result=R.SessionMetrics, right=Right.OWNER,
             cli=("plot",), doc="What nsml.report recorded: one series per metric, at most 1,000 points each."))
op(Operation("stop_sessions", "POST", "/sessions/stop", (Arg("pattern", str, min_length=1, max_length=300),),
             result=list[str], right=Right.OWNER, cli=("stop",), doc="Stop the sessions PATTERN names."))
op(Operation("remove_sessions", "POST", "/sessions/remove", (Arg("pattern", str, min_length=1, max_length=300),),
             result=list[str], right=Right.OWNER, cli=("rm",), doc="Remove ended sessions PATTERN names."))
op(Operation("set_memo", "PUT", "/sessions{session}/memo", (SESSION, Arg("text", str, max_length=1000)),
             right=Right.OWNER, cli=("memo",), doc="The session's memo."))

# -- checkpoints ----------------------------------------------------------------------------------------------
op(Operation("list_checkpoints", "GET", "/sessions{session}/checkpoints", (SESSION,), result=list[R.CheckpointRow],
             right=Right.OWNER, cli=("model ls",), doc="The session's checkpoints, with their metrics."))
op(Operation("remove_checkpoints", "DELETE", "/sessions{session}/checkpoints/{pattern}", (SESSION,
             Arg("pattern", str, min_length=1, max_length=300)), result=list[str], right=Right.OWNER,
             cli=("model rm",), doc="Remove the checkpoints PATTERN names."))
op(Operation("pull_checkpoint", "GET", "/sessions{session}/checkpoints/{checkpoint}/archive", (SESSION,
             Arg("checkpoint", str, **NAME), Arg("dest", str, max_length=4096, path=True)), result=tuple[str, list[str]],
             right=Right.OWNER, kind=Kind.CUSTOM, cli=("model pull",),
             doc="The checkpoint folder into DEST (a tar stream over HTTP); what was skipped."))

# -- submissions ----------------------------------------------------------------------------------------------
op(Operation("start_submit", "POST", "/submissions", (SESSION, Arg("checkpoint", str, **NAME),
             Arg("dry_run", bool, default=False), Arg("time_limit", float | None, default=None, gt=0, le=10 ** 8),
             RUNTIME, Arg("entry", str | None, default=None, max_length=255),
             Arg("esm", str | None, default=None, max_length=64), Arg("verbose", bool, default=False)),
             result=int, right=Right.OWNER_ONLY, notes=True, cli=("submit",),
             doc="Submit a session's checkpoint (dry run: on test_submit); the submission's id."))
op(Operation("submission_info", "GET", "/submissions/{sub_id}", (SUB,), result=R.Submission, right=Right.OWNER,
             cli=("logs",), doc="One submission: status, score, reason."))
op(Operation("wait_submission", "GET", "/submissions/{sub_id}/wait", (SUB,
             Arg("timeout", float, default=30.0, ge=0, le=30)), result=R.Submission, right=Right.OWNER, cli=("submit",),
             progress=True,
             doc="The submission once it has ended, or as it is after TIMEOUT seconds (callers ask again; the "
                 "HTTP client across a server restart too)."))
op(Operation("infer_log", "GET", "/submissions/{sub_id}/log", (SUB, Arg("follow", bool, default=False)),
             right=Right.OWNER, kind=Kind.STREAM, cli=("submit", "logs"),
             doc="The infer log (your dry runs; organizers: every submit); with follow, streamed until the end."))
op(Operation("select_submissions", "POST", "/submissions/select", (Arg("ids", list[int], min_length=1,
             max_length=100, items=each(ge=1, le=MAX_ID)),), result=R.Selected, cli=("submit",),
             doc="Choose the round's final submissions."))
op(Operation("history", "GET", "/tasks/{task}/history", (TASK, Arg("page", int, default=1, ge=1, le=10 ** 6),
             Arg("per_page", int, default=50, ge=1, le=1000)), result=tuple[list[R.HistoryRow], int], cli=("history",),
             doc="Your submissions to TASK (organizers: everyone's), a page at a time; and their count."))

# -- boards ---------------------------------------------------------------------------------------------------
op(Operation("board", "GET", "/tasks/{task}/board", (TASK,), result=R.Board, paging=Paging.ROWS,
             cli=("board", "dataset board"),
             doc="The leaderboard (in a round: the round's public board)."))
op(Operation("round_board", "GET", "/tasks/{task}/round-board", (TASK,
             Arg("round_ref", str | None, default=None, alias="round", max_length=200),
             Arg("private", bool, default=False)), result=R.RoundBoard, cli=("contest board",),
             doc="A round's board (private: after it closed, or for organizers)."))
op(Operation("score_history", "GET", "/tasks/{task}/score-history", (TASK, Arg("top", int, default=10, ge=1,
             le=50)), result=R.ScoreHistory,
             doc="The board's top TOP: best score so far over time, at most 1,000 points."))

# -- tasks ----------------------------------------------------------------------------------------------------
op(Operation("list_tasks", "GET", "/tasks", result=list[R.TaskRow], paging=Paging.LIST, cli=("dataset ls",),
             doc="The registered tasks (where each is on the server's disk: organizers only)."))
op(Operation("task_readme", "GET", "/tasks/{task}/readme", (TASK,), result=str,
             doc="A prepared task's README.md (Markdown as its organizer wrote it, at most 200,000 characters)."))
op(Operation("prepare_task", "POST", "/tasks/{task}/prepare", (TASK, Arg("scale", float, default=1.0, gt=0,
             le=100), Arg("seed", int, default=0, ge=0, le=2 ** 31), Arg("corpus", list[str], default=(), path=True,
             local_only="--corpus: a path on this machine; on a server, prepare with its own corpus (run 'dataset "
                        "prepare' on the server host)"), Arg("replace", bool, default=False)), result=R.Prepared,
             right=Right.ORGANIZER, cli=("dataset prepare",), doc="Build a built-in task's data and register it."))
op(Operation("add_task", "POST", "/tasks", (Arg("folder", str, max_length=4096, path=True), Arg("replace", bool, default=False),
             Arg("name", str | None, default=None, max_length=64), Arg("metric", str | None, default=None,
             max_length=64), Arg("direction", str | None, default=None, pattern="^(higher|lower)$")), result=str,
             right=Right.ORGANIZER, kind=Kind.CUSTOM, notes=True, cli=("dataset add",),
             doc="Register a task pack (a tar stream over HTTP); the task's name."))
op(Operation("check_task", "GET", "/tasks/{task}/check", (TASK,), result=list[R.CheckRow], right=Right.ORGANIZER,
             cli=("dataset check",), doc="Check a pack against the contract: one row per check."))
op(Operation("remove_task", "DELETE", "/tasks/{task}", (TASK,), right=Right.ORGANIZER, cli=("dataset rm",),
             doc="Unregister a task."))
op(Operation("task_changes", "GET", "/tasks/{task}/changes", (TASK,), result=list[R.TaskChange], right=Right.ORGANIZER,
             cli=("dataset changes",), doc="When the task's files changed, and what each submission was graded on."))

# -- moderation -----------------------------------------------------------------------------------------------
op(Operation("hide_submission", "POST", "/submissions/{sub_id}/hide", (SUB, Arg("hidden", bool, default=True)),
             result=R.Hidden, right=Right.ORGANIZER, cli=("hide", "unhide"),
             doc="Hide (or show again) a submission: it keeps its row, and never ranks while hidden."))
op(Operation("mark_baseline", "POST", "/baselines", (NAMED, Arg("team", bool, default=False),
             Arg("on", bool, default=True, alias="baseline")), result=R.Baseline, right=Right.ORGANIZER,
             cli=("baseline",),
             doc="Mark a user or team as a baseline: marked on boards in its place, never qualifying."))
op(Operation("hidden_entries", "GET", "/tasks/{task}/hidden", (TASK,), result=list[R.HiddenEntry],
             right=Right.ORGANIZER,
             cli=(), doc="The task's hidden submissions and baselines."))
op(Operation("audit", "GET", "/audit", (Arg("limit", int, default=200, ge=1, le=1000),), result=list[R.AuditRow],
             right=Right.ORGANIZER, cli=("audit",), doc="The organizers' acts, newest first."))

# -- contests -------------------------------------------------------------------------------------------------
op(Operation("create_contest", "POST", "/contests", (Arg("file", str, max_length=4096, path=True),
             Arg("prepare", bool, default=False), Arg("scale", float, default=1.0, gt=0, le=100)), result=R.ContestMade,
             right=Right.ORGANIZER, kind=Kind.CUSTOM, notes=True, cli=("contest create",),
             doc="A contest from contest.toml (its text over HTTP): name, rounds, teams."))
op(Operation("list_contests", "GET", "/contests", result=list[R.ContestRound], cli=("contest ls",),
             doc="The contests."))
op(Operation("show_teams", "GET", "/contests/{contest}/teams", (Arg("contest", str, **NAME),), result=list[R.TeamRow],
             cli=("contest teams",), doc="A contest's teams and members."))
op(Operation("add_team", "POST", "/contests/{contest}/teams", (Arg("contest", str, **NAME), Arg("team", str, **NAME),
             Arg("users", list[str], min_length=1, max_length=100, items=each(**NAME))), right=Right.ORGANIZER,
             cli=("contest team add",), doc="A team, or members added to it."))
op(Operation("close_round", "POST", "/rounds/close", (Arg("round_ref", str, alias="round", **NAME),
             Arg("force", bool, default=False)), result=R.Closed, right=Right.ORGANIZER, cli=("contest close",),
             doc="Close a round: its private board is final (one not yet over only with force; cut_short says what)."))
op(Operation("clock", "GET", "/clock", result=R.Clock, cli=("contest clock",),
             doc="The contest clock: now, and whether it is simulated."))
op(Operation("set_clock", "PUT", "/clock", (Arg("when", str | None, default=None, max_length=40),
             Arg("real", bool, default=False)), result=R.Clock, right=Right.ORGANIZER, cli=("contest clock",),
             doc="Set the simulated clock to WHEN (ISO, UTC), or back to the real one."))
op(Operation("rescore", "POST", "/tasks/{task}/rescore", (TASK, Arg("dry_run", bool, default=False)), result=R.Rescored,
             right=Right.ORGANIZER, cli=("rescore",), progress=True,
             doc="Grade every scored submission again with the task's current files; rank changes."))

# The CLI commands that are not operations of a state root, and why (the declaration test reads this).
LOCAL_COMMANDS = {
    "login": "stores a server's URL and token on this machine",
    "logout": "forgets them",
    "serve": "starts the server of this state root",
    "contest simulate": "runs a whole simulated contest here, on a state root of its own",
    "image build": "builds a Docker image with this machine's engine, or an era environment on this machine",
    "image eras": "lists the era environments of this machine's catalogue (a file read here)",
    "check": "dry-runs a folder on this machine against a task's contract (local mode only)",
    "init": "writes a participant entry into a folder on this machine",
    "dataset init": "writes a task pack into a folder on this machine",
}
