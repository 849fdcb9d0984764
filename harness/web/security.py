"""What keeps participant data in the dashboard inert and its forms the user's own: the response headers (a strict
Content-Security-Policy: scripts only from /static, no inline script, no eval) and the CSRF check of every form.

CSRF: each form carries `csrf`, an HMAC-SHA256 (key: random, made when the server starts) of the login cookie
(`csrf_field()` in a template writes it); every unsafe request to a dashboard path is checked here, in one
place, before its route runs. The login form, before there is a login cookie, is tied the same way to a
pre-login cookie (same-site strict, so a form posted from another site arrives without it). The HTTP API
(bearer tokens, never the cookie) is not checked."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from jinja2 import pass_context
from markupsafe import Markup
from starlette.datastructures import MutableHeaders

COOKIE = "nsml_token"  # the login cookie (http-only, same-site strict)
LOGIN_COOKIE = "nsml_login"  # the pre-login cookie the login form's token comes from
FIELD = "csrf"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
REFUSED = "Refused: the security token of this form is missing or out of date (reload the page and try again)."

# style-src stays 'self' too: uPlot and charts.js style through the CSSOM (element.style), which a CSP allows.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY"}
STATIC = "/static/"  # (the same for everyone: the only answers a browser or a proxy may keep)


def headers_of(path: str) -> dict[str, str]:
    """The headers of every answer at PATH, whoever makes it (AnswerHeaders sets them): the security headers, and
    `no-store` but for the static files — every other answer is somebody's view (an organizer's Private tab
    before the close), never kept by a browser or proxy."""
    return {**HEADERS, **PAGE_HEADERS, **({} if path.startswith(STATIC) else {"Cache-Control": "no-store"})}


class AnswerHeaders:
    """The one place an answer's headers are set (an ASGI middleware, outside every other one): headers_of(path)
    on every answer the app makes — a page, the API, a static file, a refusal by the body caps or the callers'
    slots, Starlette's own 413 for a chunked body — and, where the operator asked for it (`serve --server-timing`,
    what the dashboard benchmark reads), Server-Timing: app;dur=MS, the time spent inside it. Off by default: it
    would time the server's work to 0.1 ms for every caller, a participant probing for what they may not see
    included. An unhandled error's 500 alone is answered outside it (Starlette's ServerErrorMiddleware): its
    handler, server.app's `unexpected`, sets headers_of itself."""

    def __init__(self, app, timing: bool = False):
        self.app, self.timing = app, timing

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, fixed = time.perf_counter(), headers_of(scope["path"])

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in fixed.items():
                    headers[name] = value  # (set, never added to: a route's own value gives way)
                if self.timing:
                    headers["Server-Timing"] = f"app;dur={(time.perf_counter() - start) * 1000:.1f}"
            await send(message)
        await self.app(scope, receive, send_with_headers)


def _mac(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def _login_value(request: Request) -> str:
    return getattr(request.state, "login_nonce", None) or request.cookies.get(LOGIN_COOKIE, "")


def expected_token(request: Request, purpose: str) -> str:
    """The token a form of PURPOSE ("session": the login cookie's; "login": the pre-login cookie's) carries."""
    value = _login_value(request) if purpose == "login" else request.cookies.get(COOKIE, "")
    return _mac(request.app.state.csrf_secret, purpose, value)


@pass_context
def csrf_field(context, purpose: str = "session") -> Markup:
    """`{{ csrf_field() }}` in every form that posts: the hidden input the check below expects."""
    token = expected_token(context["request"], purpose)
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, token)  # format escapes both


def start_login(request: Request) -> str:
    """The pre-login cookie's value for a login form about to be rendered (kept if the browser has one)."""
    request.state.login_nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    return request.state.login_nonce


async def csrf_problem(request: Request) -> str | None:
    """None when REQUEST (unsafe, to a dashboard path) may go on; else why not, in one line."""
    if request.url.path == "/login":
        purpose = "login"
        if not request.cookies.get(LOGIN_COOKIE):
            return REFUSED
    else:
        purpose = "session"
        if not request.cookies.get(COOKIE):
            return None  # no login cookie, so no authority to borrow: the route sends the browser to log in
    sent = None
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        await request.body()  # cached, so the route reads the same body after this
        try:
            sent = (await request.form()).get(FIELD)
        except Exception:  # noqa: BLE001 (a malformed form has no token either)
            sent = None
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected_token(request, purpose).encode()):
        return REFUSED
    return None


def install(app: FastAPI, api_prefix: str, refuse: Callable[[Request, str], object]) -> None:
    """The CSRF check of unsafe requests outside API_PREFIX (REFUSE renders the 403). The headers of every answer,
    the CSP included (the server has no page of FastAPI's own: its Swagger page would load scripts from a CDN into
    this origin), are AnswerHeaders', added outside every middleware by server.app."""
    app.state.csrf_secret = secrets.token_bytes(32)

    def is_api(path: str) -> bool:
        return path == api_prefix or path.startswith(api_prefix + "/")

    @app.middleware("http")
    async def dashboard_guard(request: Request, call_next):
        api = is_api(request.url.path)
        problem = None if api or request.method not in UNSAFE else await csrf_problem(request)
        return refuse(request, problem) if problem else await call_next(request)
