"""The routes of the CUSTOM operations (harness.api.operations): what travels is a folder or a file, not one JSON
request. A session's code and a task pack come up as tar streams (application/x-tar) and are unpacked by the
upload gate; a checkpoint goes down as one; a contest's TOML comes as text. Paths and operation ids are the
declarations'."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError

from harness.api import OPERATIONS
from harness.core import archives
from harness.core.errors import UserError
from harness.core.names import session_name
from harness.service.local import LocalApi
from harness.service.log_streams import FollowSlots
from harness.service.permissions import require_organizer

from .deps import API, Caller, in_thread, invalid, receive_folder
from .derived import RunOpts, SessionNumber, SessionTask, SessionUser, route_path

router = APIRouter()
PULLS = FollowSlots(1, 10**6, "checkpoint pulls", "", "wait for the one being sent")  # (each holds a tar on the
#   disk: one per account; no cap across accounts, where a few stalled ones would hold everyone's)
SEND_SECONDS = 60.0  # a pull whose client takes no part of it for this long is cut (its tar and slot go)
UPLOADS = frozenset((OPERATIONS[name].verb, API + route_path(OPERATIONS[name]))
                    for name in ("start_session", "add_task"))  # the routes that take a tar body (server.app.CapBodies
#                                                                 gives them the upload cap; others a JSON body's)
TAR_BODY = {"requestBody": {"content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
                            "required": True}}


def _route(name: str, **kw):
    op = OPERATIONS[name]
    return router.api_route(route_path(op), methods=[op.verb], operation_id=op.name, summary=op.name,
                            description=op.doc, **kw)


@_route("start_session", openapi_extra=TAR_BODY)
async def start_session(request: Request, task: Annotated[str, Query(max_length=200)],
                        entry: Annotated[str, Query(max_length=255)] = "main.py",
                        args: Annotated[Optional[str], Query(max_length=10_000)] = None,
                        memo: Annotated[str, Query(max_length=1000)] = "",
                        options: Annotated[str, Query(max_length=2000)] = "{}", api: LocalApi = Caller) -> dict:
    """`nsml run`: the folder arrives as a tar stream, is unpacked under the upload rules, then snapshotted."""
    try:
        opts = RunOpts.model_validate_json(options).model_dump()
    except ValidationError as exc:  # (invalid JSON too) the first problem, named by its field: options.datasets.0
        raise UserError(invalid(exc.errors(), "options")) from None
    notes: list[str] = []
    await in_thread(api._admit_session, task, memo, opts)  # refused before the upload is read (it is at most
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:  # limits.code_bytes, spooled then unpacked)
        folder = await receive_folder(request, Path(tmp), api.h.settings.code_bytes, "FOLDER")
        name = await in_thread(api.start_session, task, str(folder), entry, args, memo, opts, notes.append)
    return {"result": name, "notes": notes}


@_route("pull_checkpoint")
def pull_checkpoint(user: SessionUser, task: SessionTask, number: SessionNumber,
                    checkpoint: Annotated[str, PathParam(min_length=1, max_length=200)], api: LocalApi = Caller):
    """The checkpoint folder as a tar stream (regular files and folders; links are never followed). Its copy is
    packed and removed before the tar is sent; one pull per account at a time (a client that stops reading holds
    one tar of its own, never the server's disk)."""
    release = PULLS.take(api.h.settings.user)
    tmp = Path(tempfile.mkdtemp(prefix="pull-"))
    try:
        _target, skipped = api.pull_checkpoint(session_name(user, task, number), checkpoint, str(tmp / "c"))
        with open(tmp / "c.tar", "wb") as fh:
            archives.pack(tmp / "c", fh)
        shutil.rmtree(tmp / "c", ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        release()
        raise
    return _Sent(tmp, release, tmp / "c.tar", media_type="application/x-tar",
                 headers={"X-Skipped": quote("\n".join(skipped)[:4000])})


class _Sent(FileResponse):
    """A file response whose folder goes, and whose slot is released, once it is sent or its client went away
    (a background task would run only after a whole send)."""

    def __init__(self, tmp: Path, release, *args, **kw):
        super().__init__(*args, **kw)
        self.tmp, self.release = tmp, release

    async def __call__(self, scope, receive, send) -> None:
        async def in_time(message) -> None:
            with anyio.fail_after(SEND_SECONDS):
                await send(message)
        try:
            await super().__call__(scope, receive, in_time)
        except TimeoutError:
            pass  # (the connection is cut: the client stopped reading)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.release()


@_route("add_task", openapi_extra=TAR_BODY)
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
        notes: list[str] = []
        added = await in_thread(api.add_task, str(folder), replace, name, metric, direction, notes.append)
        return {"result": added, "notes": notes}
    except BaseException:  # a refused pack leaves nothing behind (a registered one stays: it is the task)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class NewContest(BaseModel):
    toml: Annotated[str, Field(min_length=1, max_length=200_000)]
    filename: Annotated[str, Field(max_length=1000)] = "contest.toml"  # as the caller named it, for errors
    prepare: bool = False
    scale: float = Field(1.0, gt=0, le=100)


@_route("create_contest")
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
        return {"result": api.create_contest(path, body.prepare, body.scale, notes.append), "notes": notes}
    except UserError as exc:  # errors name the caller's file, not the server's copy
        Path(path).unlink(missing_ok=True)
        exc.args = (str(exc).replace(path, body.filename),)
        raise
