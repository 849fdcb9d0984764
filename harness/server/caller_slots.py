"""How many requests one caller has in flight at once, bounded before any work is done for them.

The server answers from a pool of worker threads (service.log_streams.WORKER_THREADS) and holds, for every
request it is reading or answering, a connection, a descriptor and, for an upload, a spool file. Without a bound,
one participant's script that opens a few hundred requests at once — uploads sent a byte a second, or calls that
do real work (an upload unpacked, a session's environment built) — holds every thread or every descriptor, and
every other user waits. So each caller may have PER_CALLER requests in flight; the next is answered 429 at once,
before its body is read. A caller is its account — by its token's id (the bearer token's, or the dashboard's
login cookie's), once this server has verified that very token (one sha256 against the last good one: a request
under another account's token id with a wrong secret never takes that account's share) — else its address:
requests with a token not verified yet or a made-up one share their address's. So that a user's first request
(after a restart too) never queues behind an address's anonymous ones (a client sending bodies slowly from behind
the same NAT or proxy), a token not verified yet is checked here, before any body is read: a good one counts as
its account from this request on; a bad one is answered 401 (429 past its failed-check limit) on the API at once.
Follows and submission waits have a tighter bound of their own (service.log_streams), inside this one.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

import anyio
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from harness.core.errors import UserError
from harness.service.accounts import verified_caller
from harness.web.security import COOKIE

from .deps import API, bearer, error, status_of

PER_CALLER = 16  # requests of one caller in flight at once (a dashboard page fetches 6 at a time)
VERIFYING = 4  # first checks of tokens under way at once (each a thread: a database read, at most one scrypt)


def credentials(scope) -> tuple[str, str]:
    """The request's token (the bearer token, else the dashboard's login cookie; "" without) and the one to check
    before it is let in: on the API the bearer token alone (its credential), elsewhere the token. One parse of the
    headers."""
    headers = Headers(scope=scope)
    token = bearer(headers)
    api = scope["path"].startswith(API + "/")
    if token is not None:
        return token, token
    cookies = headers.get("cookie", "")
    token = cookie_parser(cookies).get(COOKIE, "").strip() if len(cookies) < 8192 else ""
    return token, "" if api else token


def address_of(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "?"


def caller_of(token: str, scope) -> str:
    """Whose request SCOPE, with TOKEN, is: its account, once its token is known good; else its address (a token not
    verified yet, or made up, takes no account's share)."""
    token_id = verified_caller(token)
    return f"token {token_id}" if token_id is not None else f"address {address_of(scope)}"


class CallerSlots:
    """ASGI middleware: at most PER_CALLER requests of one caller in flight; 429 past that. (All of its state is
    touched on the event loop's one thread.)"""

    def __init__(self, app, per_caller: int = PER_CALLER, verify: Callable[[str, str], object] | None = None):
        """VERIFY(token, address): checks a token this server has not verified yet, raising UserError if bad."""
        self.app, self.per_caller, self.verify = app, per_caller, verify
        self.held: Counter[str] = Counter()
        self._verifying = anyio.CapacityLimiter(VERIFYING)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token, checked = credentials(scope)
        caller = caller_of(token, scope)
        if caller.startswith("address ") and self.verify is not None and checked:
            try:
                await anyio.to_thread.run_sync(self.verify, checked, address_of(scope), limiter=self._verifying)
            except UserError as exc:
                if scope["path"].startswith(API + "/"):
                    return await error(status_of(exc), str(exc), type(exc).__name__)(scope, receive, send)
            else:
                caller = caller_of(token, scope)
        if self.held[caller] >= self.per_caller:
            return await error(429, f"too many requests of yours at once ({self.per_caller}): wait for some to "
                                    f"finish", "QuotaExceeded")(scope, receive, send)
        self.held[caller] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.held[caller] -= 1
            if self.held[caller] <= 0:
                del self.held[caller]
