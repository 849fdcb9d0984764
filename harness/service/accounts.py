"""Accounts of a shared server (`harness serve`): who may log in, with which rights, by which token.

A token is `nsml_<id>_<secret>`: the id finds the account (indexed), the secret is kept only as an scrypt hash
with its own salt and compared in constant time. A token is shown once, when made (`user add`, `user token
reset`); nothing can show it again. Organizers are the accounts marked so, plus harness.toml's `organizers`.
Local mode (no server) needs no account: identity is the OS user or --user, as before.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from harness.contest import definition
from harness.contest.gate import get_contest
from harness.core.clock import utcnow
from harness.core.errors import NotFound, QuotaExceeded, Unauthorized, UserError
from harness.core.names import check_name
from harness.state import Harness
from harness.store.models import Account, Contest, User

from . import permissions

PREFIX = "nsml_"
TOKEN_ID = re.compile(r"[0-9a-f]{16}")  # a token's id: secrets.token_hex(8)
SCRYPT = {"n": 1 << 14, "r": 8, "p": 1, "dklen": 32}
_VERIFIED: dict[str, bytes] = {}  # token id → sha256 of the secret last verified for it (skips scrypt next time)
_CALLERS: dict[str, bytes] = {}  # token id → sha256 of the whole token last verified (server.caller_slots)
_LOCK = threading.Lock()


class Throttled(QuotaExceeded):
    """Too many failed token checks from one address or under one token id (HTTP 429)."""


class FailedChecks:
    """Failed token checks per key (a token id, a client address) in a sliding window. Over the limit, a key's
    next checks are refused before the expensive hash until the window has passed; a token that was verified
    before (its cheap digest is cached) still passes, so a flood under someone's token id does not lock them
    out."""

    def __init__(self, limit: int, window: float = 60.0):
        self.limit, self.window = limit, window
        self._fails: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._fails.get(key, ()) if now - t < self.window]
        if kept:
            self._fails[key] = kept
        else:
            self._fails.pop(key, None)
        return kept

    def over(self, key: str | None) -> bool:
        if key is None:
            return False
        with self._lock:
            return len(self._recent(key, time.monotonic())) >= self.limit

    def fail(self, key: str | None) -> None:
        if key is None:
            return
        with self._lock:
            now = time.monotonic()
            self._fails[key] = self._recent(key, now) + [now]
            if len(self._fails) > 100_000:  # bounded: the oldest keys go first
                for old in list(self._fails)[:10_000]:
                    self._fails.pop(old, None)


PER_TOKEN_ID = FailedChecks(limit=10)  # failed checks a minute under one token id
PER_ADDRESS = FailedChecks(limit=300)  # a backstop: failed checks a minute from one address, over many token ids
#                                        (unknown ids never reach the hash, so each needs a real account's id)


@dataclass(frozen=True)
class Identity:
    user: str
    organizer: bool


def _hash(secret: str, salt: str) -> str:
    return hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), **SCRYPT).hex()


def _new_token(account: Account) -> str:
    token_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    account.token_id, account.token_salt, account.token_hash = token_id, salt, _hash(secret, salt)
    account.token_set_at = utcnow()
    return f"{PREFIX}{token_id}_{secret}"


def _account(db, name: str) -> Account:
    account = db.scalar(select(Account).join(User, Account.user_id == User.id).where(User.name == name))
    if account is None:
        known = db.scalars(select(User.name).join(Account, Account.user_id == User.id)).all()
        raise NotFound(f"NAME: no account {name!r} (known: {', '.join(sorted(known)) or 'none'})")
    return account


def add_user(h: Harness, name: str, organizer: bool = False, team: str | None = None) -> str:
    """[organizer] A new account; returns its token (shown once). TEAM: CONTEST/TEAM, or TEAM of the only
    contest."""
    permissions.require_organizer(h.settings, "user add")
    check_name(name, "NAME")
    exists = UserError(f"NAME: account {name!r} exists (user token reset {name} makes a new token)")
    try:
        with h.tx() as db:  # the account and its team in one transaction: a refused team leaves no account
            user = h.user(db, name)
            if db.scalar(select(Account.id).where(Account.user_id == user.id)) is not None:
                raise exists
            account = Account(user_id=user.id, organizer=organizer, created_by=h.settings.user)
            db.add(account)
            token = _new_token(account)
            if team:
                contest, team_name = _team_ref(db, team)
                definition.add_team(h, db, contest, team_name, [name])
    except IntegrityError:  # the same name added at the same moment elsewhere: one account, the other refused
        raise exists from None
    return token


def _team_ref(db, team: str) -> tuple[Contest, str]:
    """--team CONTEST/TEAM, or TEAM of the only contest: the contest and the team's name."""
    if "/" in team:
        contest, team = team.split("/", 1)
        return get_contest(db, contest), team
    names = db.scalars(select(Contest.name).order_by(Contest.name)).all()
    if len(names) != 1:
        raise UserError(f"--team: say CONTEST/TEAM ({len(names)} contests: {', '.join(names) or 'none yet'})")
    return get_contest(db, names[0]), team


