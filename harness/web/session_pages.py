"""Dashboard pages of sessions: the list, a session (facts refreshed in place from a node tree, the live log over
SSE, the graphs of `nsml.report` as JSON for uPlot, checkpoints), actions (stop, memo, submit -t, submit), and
several sessions' graphs overlaid. Sessions are USER/TASK/N in the path."""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from harness.core.enums import RunStatus
from harness.core.errors import UserError

from .fragments import facts_tree
from .pages import page, templates, web_api
from .streaming import ClosingStreamingResponse
from .views import SessionNo

router = APIRouter(include_in_schema=False)
MAX_COMPARED = 12
RECENT_CHECKPOINTS = 20  # a session page lists its newest checkpoints; older ones are folded away


def human_size(n) -> str:
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


templates.env.globals.update(size=human_size)


def _name(user: str, task: str, number: int) -> str:
    return f"{user}/{task}/{number}"


@router.get("/sessions")
def sessions_page(request: Request) -> HTMLResponse:
    api = web_api(request)
    return page(request, "sessions.html", api, sessions=api.list_sessions(True, None, None),
                inventory=api.inventory())


@router.get("/sessions/{user}/{task}/{number}")
def session_page(request: Request, user: str, task: str, number: SessionNo) -> HTMLResponse:
    api = web_api(request)
    info = api.session_info(_name(user, task, number))
    return page(request, "session.html", api, s=info, facts=facts_tree(info),
                terminal=RunStatus(info["status"]).terminal,
                checkpoints=api.list_checkpoints(info["name"]), recent=RECENT_CHECKPOINTS)


@router.get("/sessions/{user}/{task}/{number}/facts.json")
def session_facts(request: Request, user: str, task: str, number: SessionNo) -> JSONResponse:
    """A session's facts as a node tree: static/refresh.js rebuilds the page's facts from it."""
    api = web_api(request)
    return JSONResponse(facts_tree(api.session_info(_name(user, task, number))))


@router.get("/sessions/{user}/{task}/{number}/log/stream")
def log_stream(request: Request, user: str, task: str, number: SessionNo) -> ClosingStreamingResponse:
    """Server-sent events: the log as it is written, one `data:` event per chunk of lines, then `event: end`."""
    api = web_api(request)
    chunks = api.session_log(_name(user, task, number), follow=True)

    def events():
        try:
            for chunk in chunks:  # an empty chunk: the follow lives, nothing new (an SSE comment keeps it open)
                text = chunk.decode("utf-8", errors="replace")
                yield f"data: {json.dumps(text)}\n\n" if chunk else ": alive\n\n"
            yield "event: end\ndata: {}\n\n"
        finally:
            chunks.close()
    return ClosingStreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/sessions/{user}/{task}/{number}/metrics.json")
def metrics_json(request: Request, user: str, task: str, number: SessionNo,
                 x: Annotated[str, Query(pattern="^(step|time)$")] = "step") -> JSONResponse:
    api = web_api(request)
    return JSONResponse(api.session_metrics(_name(user, task, number), x))


@router.post("/sessions/{user}/{task}/{number}/stop")
def stop(request: Request, user: str, task: str, number: SessionNo):
    api = web_api(request)
    api.stop_sessions(_name(user, task, number))
    return RedirectResponse(f"/sessions/{_name(user, task, number)}", status_code=303)


@router.post("/sessions/{user}/{task}/{number}/memo")
def memo(request: Request, user: str, task: str, number: SessionNo, text: str = Form("", max_length=1000)):
    api = web_api(request)
    api.set_memo(_name(user, task, number), text)
    return RedirectResponse(f"/sessions/{_name(user, task, number)}", status_code=303)


@router.post("/sessions/{user}/{task}/{number}/submit")
def submit(request: Request, user: str, task: str, number: SessionNo, checkpoint: str = Form(..., max_length=200),
           dry_run: str = Form("")):
    """Queue a submit (or a dry run) of a checkpoint; its page shows it through its phases."""
    api = web_api(request)
    sub_id = api.start_submit(_name(user, task, number), checkpoint.strip(), bool(dry_run), None, None, None, None,
                              False, lambda _line: None)
    return RedirectResponse(f"/submissions/{sub_id}", status_code=303)


@router.get("/compare")
def compare(request: Request, s: Annotated[list[str], Query()] = []) -> HTMLResponse:
    """Several of my sessions' graphs overlaid, sorted by their -a arguments."""
    api = web_api(request)
    if not 1 <= len(s) <= MAX_COMPARED:
        raise UserError(f"s: choose 1 to {MAX_COMPARED} sessions to compare, got {len(s)}")
    infos = [api.session_info(name) for name in dict.fromkeys(s)]  # each must be the viewer's (or organizer)
    infos.sort(key=lambda i: " ".join(i["args"] or []))
    return page(request, "compare.html", api, names=[i["name"] for i in infos])
