"""The ASGI app of `harness serve`: it owns one state root, authenticates every request by its bearer token, and
hands the request to a `LocalApi` acting as the token's account (so the service layer's permission checks are
the only ones). Errors are one-line JSON, with the CLI's wording: 400 bad input, 401 no valid token, 403 not
yours / organizers only, 404 unknown, 413 too large, 429 over a quota, 422 malformed request.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from contextlib import asynccontextmanager
from typing import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from harness.core.errors import UserError
from harness.core.settings import SETTINGS_FILE, Settings, load_settings
from harness.scheduler.lease import ensure_running
from harness.service import accounts
from harness.service.local import LocalApi
from harness.service.log_streams import WORKER_THREADS
from harness.state import Harness
from harness.web.security import headers_of

from .caller_slots import CallerSlots
from .deps import API, MAX_JSON_BYTES, FiniteJSONResponse, error, invalid, status_of

log = logging.getLogger("harness.server")


class Server:
    """The state the routes share: the settings, one store, and the organizer's Harness that opens it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.base = Harness(settings)
        self.base.store  # opened, migrated and recovered once, before the first request
        self._lock = threading.Lock()
        self._stamp = self._settings_stamp()

    def _settings_stamp(self):
        try:
            st = (self.settings.root / SETTINGS_FILE).stat()
            return st.st_mtime_ns, st.st_size
        except FileNotFoundError:
            return None

    def current(self) -> Harness:
        """The organizer's Harness, with harness.toml read again when it changed (organizers, limits)."""
        stamp = self._settings_stamp()
        if stamp != self._stamp:
            with self._lock:
                fresh = load_settings(root=self.settings.root, db=self.settings.db_url, user=self.settings.user)
                self.base, self._stamp = Harness(fresh, store=self.base.store), stamp
        return self.base

    def api_for(self, token: str | None, address: str | None = None) -> LocalApi:
        """The caller's LocalApi; failed token checks are counted per token id and per ADDRESS (accounts)."""
        base = self.current()
        who = accounts.authenticate(base, token, address)
        return LocalApi(accounts.for_identity(base, who))


class CapBodies:
    """Every request body under its cap (CAP_OF: body_cap). By Content-Length at once
    (400 when it is no number), and by counting what arrives (Starlette's body limit) when there is none: a chunked
    body of any size from anyone, token or not, would otherwise be read into memory before a route looked at it."""

    def __init__(self, app, cap_of: Callable[[str, str, str], int]):
        self.app, self.cap_of = app, cap_of

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        cap = self.cap_of(scope["method"], scope["path"], headers.get("content-type", ""))
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return await error(400, "Content-Length: not a number")(scope, receive, send)
            if size > cap:
                return await error(413, f"request body of {size} bytes is over the limit of {cap}",
                                   "TooLarge")(scope, receive, send)
        await RequestBodyLimitMiddleware(self.app, max_body_size=cap)(scope, receive, send)


def body_cap(settings: Settings) -> Callable[[str, str, str], int]:
    """The cap of a request's body by its (method, path, content type): a tar upload to one of the upload routes
    under 8 x limits.code_bytes (each route checks its own, smaller cap while it spools to disk), anything else
    under MAX_JSON_BYTES (CapBodies holds it; harness.server.connections times a body by it)."""
    from .transfers import UPLOADS
    upload_cap = settings.code_bytes * 8

    def cap_of(method: str, path: str, content_type: str) -> int:
        upload = (method, path) in UPLOADS and content_type.startswith("application/x-tar")
        return upload_cap if upload else MAX_JSON_BYTES
    return cap_of


async def _watch_scheduler(settings: Settings, server: "Server") -> None:
    """What every local command does when it opens the store, done for the server's callers, who open none: a run
    whose scheduler died is recovered (requeued, or failed as lost) and pending work gets a scheduler again, at
    most a lease and one look after the death (lease.recover_if_orphaned)."""
    import anyio
    import anyio.to_thread

    from harness.scheduler.lease import recover_if_orphaned
    store = server.base.store
    while True:
        await anyio.sleep(min(15.0, max(1.0, settings.lease_seconds / 4)))
        try:
            if await anyio.to_thread.run_sync(lambda: store.lease().held_elsewhere()):
                continue  # a scheduler on another machine sharing the database serves it: alive while it holds
            await anyio.to_thread.run_sync(recover_if_orphaned, settings, store)
        except Exception:  # noqa: BLE001 - the next look tries again; the server serves meanwhile
            log.exception("recovering runs of a stopped scheduler failed")


def create_app(settings: Settings, server_timing: bool = False) -> FastAPI:
    """The API and dashboard of SETTINGS' state root; SERVER_TIMING: every answer says the time spent in it (for
    benchmarks only: security.AnswerHeaders)."""
    server = Server(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        import asyncio

        import anyio.to_thread
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS  # (follows hold one each)
        ensure_running(settings)  # queued work from before a restart goes on (the scheduler owns the lease)
        watch = asyncio.create_task(_watch_scheduler(settings, server))
        try:
            yield
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    app = FastAPI(title="NSML harness", version="1", openapi_url=f"{API}/openapi.json", docs_url=None,
                  redoc_url=None, lifespan=lifespan, default_response_class=FiniteJSONResponse)
    app.state.server = server

    from harness.web import pages, security
    security.install(app, API, pages.refused)  # CSRF on dashboard forms; inside CapBodies, so an oversized body is
    #                                            refused before it is read
    app.add_middleware(CapBodies, cap_of=body_cap(settings))  # before any layer reads a body
    app.add_middleware(CallerSlots, verify=server.api_for)  # a caller past its share of requests in flight gets 429
    #                                                         at once
    app.add_middleware(security.AnswerHeaders, timing=server_timing)  # outermost: every answer's headers, whoever
    #                                                                   made the answer

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        if not request.url.path.startswith(API):  # a dashboard page: the message in the page
            from harness.web.pages import render_error
            return render_error(request, None, exc, status_of(exc))
        return error(status_of(exc), str(exc), type(exc).__name__)

    from sqlalchemy.exc import DataError

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError):
        """A NUL in a value of the request (PostgreSQL refuses one in any text, in a name looked up too): the
        request's, in one line, as a page's or the API's (it was a 500, the hostile review of stop 48). Any other
        DataError is the harness's own: logged, a 500."""
        if "NUL" not in str(exc.orig):
            return await unexpected(request, exc)
        return await user_error(request, UserError("a value of this request holds a NUL character"))

    from harness.web.pages import LoginNeeded

    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, _exc):
        if request.url.path.endswith(".json"):  # what a page's script fetches: it goes to the login page itself
            return JSONResponse({"error": "log in again", "type": "LoginNeeded"}, status_code=401)
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request, exc: RequestValidationError):
        return error(422, invalid(exc.errors()), "RequestValidationError")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), "HTTPException")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        """A 500, answered outside every middleware (Starlette's ServerErrorMiddleware): with every answer's
        headers set here (security.AnswerHeaders never sees it)."""
        log.exception("unexpected error")
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details", "Internal",
                     headers_of(request.url.path))

    from harness.web import organizer_pages, session_pages

    from . import derived, transfers
    app.include_router(derived.router, prefix=API)
    app.include_router(transfers.router, prefix=API)
    app.include_router(pages.router)
    app.include_router(session_pages.router)
    app.include_router(organizer_pages.router)
    app.mount("/static", StaticFiles(directory=str(pages.HERE / "static")), name="static")
    return app
