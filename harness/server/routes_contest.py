"""The routes of /api/v1 for submissions, boards, tasks and contests (organizer commands are checked by the
service: a participant gets 403)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from harness.core.errors import PermissionDenied, UserError
from harness.service.local import LocalApi
from harness.service.permissions import require_organizer

from .app import Caller
from .routes import Limit, Name, Offset, _in_thread, page, receive_folder

router = APIRouter()
WAIT_MAX = 30.0


class Submit(BaseModel):
    session: Name
    checkpoint: Name
    dry_run: bool = False
    time_limit: Optional[float] = Field(None, gt=0, le=10 ** 8)
    runtime: Optional[Annotated[str, Field(max_length=64)]] = None
    entry: Optional[Annotated[str, Field(max_length=255)]] = None
    esm: Optional[Annotated[str, Field(max_length=64)]] = None
    verbose: bool = False


@router.post("/submissions")
def start_submit(body: Submit, api: LocalApi = Caller) -> dict:
    notes: list[str] = []
    sub_id = api.start_submit(body.session, body.checkpoint, body.dry_run, body.time_limit, body.runtime, body.entry,
                              body.esm, body.verbose, notes.append)
    return {"id": sub_id, "notes": notes}


@router.get("/submissions/{sub_id}")
def submission(sub_id: int, wait: Annotated[float, Query(ge=0, le=WAIT_MAX)] = 0, api: LocalApi = Caller) -> dict:
    """A submission; with WAIT, held up to that many seconds until it has ended (the client asks again)."""
    if wait > 0:
        return api.wait_submission(sub_id, timeout=wait)
    return api.infer_log(sub_id, follow=False)[0]


@router.get("/submissions/{sub_id}/log")
def infer_log(sub_id: int, follow: bool = False, api: LocalApi = Caller):
    """The infer log (your dry runs; organizers: every submit); with follow, streamed until the run ends."""
    _info, chunks = api.infer_log(sub_id, follow)
    if chunks is None:
        raise PermissionDenied(f"submission {sub_id}: infer logs of real submits are shown to organizers only")
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")


class Hide(BaseModel):
    hidden: bool = True


@router.post("/submissions/{sub_id}/hide")
def hide_submission(sub_id: int, body: Hide, api: LocalApi = Caller) -> dict:
    """[organizer] Hide (or show again) a submission: it keeps its row and history, and never ranks while hidden."""
    return api.hide_submission(sub_id, body.hidden)


class Baseline(BaseModel):
    name: Name
    team: bool = False
    baseline: bool = True


@router.post("/baselines")
def mark_baseline(body: Baseline, api: LocalApi = Caller) -> dict:
    return api.mark_baseline(body.name, body.team, body.baseline)


@router.get("/tasks/{task}/hidden")
def hidden_entries(task: str, api: LocalApi = Caller) -> list:
    return api.hidden_entries(task)


@router.get("/audit")
def audit(api: LocalApi = Caller, limit: Limit = 200) -> list:
    return api.audit(limit)


class Select(BaseModel):
    ids: Annotated[list[int], Field(min_length=1, max_length=100)]


@router.post("/submissions/select")
def select(body: Select, api: LocalApi = Caller) -> dict:
    return api.select_submissions(body.ids)


@router.get("/tasks/{task}/history")
def history(task: str, page_: Annotated[int, Query(alias="page", ge=1, le=10 ** 6)] = 1,
            per_page: Annotated[int, Query(ge=1, le=1000)] = 50, api: LocalApi = Caller) -> dict:
    rows, total = api.history(task, page_, per_page)
    return {"rows": rows, "total": total}


@router.get("/tasks/{task}/board")
def board(task: str, api: LocalApi = Caller, limit: Limit = 1000, offset: Offset = 0) -> dict:
    result = api.board(task)
    return {**result, "rows": page(result["rows"], limit, offset), "total": len(result["rows"])}


@router.get("/tasks/{task}/round-board")
def round_board(task: str, round: Optional[Annotated[str, Query(max_length=200)]] = None, private: bool = False,
                api: LocalApi = Caller) -> dict:
    return api.round_board(task, round, private)


@router.get("/tasks/{task}/score-history")
def score_history(task: str, top: Annotated[int, Query(ge=1, le=50)] = 10, api: LocalApi = Caller) -> dict:
    """The board's current top TOP: best score so far over time (Unix seconds), at most 1,000 points each."""
    return api.score_history(task, top)


@router.get("/tasks")
def list_tasks(api: LocalApi = Caller, limit: Limit = 1000, offset: Offset = 0) -> list:
    return page(api.list_tasks(), limit, offset)


