"""Every operation is declared once (harness.api.operations): the server's routes, the HTTP client's methods, the
local implementation and the CLI's commands are checked against the declarations, and each check is shown to
catch what it is for (an undeclared route, method or command)."""
from __future__ import annotations

import subprocess
import sys

import click
import pytest
from fastapi.routing import APIRoute

from harness.api import LOCAL_COMMANDS, OPERATIONS, Api, Kind
from harness.api.contract import implements

API = "/api/v1"


def app_routes(app, prefix: str = ""):
    """(full path, route) of every route, through included routers (FastAPI keeps them nested)."""
    for route in app.routes if hasattr(app, "routes") else app.original_router.routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from app_routes(route, prefix + route.include_context.prefix)
        else:
            yield prefix + getattr(route, "path", ""), route


def route_problems(app) -> list[str]:
    """Routes under /api/v1 without a declaration (or unlike it), and declarations without exactly one route."""
    from harness.server.derived import route_path
    problems, seen = [], {}
    for path, route in app_routes(app):
        if not isinstance(route, APIRoute) or not path.startswith(API):
            continue
        op = OPERATIONS.get(route.operation_id or "")
        if op is None:
            problems.append(f"{sorted(route.methods)} {path}: no declaration")
            continue
        if route.methods != {op.verb} or path != API + route_path(op):
            problems.append(f"{op.name}: routed as {sorted(route.methods)} {path}, declared {op.verb} {op.path}")
        seen[op.name] = seen.get(op.name, 0) + 1
    problems += [f"{name}: {seen.get(name, 0)} routes" for name in OPERATIONS if seen.get(name, 0) != 1]
    return problems


def command_problems(group: click.Group) -> list[str]:
    """CLI commands no declaration (nor LOCAL_COMMANDS) names, and names that are no command."""
    commands = set()

    def walk(cmd, path=()):
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(None):
                walk(cmd.get_command(None, name), path + (name,))
        else:
            commands.add(" ".join(path))
    walk(group)
    named = {c for op in OPERATIONS.values() for c in op.cli} | set(LOCAL_COMMANDS)
    return [f"command '{c}': no declaration names it" for c in sorted(commands - named)] + \
           [f"'{c}' is named by a declaration but is no command" for c in sorted(named - commands)]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from harness.core.settings import load_settings
    from harness.server.app import create_app
    app = create_app(load_settings(root=tmp_path_factory.mktemp("root")))
    yield app
    app.state.server.base.store.close()


def test_every_route_is_a_declared_operation_and_every_operation_has_its_route(app):
    assert route_problems(app) == []
    spec = app.openapi()
    ids = {o["operationId"] for p, ops in spec["paths"].items() if p.startswith(API) for o in ops.values()}
    assert ids == set(OPERATIONS)  # the OpenAPI document is the declarations


def test_an_undeclared_route_is_caught(app):
    app.router.add_api_route(API + "/extra", lambda: {}, methods=["GET"], operation_id="extra")
    try:
        assert route_problems(app) == ["['GET'] /api/v1/extra: no declaration"]
    finally:
        app.router.routes.pop()


def test_both_implementations_are_exactly_the_declarations():
    from harness.client import RemoteApi
    from harness.service.local import LocalApi
    assert implements(LocalApi) == [] and implements(RemoteApi) == []
    assert not LocalApi.__abstractmethods__ and not RemoteApi.__abstractmethods__
    assert set(Api.__abstractmethods__) == set(OPERATIONS)
    written = {n for n, f in vars(RemoteApi).items() if n in OPERATIONS and not hasattr(f, "derived_from")}  # hand-written client methods: CUSTOM ones, plus
    assert {n for n, op in OPERATIONS.items() if op.kind is Kind.CUSTOM} <= written  # a few that loop or add
    assert written <= {n for n, op in OPERATIONS.items() if op.kind is Kind.CUSTOM} | {"whoami", "wait_submission"}


def test_the_local_service_client_is_made_from_the_declarations_alone():
    from harness.client import ServiceApi
    assert implements(ServiceApi) == [] and not ServiceApi.__abstractmethods__
    assert all(hasattr(vars(ServiceApi)[name], "derived_from") for name in OPERATIONS)  # none written by hand


def test_an_undeclared_or_misdeclared_method_is_caught():
    from harness.service.local import LocalApi

    class Drifted(LocalApi):
        def purge_everything(self):
            pass

        def set_memo(self, name, text):  # the declaration says (session, text)
            pass
    assert implements(Drifted) == ["Drifted.purge_everything: no declaration",
                                   "Drifted.set_memo('self', 'name', 'text'): declared as ('self', 'session', 'text')"]


def test_every_cli_command_is_declared():
    from harness.cli import all_commands, main
    all_commands()
    assert command_problems(main) == []
    extra = click.Group("x", commands={"run": click.Command("run"), "teleport": click.Command("teleport")})
    assert "command 'teleport': no declaration names it" in command_problems(extra)


