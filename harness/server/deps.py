"""What every route of the server shares: the caller's `LocalApi` (from the bearer token), the error statuses,
and receiving a tar upload under its cap."""
from __future__ import annotations

from pathlib import Path

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from harness.core import archives, finite_json
from harness.core.errors import NotFound, PermissionDenied, QuotaExceeded, Unauthorized, UserError
from harness.core.escape import one_line
from harness.service.local import LocalApi

API = "/api/v1"
MAX_JSON_BYTES = 1 << 20  # request bodies other than uploads


class FiniteJSONResponse(JSONResponse):
    """Every API answer: JSON with NaN and ±inf as null (core.finite_json), never a 500 for everyone because one
    number was not finite."""

    def render(self, content) -> bytes:
        return finite_json.dumps(content, ensure_ascii=False, indent=None, separators=(",", ":")).encode("utf-8")


class TooLarge(UserError):
    """A request body over its cap (HTTP 413)."""


def status_of(exc: UserError) -> int:
    for cls, code in ((Unauthorized, 401), (PermissionDenied, 403), (NotFound, 404), (TooLarge, 413),
                      (QuotaExceeded, 429)):
        if isinstance(exc, cls):
            return code
    return 400


def invalid(errors: list, prefix: str = "") -> str:
    """A validation's problems (pydantic's ERRORS) as one line, `where: what`: an undeclared key first (it explains
    a required one missing: `txt` for `text`), named by at most 80 escaped characters of its path after PREFIX
    (whatever a caller's key holds, the answer stays one short line)."""
    first = min(errors, key=lambda e: e.get("type") != "extra_forbidden") if errors else {}
    where = ".".join([*filter(None, [prefix]), *(str(p) for p in first.get("loc", ()) if p != "body")])
    return f"{one_line(where)[:80] or 'request'}: {first.get('msg', 'invalid')}"


def error(code: int, message: str, kind: str = "error", headers: dict[str, str] | None = None) -> JSONResponse:
    """A refusal as JSON (every answer's headers are web.security.AnswerHeaders')."""
    return JSONResponse({"error": message, "kind": kind}, status_code=code, headers=headers)


def bearer(headers) -> str | None:
    """The token of `Authorization: Bearer TOKEN` in HEADERS, or None."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def current_api(request: Request) -> LocalApi:
    """The dependency every route takes: the caller's LocalApi, from `Authorization: Bearer TOKEN`."""
    return request.app.state.server.api_for(bearer(request.headers), request.client.host if request.client else None)


Caller = Depends(current_api)


async def in_thread(fn, *args):
    from starlette.concurrency import run_in_threadpool
    return await run_in_threadpool(fn, *args)


async def receive_folder(request: Request, tmp: Path, cap: int, what: str) -> Path:
    """The request's tar stream, spooled under CAP bytes and unpacked by the upload gate (core.archives)."""
    if not request.headers.get("content-type", "").startswith("application/x-tar"):
        raise UserError(f"{what}: send the folder as application/x-tar")
    spooled = tmp / "upload.tar"
    total = 0
    with open(spooled, "wb") as fh:
        async for chunk in request.stream():
            total += len(chunk)
            if total > cap:
                raise TooLarge(f"{what}: the upload is over {cap} bytes")
            fh.write(chunk)
    folder = tmp / "folder"
    await in_thread(archives.unpack, spooled, folder, cap, what)
    return folder