class Prepare(BaseModel):
    scale: float = Field(1.0, gt=0, le=100)
    seed: int = Field(0, ge=0, le=2 ** 31)
    replace: bool = False


@router.post("/tasks/{task}/prepare")
def prepare(task: str, body: Prepare, api: LocalApi = Caller) -> dict:
    return api.prepare_task(task, body.scale, body.seed, [], body.replace)


@router.post("/tasks", operation_id="upload_task", openapi_extra={"requestBody": {"content": {"application/x-tar": {"schema": {
    "type": "string", "format": "binary"}}}, "required": True}})
async def add_task(request: Request, replace: bool = False, name: Optional[Annotated[str, Query(max_length=64)]] = None,
                   metric: Optional[Annotated[str, Query(max_length=64)]] = None,
                   direction: Optional[Annotated[str, Query(pattern="^(higher|lower)$")]] = None,
                   api: LocalApi = Caller) -> dict:
    """`dataset add`: the pack arrives as a tar; it is kept under the state root (uploads/), then registered."""
    require_organizer(api.h.settings, "dataset add")  # before the upload is read
    keep = api.h.settings.state_dir / "uploads"
    keep.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pack-", dir=keep))
    try:
        folder = await receive_folder(request, tmp, api.h.settings.code_bytes * 8, "FOLDER")
        return {"task": await _in_thread(api.add_task, str(folder), replace, name, metric, direction)}
    except BaseException:  # a refused pack leaves nothing behind (a registered one stays: it is the task)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@router.get("/tasks/{task}/check")
def check_task(task: str, api: LocalApi = Caller) -> list:
    return api.check_task(task)


@router.delete("/tasks/{task}")
def remove_task(task: str, api: LocalApi = Caller) -> dict:
    api.remove_task(task)
    return {"task": task, "removed": True}


@router.get("/tasks/{task}/changes")
def task_changes(task: str, api: LocalApi = Caller) -> list:
    return api.task_changes(task)


class Rescore(BaseModel):
    dry_run: bool = False


@router.post("/tasks/{task}/rescore")
def rescore(task: str, body: Rescore, api: LocalApi = Caller) -> dict:
    return api.rescore(task, body.dry_run)


class NewContest(BaseModel):
    toml: Annotated[str, Field(min_length=1, max_length=200_000)]
    filename: Annotated[str, Field(max_length=1000)] = "contest.toml"  # as the caller named it, for errors
    prepare: bool = False
    scale: float = Field(1.0, gt=0, le=100)


@router.post("/contests")
def create_contest(body: NewContest, api: LocalApi = Caller) -> dict:
    """`contest create`: contest.toml's text; kept under the state root (contests/) as its source."""
    require_organizer(api.h.settings, "contest create")
    folder = api.h.settings.state_dir / "contests"
    folder.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="contest-", suffix=".toml", dir=folder)
    with open(fd, "w") as fh:
        fh.write(body.toml)
    notes: list[str] = []
    try:
        return {**api.create_contest(path, body.prepare, body.scale, notes.append), "notes": notes}
    except UserError as exc:  # errors name the caller's file, not the server's copy
        Path(path).unlink(missing_ok=True)
        exc.args = (str(exc).replace(path, body.filename),)
        raise


@router.get("/contests")
def list_contests(api: LocalApi = Caller) -> list:
    return api.list_contests()


@router.get("/contests/{contest}/teams")
def show_teams(contest: str, api: LocalApi = Caller) -> list:
    return api.show_teams(contest)


class Team(BaseModel):
    team: Name
    users: Annotated[list[Name], Field(min_length=1, max_length=100)]


@router.post("/contests/{contest}/teams")
def add_team(contest: str, body: Team, api: LocalApi = Caller) -> dict:
    api.add_team(contest, body.team, body.users)
    return {"contest": contest, "team": body.team, "users": body.users}


class Close(BaseModel):
    round: Name


@router.post("/rounds/close")
def close_round(body: Close, api: LocalApi = Caller) -> dict:
    return api.close_round(body.round)


class Clock(BaseModel):
    when: Optional[Annotated[str, Field(max_length=40)]] = None
    real: bool = False


@router.get("/clock")
def clock(api: LocalApi = Caller) -> dict:
    return api.clock()


@router.put("/clock")
def set_clock(body: Clock, api: LocalApi = Caller) -> dict:
    if not body.when and not body.real:
        raise UserError("when: give a time (ISO, UTC) or real = true")
    return api.clock(body.when, body.real)