def test_the_declarations_load_no_heavy_library():
    code = ("import sys, harness.api, harness.client; "
            "print(sorted(m for m in ('pydantic', 'fastapi', 'sqlalchemy') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_a_wrong_operation_name_suggests_the_near_one():
    from harness.core.errors import UserError
    with pytest.raises(UserError, match="did you mean 'set_memo'"):
        OPERATIONS["set_meme"]


def test_the_reference_is_written_from_the_declarations():
    """docs/api.md is what `python -m harness.api.reference` writes (regenerate it after changing a declaration)."""
    from pathlib import Path

    from harness.api.reference import render
    doc = Path(__file__).resolve().parent.parent / "docs" / "api.md"
    assert doc.read_text() == render(), "docs/api.md is stale: python -m harness.api.reference > docs/api.md"
    for name in OPERATIONS:
        assert f"### `{name}`" in doc.read_text()


def test_every_integer_a_route_takes_is_bounded(app):
    """A dashboard route took `sub_id: int` and `page_: int` unbounded: an id past the store's integers was an
    OverflowError, a 500 (the hostile review of stop 48). Every integer of every route, the API's and the
    dashboard's, path, query or form, has both bounds."""
    def bounds(field) -> set[str]:
        return {name for m in field.field_info.metadata for name in ("ge", "gt", "le", "lt") if hasattr(m, name)}
    unbounded, ints = [], 0
    for path, route in app_routes(app):
        if not isinstance(route, APIRoute):
            continue
        d = route.dependant
        for field in d.path_params + d.query_params + d.body_params:
            if field.field_info.annotation is int:
                ints += 1
                if not ({"le", "lt"} & bounds(field) and {"ge", "gt"} & bounds(field)):
                    unbounded.append(f"{path} {field.name}")
    assert unbounded == [] and ints >= 10


def test_a_huge_id_on_a_dashboard_page_is_a_422_not_a_500(app):
    from fastapi.testclient import TestClient
    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/submissions/99999999999999999999999", "/submissions?task=tiny&page_=99999999999999999999",
                 "/sessions/alice/tiny/99999999999999999999999"):
        assert client.get(path, follow_redirects=False).status_code == 422, path  # (checked before the login)


def test_only_static_files_may_be_kept_by_a_browser_or_a_proxy(app):
    """Pages, board.json, CSV exports and API answers are somebody's view (an organizer's Private tab before the
    close): `Cache-Control: no-store` on every answer but /static (the hostile review of stop 48)."""
    from fastapi.testclient import TestClient
    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/login", "/tasks", "/tasks/tiny/board.json", API + "/whoami", "/nosuch"):
        assert client.get(path, follow_redirects=False).headers.get("cache-control") == "no-store", path
    static = client.get("/static/refresh.js")
    assert static.status_code == 200 and "cache-control" not in static.headers
    refusals = [client.get(API + "/whoami", headers={"Authorization": "Bearer nsml_0000_not-a-token"}),  # slots'
                client.post(API + "/users", headers={"Content-Length": "abc"}),  # the body caps'
                client.post("/sessions/zed/tiny/1/stop", content=(b"x" * (1 << 20) for _ in range(3)),  # chunked,
                            headers={"Cookie": "nsml_token=t", "Content-Type": "application/x-www-form-urlencoded"})]
    assert [r.status_code for r in refusals] == [401, 400, 413]  # (answered outside the security middleware)
    assert all(r.headers.get("cache-control") == "no-store" and r.headers.get("x-frame-options") == "DENY"
               for r in refusals), [dict(r.headers) for r in refusals]


def test_every_answer_has_its_headers_once_an_unexpected_500_included(app):
    """The headers are set in one place (web.security.AnswerHeaders, outside every middleware) — once each — but
    for the 500 of an unhandled error, which Starlette answers outside every middleware: its handler sets them
    itself. No Server-Timing unless the operator asked for it (it timed the server's work for any caller)."""
    from fastapi.testclient import TestClient

    @app.get("/a-route-that-breaks")
    def breaks():
        raise RuntimeError("a bug of the harness's own")
    client = TestClient(app, raise_server_exceptions=False)
    answers = {path: client.get(path, follow_redirects=False)
               for path in ("/login", API + "/whoami", "/static/refresh.js", "/a-route-that-breaks")}
    assert answers["/a-route-that-breaks"].status_code == 500
    for path, r in answers.items():
        for name in ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"):
            assert len(r.headers.get_list(name)) == 1, (path, name, dict(r.headers))
        assert r.headers.get_list("cache-control") == ([] if path.startswith("/static/") else ["no-store"]), path
    assert not any(r.headers.get_list("server-timing") for r in answers.values())


def test_server_timing_only_where_the_operator_asks(tmp_path):
    """`serve --server-timing` (what bench/web.py reads): every answer the app makes says its time, once."""
    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from harness.cli import main
    from harness.core.settings import load_settings
    from harness.server.app import create_app
    app = create_app(load_settings(root=tmp_path), server_timing=True)
    client = TestClient(app)
    for path in ("/login", API + "/whoami", "/static/refresh.js", "/no-such-page"):
        timing = client.get(path, follow_redirects=False).headers.get_list("server-timing")
        assert len(timing) == 1 and timing[0].startswith("app;dur="), (path, timing)
    app.state.server.base.store.close()
    assert "--server-timing" in CliRunner().invoke(main, ["serve", "--help"]).output


def test_a_session_numbers_bound_is_its_names_on_every_route(app):
    """A session number of 19 digits passed the routes' bound (2^62) but not the session-name grammar: a 400 where
    every other out-of-bound integer is a 422 (review of stop 48). Every route's `number` takes exactly what a
    session's name can hold."""
    from harness.core.errors import UserError
    from harness.core.names import parse_session_name
    highs = set()
    for path, route in app_routes(app):
        if isinstance(route, APIRoute):
            for field in route.dependant.path_params:
                if field.name == "number":
                    highs |= {m.le for m in field.field_info.metadata if hasattr(m, "le")}
    assert len(highs) == 1, highs
    high = highs.pop()
    assert parse_session_name(f"alice/tiny/{high}")[2] == high
    with pytest.raises(UserError):
        parse_session_name(f"alice/tiny/{high + 1}")
