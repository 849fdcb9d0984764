"""How many requests one caller has in flight at once, bounded before any work is done for them.

The server answers from a pool of worker threads (40) and holds, for every request it is reading or answering, a
connection, a descriptor and, for an upload, a spool file. Without a bound, one participant's script that opens a
few hundred requests at once — uploads sent a byte a second, or calls that do real work (an upload unpacked, a
session's environment built) — holds every thread or every descriptor, and every other user waits. So each caller
may have PER_CALLER requests in flight; the next is answered 429 at once, before its body is read or its token
is checked. A caller is its account — by its token's id (the bearer token's, or the dashboard's login cookie's),
once this server has verified that very token (one sha256 against the last good one: a request under another
account's token id with a wrong secret never takes that account's share) — else its address: requests with a
token not verified yet (its first, after a restart) or a made-up one share their address's. Follows
and submission waits have a tighter bound of their own (service.log_streams), inside this one.
"""
from __future__ import annotations

from collections import Counter

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from harness.service.accounts import verified_caller
from harness.web.security import COOKIE

from .deps import bearer, error

PER_CALLER = 16  # requests of one caller in flight at once (a dashboard page fetches 6 at a time)


def caller_of(scope) -> str:
    """Whose request SCOPE is: its account, once its token (the bearer token, else the dashboard's login cookie)
    is known good; else its address (a token not verified yet, or made up, takes no account's share, and made-up
    ones get no share of their own: a JSON body is read before its token is checked)."""
    headers = Headers(scope=scope)
    token = bearer(headers)
    if token is None:
        cookies = headers.get("cookie", "")
        token = cookie_parser(cookies).get(COOKIE, "").strip() if len(cookies) < 8192 else ""
    token_id = verified_caller(token)
    if token_id is not None:
        return f"token {token_id}"
    client = scope.get("client")
    return f"address {client[0] if client else '?'}"


class CallerSlots:
    """ASGI middleware: at most PER_CALLER requests of one caller in flight; 429 past that. (All of its state is
    touched on the event loop's one thread.)"""

    def __init__(self, app, per_caller: int = PER_CALLER):
        self.app, self.per_caller = app, per_caller
        self.held: Counter[str] = Counter()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        caller = caller_of(scope)
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
