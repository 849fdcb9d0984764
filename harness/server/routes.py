"""The routes of /api/v1: one per CLI command, each a thin call of the caller's `LocalApi` (harness.service.local).

Sessions are addressed as /sessions/USER/TASK/N; wildcard commands (stop, rm) take a pattern in the body.
Listings are paginated (`limit`, `offset`); uploads are tar streams (`application/x-tar`), downloads too.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from harness.core import archives
from harness.core.errors import UserError
from harness.service.local import LocalApi

from .app import Caller

router = APIRouter()
Name = Annotated[str, Field(min_length=1, max_length=200)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


def page(rows: list, limit: int, offset: int) -> list:
    return rows[offset:offset + limit]


def session_name(user: str, task: str, number: int) -> str:
    return f"{user}/{task}/{number}"


# -- identity and accounts ------------------------------------------------------------------------------------
class NewUser(BaseModel):
    name: Name
    organizer: bool = False
    team: Optional[Name] = None


@router.get("/whoami")
def whoami(api: LocalApi = Caller) -> dict:
    return api.whoami()


@router.post("/users")
def add_user(body: NewUser, api: LocalApi = Caller) -> dict:
    return {"user": body.name, "token": api.add_user(body.name, body.organizer, body.team)}


@router.get("/users")
def list_users(api: LocalApi = Caller, limit: Limit = 100, offset: Offset = 0) -> list:
    return page(api.list_users(), limit, offset)


@router.post("/users/{name}/disable")
def disable_user(name: str, api: LocalApi = Caller) -> dict:
    api.disable_user(name)
    return {"user": name, "disabled": True}


@router.post("/users/{name}/token")
def reset_token(name: str, api: LocalApi = Caller) -> dict:
    return {"user": name, "token": api.reset_token(name)}


# -- sessions -------------------------------------------------------------------------------------------------
class RunOpts(BaseModel):
    gpus: int = Field(0, ge=0, le=1024)
    cpus: Optional[float] = Field(None, gt=0, le=4096)
    memory: Optional[Annotated[str, Field(max_length=32)]] = None
    shm_size: Optional[Annotated[str, Field(max_length=32)]] = None
    time_limit: Optional[float] = Field(None, gt=0, le=10 ** 8)
    runtime: Optional[Annotated[str, Field(max_length=64)]] = None
    gpu_model: Optional[Annotated[str, Field(max_length=64)]] = None
    esm: Optional[Annotated[str, Field(max_length=64)]] = None


@router.post("/sessions", operation_id="upload_session", openapi_extra={"requestBody": {"content": {"application/x-tar": {"schema": {
    "type": "string", "format": "binary"}}}, "required": True}})
async def start_session(request: Request, task: Annotated[str, Query(max_length=200)],
                        entry: Annotated[str, Query(max_length=255)] = "main.py",
                        args: Annotated[Optional[str], Query(max_length=10_000)] = None,
                        memo: Annotated[str, Query(max_length=1000)] = "",
                        options: Annotated[str, Query(max_length=2000)] = "{}", api: LocalApi = Caller) -> dict:
    """`nsml run`: the folder arrives as a tar stream, is unpacked under the upload rules, then snapshotted."""
    try:
        opts = RunOpts.model_validate_json(options).model_dump()
    except ValueError as exc:
        raise UserError(f"options: {str(exc).splitlines()[0]}") from None
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        folder = await receive_folder(request, Path(tmp), api.h.settings.code_bytes, "FOLDER")
        name = await _in_thread(api.start_session, task, str(folder), entry, args, memo, opts, notes.append)
    return {"session": name, "notes": notes}


async def receive_folder(request: Request, tmp: Path, cap: int, what: str) -> Path:
    if not request.headers.get("content-type", "").startswith("application/x-tar"):
        raise UserError(f"{what}: send the folder as application/x-tar")
    spooled = tmp / "upload.tar"
    total = 0
    with open(spooled, "wb") as fh:
        async for chunk in request.stream():
            total += len(chunk)
            if total > cap:
                from .app import TooLarge
                raise TooLarge(f"{what}: the upload is over {cap} bytes")
            fh.write(chunk)
    folder = tmp / "folder"
    await _in_thread(archives.unpack, spooled, folder, cap, what)
    return folder


async def _in_thread(fn, *args):
    from starlette.concurrency import run_in_threadpool
    return await run_in_threadpool(fn, *args)


class Fork(BaseModel):
    checkpoint: Name
    args: Optional[Annotated[str, Field(max_length=10_000)]] = None
    memo: Annotated[str, Field(max_length=1000)] = ""
    options: RunOpts = RunOpts()


@router.post("/sessions/{user}/{task}/{number}/fork")
def fork_session(user: str, task: str, number: int, body: Fork, api: LocalApi = Caller) -> dict:
    notes: list[str] = []
    name = api.fork_session(session_name(user, task, number), body.checkpoint, body.args, body.memo,
                            body.options.model_dump(), notes.append)
    return {"session": name, "notes": notes}


@router.get("/sessions")
def list_sessions(api: LocalApi = Caller, all: bool = False, last: Annotated[Optional[int], Query(ge=1)] = None,
                  task: Optional[str] = None, limit: Limit = 1000, offset: Offset = 0) -> list:
    return page(api.list_sessions(all, last, task), limit, offset)


@router.get("/inventory")
def inventory(api: LocalApi = Caller) -> dict:
    """The GPUs runs may get (a cluster's node by node) and how many are in use: counts only."""
    return api.inventory()


@router.get("/sessions/{user}/{task}/{number}")
def session_info(user: str, task: str, number: int, api: LocalApi = Caller) -> dict:
    return api.session_info(session_name(user, task, number))


@router.get("/sessions/{user}/{task}/{number}/log")
def session_log(user: str, task: str, number: int, follow: bool = False, api: LocalApi = Caller):
    """The session's log; with follow, streamed (chunked) as it grows until the session ends."""
    chunks = api.session_log(session_name(user, task, number), follow)
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")


@router.get("/sessions/{user}/{task}/{number}/metrics")
def session_metrics(user: str, task: str, number: int, x: Annotated[str, Query(pattern="^(step|time)$")] = "step",
                    keys: Annotated[list[str], Query(max_length=100)] = [], api: LocalApi = Caller) -> dict:
    """What nsml.report recorded, one series per metric, downsampled to at most 1,000 points each."""
    return api.session_metrics(session_name(user, task, number), x, keys or None)


class Pattern(BaseModel):
    pattern: Annotated[str, Field(min_length=1, max_length=300)]


@router.post("/sessions/stop")
def stop_sessions(body: Pattern, api: LocalApi = Caller) -> list:
    return api.stop_sessions(body.pattern)


@router.post("/sessions/remove")
def remove_sessions(body: Pattern, api: LocalApi = Caller) -> list:
    return api.remove_sessions(body.pattern)


class Memo(BaseModel):
    text: Annotated[str, Field(max_length=1000)]


@router.put("/sessions/{user}/{task}/{number}/memo")
def set_memo(user: str, task: str, number: int, body: Memo, api: LocalApi = Caller) -> dict:
    api.set_memo(session_name(user, task, number), body.text)
    return {"session": session_name(user, task, number), "memo": body.text}


# -- checkpoints ----------------------------------------------------------------------------------------------
@router.get("/sessions/{user}/{task}/{number}/checkpoints")
def list_checkpoints(user: str, task: str, number: int, api: LocalApi = Caller) -> list:
    return api.list_checkpoints(session_name(user, task, number))


@router.delete("/sessions/{user}/{task}/{number}/checkpoints/{pattern}")
def remove_checkpoints(user: str, task: str, number: int, pattern: str, api: LocalApi = Caller) -> list:
    return api.remove_checkpoints(session_name(user, task, number), pattern)


@router.get("/sessions/{user}/{task}/{number}/checkpoints/{checkpoint}/archive")
def pull_checkpoint(user: str, task: str, number: int, checkpoint: str, api: LocalApi = Caller):
    """The checkpoint folder as a tar stream (regular files and folders; links are never followed)."""
    tmp = Path(tempfile.mkdtemp(prefix="pull-"))
    try:
        _target, skipped = api.pull_checkpoint(session_name(user, task, number), checkpoint, str(tmp / "c"))
        with open(tmp / "c.tar", "wb") as fh:
            archives.pack(tmp / "c", fh)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(tmp / "c.tar", media_type="application/x-tar",
                        headers={"X-Skipped": quote("\n".join(skipped)[:4000])},
                        background=BackgroundTask(shutil.rmtree, tmp, True))
