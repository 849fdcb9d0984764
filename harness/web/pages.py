"""Dashboard pages: log in/out, tasks, a task's board (CSV too), submissions, contests. Each page calls the same
`LocalApi` the HTTP API does, made for the cookie's account, so every permission rule is the service's."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup

from harness.core.errors import PermissionDenied, UserError
from harness.core.escape import csv_cell
from harness.service.local import LocalApi

from .fragments import board_tree
from .nodes import Node, rules_json, to_html
from .security import COOKIE, LOGIN_COOKIE, csrf_field, start_login
from .views import PageNo, RowId, chart_names, fmt, round_tab, tab_of, utc

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)


@pass_context
def tree(context, node: Node) -> Markup:
    """`{{ tree(node) }}`: a part that refreshes in place (web/fragments.py), its forms given the viewer's CSRF."""
    return to_html(node, csrf_field(context))


templates.env.globals.update(fmt=fmt, utc=utc, csrf_field=csrf_field, tree=tree, node_rules=rules_json())


class LoginNeeded(Exception):
    """No cookie, or one the server no longer accepts: the page sends the browser to /login."""


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def web_api(request: Request) -> LocalApi:
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginNeeded()
    try:
        return request.app.state.server.api_for(token, client_address(request))
    except UserError:
        raise LoginNeeded() from None


def page(request: Request, name: str, api: LocalApi | None, status_code: int = 200, **context) -> HTMLResponse:
    who = api.whoami() if api is not None else None
    return templates.TemplateResponse(request, name, {"who": who, **context}, status_code=status_code)


def render_error(request: Request, api: LocalApi | None, exc: UserError, code: int) -> HTMLResponse:
    return page(request, "message.html", api, status_code=code, error=str(exc))


def refused(request: Request, message: str) -> HTMLResponse:
    """The 403 page of a form that failed the CSRF check (security.install calls it)."""
    return page(request, "message.html", None, status_code=403, error=message)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/tasks", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str = "/tasks") -> HTMLResponse:
    nonce = start_login(request)  # the pre-login cookie the form's CSRF token is tied to
    response = page(request, "login.html", None, next=_safe_next(next))
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/login",
                        secure=request.url.scheme == "https")
    return response


def _safe_next(target: str) -> str:
    """Only a path of this site (no scheme, no //host): an open redirect is refused."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/tasks"


@router.post("/login")
def login(request: Request, token: str = Form(..., max_length=300), next: str = Form("/tasks")) -> Response:
    try:
        request.app.state.server.api_for(token.strip(), client_address(request))
    except UserError as exc:
        return page(request, "login.html", None, status_code=401, error=str(exc), next=_safe_next(next))
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https", max_age=30 * 24 * 3600)
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/tasks")
def tasks_page(request: Request) -> HTMLResponse:
    api = web_api(request)
    return page(request, "tasks.html", api, tasks=api.list_tasks())


def _board(api: LocalApi, task: str, tab: str) -> dict:
    """The board TAB shows: a round's Public tab ranked by public scores, its Private tab (after close, or for
    organizers) by private ones; before close a participant's Private tab says why it is hidden."""
    board = api.board(task)
    if board["kind"] != "round":
        return board
    if tab == "private" and not board.get("private_shown"):
        try:
            board = {"kind": "round", **api.round_board(task, None, True)}
        except UserError as exc:
            board["hidden_reason"] = str(exc)
    return round_tab(board, tab)


@router.get("/tasks/{task}")
def task_page(request: Request, task: str, tab: Optional[str] = None) -> HTMLResponse:
    api = web_api(request)
    tab = tab_of(tab)
    board = _board(api, task, tab)  # (a task not prepared: NotFound here, a 404 page, before its README is read)
    readme = _readme(api.task_readme(task))
    title = board.get("title") or f"{task} — {board.get('metric')} ({board.get('direction')} is better)"
    who = api.whoami()
    hidden = api.hidden_entries(task) if who["organizer"] else []
    return page(request, "task.html", api, task=task, board=board, title=title, readme=readme, hidden=hidden,
                board_tree=board_tree(task, tab, board, who))


@router.get("/tasks/{task}/score-history.json")
def score_history(request: Request, task: str) -> JSONResponse:
    """The chart beside the board: the best score over time of the entries the board ranks (its top ten, in
    board order), so the chart never draws another board's entries nor misses one the board shows."""
    api = web_api(request)
    got = api.score_history(task, 50)
    series = got["series"]
    got["series"] = {n: series[n] for n in chart_names(api.board(task)) if n in series}
    return JSONResponse(got)


@router.get("/tasks/{task}/board.json")
def board_json(request: Request, task: str, tab: Optional[str] = None) -> JSONResponse:
    """The board as the page shows it, as a node tree: static/refresh.js rebuilds the page's board from it."""
    api = web_api(request)
    tab = tab_of(tab)
    return JSONResponse(board_tree(task, tab, _board(api, task, tab), api.whoami()))


def flat_row(row: dict) -> dict:
    """A board row for a spreadsheet: an interval [low, high] as two columns, KEY_low and KEY_high."""
    out = {}
    for key, value in row.items():
        if key.endswith("interval"):
            low, high = value if isinstance(value, list) and len(value) == 2 else (None, None)
            out[f"{key}_low"], out[f"{key}_high"] = low, high
        else:
            out[key] = value
    return out


@router.get("/tasks/{task}/board.csv")
def board_csv(request: Request, task: str) -> Response:
    """The board as CSV: the columns and values of `board -j`, each text cell that a spreadsheet would read as a
    formula (=, +, -, @ ... and not a number) prefixed with ' (core.escape.csv_cell)."""
    api = web_api(request)
    board = api.board(task)
    rows = [{k: csv_cell(v) for k, v in flat_row(r).items()} for r in board["rows"]]
    out = io.StringIO()
    if rows:  # every row's columns (an unscored entry's row may carry one the first lacks)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{task}-board.csv"'})


def _readme(text: str) -> str:
    from markdown_it import MarkdownIt
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)  # raw HTML stays text


@router.get("/submissions")
def submissions_page(request: Request, task: Optional[str] = None, page_: PageNo = 1) -> HTMLResponse:
    api = web_api(request)
    tasks = [t["name"] for t in api.list_tasks() if t["prepared"]]
    chosen = task or (tasks[0] if tasks else None)
    rows, total = api.history(chosen, max(page_, 1), 50) if chosen else ([], 0)
    return page(request, "submissions.html", api, tasks=tasks, task=chosen, rows=rows, total=total)


SHOWN_LOG_BYTES = 200_000  # the end of an infer log that a submission page shows


@router.get("/submissions/{sub_id}")
def submission_page(request: Request, sub_id: RowId) -> HTMLResponse:
    api = web_api(request)
    info = api.submission_info(sub_id)
    try:
        tail = b""
        for chunk in api.infer_log(sub_id):  # chunk by chunk: the page shows the end, memory holds about that
            tail = (tail + chunk)[-SHOWN_LOG_BYTES:]
        log = tail.decode("utf-8", errors="replace")
    except PermissionDenied:
        log = None  # a real submit's log: organizers only
    return page(request, "submission.html", api, sub=info, log=log)


@router.get("/contests")
def contests_page(request: Request) -> HTMLResponse:
    api = web_api(request)
    contests = api.list_contests()
    teams = {c: api.show_teams(c) for c in dict.fromkeys(r["contest"] for r in contests)}
    return page(request, "contests.html", api, rounds=contests, teams=teams)
