"""Organizer actions on the dashboard, each recorded (service.moderation.record) with who and when: hide and
unhide an entry, mark a baseline, rescore a task (a dry-run diff first, then a confirmation), close a round
(after a confirmation), and the audit record. Participants get the service's 403."""
from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from harness.core.errors import UserError
from harness.service.permissions import require_organizer

from .pages import page, web_api
from .views import FormId

router = APIRouter(include_in_schema=False)


@router.post("/tasks/{task}/hide")
def hide(request: Request, task: str, submission: FormId, hidden: str = Form("1")):
    web_api(request).hide_submission(submission, hidden == "1")
    return RedirectResponse(f"/tasks/{task}", status_code=303)


@router.post("/tasks/{task}/baseline")
def baseline(request: Request, task: str, name: str = Form(..., max_length=300), team: str = Form(""),
             on: str = Form("1")):
    web_api(request).mark_baseline(name, bool(team), on == "1")
    return RedirectResponse(f"/tasks/{task}", status_code=303)


@router.get("/tasks/{task}/rescore")
def rescore_preview(request: Request, task: str) -> HTMLResponse:
    """A dry run: what a rescore would change, nothing written; the page asks for the confirmation."""
    api = web_api(request)
    got = api.rescore(task, dry_run=True)
    return page(request, "rescore.html", api, task=task, got=got, done=False)


@router.post("/tasks/{task}/rescore")
def rescore(request: Request, task: str, confirm: str = Form("")) -> HTMLResponse:
    api = web_api(request)
    if confirm != task:
        return page(request, "rescore.html", api, task=task, got=api.rescore(task, dry_run=True), done=False,
                    error=f"type the task's name ({task}) to confirm")
    return page(request, "rescore.html", api, task=task, got=api.rescore(task, dry_run=False), done=True)


def _round_row(api, contest: str, round_name: str) -> dict:
    """The round as the contests page lists it (its status and end), or {} when there is none of that name."""
    return next((r for r in api.list_contests() if r["contest"] == contest and r["round"] == round_name), {})


@router.get("/rounds/{contest}/{round_name}/close")
def close_preview(request: Request, contest: str, round_name: str) -> HTMLResponse:
    api = web_api(request)
    require_organizer(api.h.settings, "contest close")
    return page(request, "close.html", api, round=f"{contest}/{round_name}", info=_round_row(api, contest, round_name),
                result=None)


@router.post("/rounds/{contest}/{round_name}/close")
def close(request: Request, contest: str, round_name: str, force: str = Form("")) -> HTMLResponse:
    """Close the round; one not yet over only when the form's "close it now" box is ticked (the service's
    --force), else the page again with the service's reason."""
    api = web_api(request)
    require_organizer(api.h.settings, "contest close")  # a participant's POST is refused (403), not shown the form
    try:
        result = api.close_round(f"{contest}/{round_name}", force == "1")
    except UserError as exc:
        return page(request, "close.html", api, status_code=400, round=f"{contest}/{round_name}",
                    info=_round_row(api, contest, round_name), result=None, error=str(exc))
    return page(request, "close.html", api, round=result["round"], result=result)


@router.get("/audit")
def audit(request: Request) -> HTMLResponse:
    api = web_api(request)
    return page(request, "audit.html", api, events=api.audit(500))