def account_organizer(h: Harness, name: str, flagged: bool) -> bool:
    """An account is an organizer's when it was made one (`user add --organizer`) or harness.toml names it."""
    return flagged or name in h.settings.organizers


def list_users(h: Harness) -> list[dict]:
    permissions.require_organizer(h.settings, "user ls")
    with h.tx() as db:
        rows = db.execute(select(User.name, Account).join(Account, Account.user_id == User.id).order_by(User.name))
        return [{"user": name, "organizer": account_organizer(h, name, a.organizer), "disabled": a.disabled,
                 "token_set": a.token_set_at.isoformat(timespec="seconds") if a.token_set_at else None,
                 "created_by": a.created_by} for name, a in rows]


def disable_user(h: Harness, name: str) -> None:
    """[organizer] The account's token stops working at once; its sessions and submissions stay."""
    permissions.require_organizer(h.settings, "user disable")
    with h.tx() as db:
        _account(db, name).disabled = True


def reset_token(h: Harness, name: str) -> str:
    """[organizer] A new token for NAME (the old one stops working); shown once. Also enables the account."""
    permissions.require_organizer(h.settings, "user token reset")
    with h.tx() as db:
        account = _account(db, name)
        account.disabled = False
        return _new_token(account)


def authenticate(h: Harness, token: str | None, address: str | None = None) -> Identity:
    """The account a token belongs to, or Unauthorized (one message for every bad token: nothing to probe).
    Cheap checks first (shape, the token id's row, a cached digest); checks that fail at the scrypt hash are
    counted per token id and per ADDRESS, and over their limit (FailedChecks) a check is refused before it."""
    bad = "no valid token (log in: nsml login URL)"
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        raise Unauthorized(bad)
    token_id, _, secret = token[len(PREFIX):].partition("_")
    if not TOKEN_ID.fullmatch(token_id):  # (the shape `_new_token` makes: nothing else is looked up — a NUL, say,
        raise Unauthorized(bad)          # that a quoted cookie's escapes can make, which PostgreSQL refuses)
    with h.tx() as db:
        row = db.execute(select(Account, User.name).join(User, Account.user_id == User.id)
                         .where(Account.token_id == token_id)).first()
        if row is None or row[0].token_hash is None:
            raise Unauthorized(bad)
        account, name = row
        stored, salt, disabled, organizer = account.token_hash, account.token_salt, account.disabled, account.organizer
    digest = hashlib.sha256(f"{stored}:{secret}".encode()).digest()
    with _LOCK:
        known = _VERIFIED.get(token_id)
    if known is None or not hmac.compare_digest(known, digest):
        if PER_ADDRESS.over(address) or PER_TOKEN_ID.over(token_id):
            raise Throttled("too many failed token checks: wait a minute and try again")
        if not hmac.compare_digest(_hash(secret, salt), stored):
            PER_ADDRESS.fail(address)
            PER_TOKEN_ID.fail(token_id)
            raise Unauthorized(bad)
        with _LOCK:
            _VERIFIED[token_id] = digest
    if disabled:
        raise Unauthorized(f"account {name!r} is disabled")
    with _LOCK:
        _CALLERS[token_id] = hashlib.sha256(token.encode()).digest()
    return Identity(name, account_organizer(h, name, organizer))


def verified_caller(token: str) -> str | None:
    """TOKEN's id, if this process has verified this very token before (one sha256, no database): a caller counts
    as its account only once its token is known good, so that a request under someone else's token id with a
    wrong secret never takes their share (server.caller_slots)."""
    token_id = token[len(PREFIX):].partition("_")[0] if token.startswith(PREFIX) and len(token) <= 200 else ""
    with _LOCK:
        known = _CALLERS.get(token_id)
    return token_id if known is not None and hmac.compare_digest(known, hashlib.sha256(token.encode()).digest()) \
        else None


def for_identity(h: Harness, who: Identity) -> Harness:
    """A Harness acting as WHO, sharing H's store: the service's permission checks see that identity."""
    from dataclasses import replace
    others = [o for o in h.settings.organizers if o != who.user]
    organizers = others + [who.user] if who.organizer else others
    return Harness(replace(h.settings, user=who.user, organizers=organizers, remote=True), store=h.store)

