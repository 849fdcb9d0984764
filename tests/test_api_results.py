"""Every JSON operation's real result has its declared type (harness.api.results): the keys, their types, and no
key the declaration does not name — locally and through `harness serve`. A field cannot appear or change type in
one front end only."""
from __future__ import annotations

from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, one_round_contest, participant, run_session
from pydantic import TypeAdapter

from harness.api import OPERATIONS, Kind
from harness.server.derived import wire_type

CONTEST = one_round_contest("cup", {"red": ["bob"]}, "tiny3")

# operation -> (who calls it, its arguments); run in this order. Streams and file transfers are checked elsewhere.
CALLS = [
    ("whoami", "alice", {}),
    ("list_sessions", "alice", {"all_": True}),
    ("inventory", "alice", {}),
    ("session_info", "alice", {"session": "alice/tiny/1"}),
    ("session_metrics", "alice", {"session": "alice/tiny/1"}),
    ("list_checkpoints", "alice", {"session": "alice/tiny/1"}),
    ("submission_info", "alice", {"sub_id": 1}),
    ("wait_submission", "alice", {"sub_id": 1, "timeout": 0}),
    ("history", "alice", {"task": "tiny"}),
    ("history", ORGANIZER, {"task": "tiny"}),
    ("board", "alice", {"task": "tiny"}),
    ("score_history", "alice", {"task": "tiny"}),
    ("list_tasks", "alice", {}),
    ("list_tasks", ORGANIZER, {}),
    ("task_readme", "alice", {"task": "tiny"}),
    ("check_task", ORGANIZER, {"task": "tiny"}),
    ("task_changes", ORGANIZER, {"task": "tiny"}),
    ("list_users", ORGANIZER, {}),
    ("hide_submission", ORGANIZER, {"sub_id": 1, "hidden": True}),
    ("hidden_entries", ORGANIZER, {"task": "tiny"}),
    ("hide_submission", ORGANIZER, {"sub_id": 1, "hidden": False}),
    ("mark_baseline", ORGANIZER, {"name": "carol"}),
    ("audit", ORGANIZER, {}),
    ("clock", "alice", {}),
    ("set_clock", ORGANIZER, {"real": True}),
    ("rescore", ORGANIZER, {"task": "tiny", "dry_run": True}),
    ("list_contests", "alice", {}),
    ("show_teams", "alice", {"contest": "cup"}),
    ("add_team", ORGANIZER, {"contest": "cup", "team": "blue", "users": ["dave"]}),
    ("round_board", "bob", {"task": "tiny3"}),
    ("board", "bob", {"task": "tiny3"}),
    ("submission_info", "bob", {"sub_id": 2}),
    ("select_submissions", "bob", {"ids": [2]}),
    ("close_round", ORGANIZER, {"round_ref": "cup/r1", "force": True}),
    ("round_board", "bob", {"task": "tiny3", "private": True}),
    ("list_contests", "alice", {}),
    ("stop_sessions", "alice", {"pattern": "alice/tiny/*"}),
    ("set_memo", "alice", {"session": "alice/tiny/1", "text": "m"}),
    ("remove_checkpoints", "alice", {"session": "alice/tiny/1", "pattern": "0"}),
    ("remove_sessions", "alice", {"pattern": "alice/tiny/1"}),
    ("disable_user", ORGANIZER, {"name": "carol"}),
    ("reset_token", ORGANIZER, {"name": "dave"}),
]


def make_world(cli, tmp_path, account):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    with open(make_tiny_task(tmp_path / "tiny3", name="tiny3") / "task.toml", "a") as fh:
        fh.write('\n[split]\nlabel = "lines"\nprediction = "lines"\n')  # a round's task has public/private halves
    cli("dataset", "add", tmp_path / "tiny3", user=ORGANIZER)
    for name in ("alice", "bob", "carol", "dave"):
        account(name)
    folder = participant(tmp_path / "code", NSML_MAIN)
    run_session(cli, folder)
    cli("submit", "alice/tiny/1", "1")
    (tmp_path / "cup.toml").write_text(CONTEST)
    cli("contest", "create", tmp_path / "cup.toml", user=ORGANIZER)
    name = cli("run", "-d", "tiny3", "-e", "main.py", folder, user="bob").stdout.split()[1]
    cli("logs", "-f", name, user="bob")
    cli("submit", name, "1", user="bob")


def _apis(remote_cli=None):
    from harness.core.settings import load_settings
    from harness.service.local import LocalApi
    from harness.state import Harness
    made = {}

    def api(user):
        if user not in made:
            if remote_cli is None:
                made[user] = LocalApi(Harness(load_settings(user=user)))
            else:
                from harness.client import RemoteApi
                made[user] = RemoteApi(remote_cli.url, remote_cli.token(user))
        return made[user]
    return api, made


def _check(api_for) -> list[str]:
    problems, seen = [], set()
    for name, user, args in CALLS:
        op = OPERATIONS[name]
        assert op.kind is not Kind.STREAM
        seen.add(name)
        result = getattr(api_for(user), name)(**op.bind((), args))
        try:
            TypeAdapter(wire_type(op.result, exact=True)).validate_python(result, strict=False)
        except Exception as exc:  # pydantic's ValidationError: every field that differs
            problems.append(f"{name} as {user}: {str(exc)[:600]}")
    return problems, seen


def test_every_result_has_its_declared_type_locally(cli, tmp_path):
    make_world(cli, tmp_path, lambda name: cli("user", "add", name, user=ORGANIZER))
    api_for, made = _apis()
    try:
        problems, seen = _check(api_for)
    finally:
        for api in made.values():
            api.h.store.close()
    assert problems == [], "\n".join(problems)
    called_elsewhere = {"start_session", "fork_session", "start_submit", "add_user", "prepare_task", "add_task",
                        "remove_task", "create_contest", "pull_checkpoint", "session_log", "infer_log"}
    assert set(OPERATIONS) - seen - called_elsewhere == set()


def test_every_result_has_its_declared_type_through_the_server(served, remote_cli, tmp_path):
    make_world(remote_cli, tmp_path, remote_cli.token)
    api_for, made = _apis(remote_cli)
    try:
        problems, _ = _check(api_for)
    finally:
        for api in made.values():
            api.close()
    assert problems == [], "\n".join(problems)
