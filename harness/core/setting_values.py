"""How each kind of setting value is read from ``harness.toml`` (or the environment): integers, choices, seconds,
GPU models, runtime plugins (pure parsers: where the values come from is ``harness.core.settings``'s), and the one
check of the file itself: a password in it is for its owner alone."""
from __future__ import annotations

import re

from .errors import UserError

SETTINGS_FILE = "harness.toml"


def integer(value, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}: expected an integer, got {value!r}") from None
    if number < 0:
        raise UserError(f"{name}: must be >= 0, got {number}")
    return number



def choice(value, allowed: tuple[str, ...], key: str) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        import difflib
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"{SETTINGS_FILE}: {key}: expected one of {', '.join(allowed)}, got {value!r}{hint}")
    return str(value)



def gpu_models(items) -> list[str]:
    """gpus = [{model = "V100", count = 4}, ...] → one model name per device index."""
    out = []
    for i, item in enumerate(items):
        where = f"{SETTINGS_FILE}: gpus[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("model"), str) or set(item) - {"model", "count"}:
            raise UserError(f"{where}: expected {{model = \"NAME\", count = N}}, got {item!r}")
        out += [item["model"]] * integer(item.get("count", 1), f"{where}.count")
    return out



def plugins(table: dict) -> dict[str, str]:
    for name, target in table.items():
        module, _, attr = target.partition(":")
        if not module or not attr.isidentifier():
            raise UserError(f"{SETTINGS_FILE}: [runtimes] {name}: expected \"module:Class\", got {target!r}")
    return dict(table)



def seconds(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        raise UserError(f"{SETTINGS_FILE}: {where}: expected seconds between 0 and 3600, got {value!r}")
    return float(value)


HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"  # a name or a bracketed IPv6


def host_port(word: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "host" (port 443); ValueError for anything else."""
    host, _, port = word.rpartition(":") if re.search(r":[0-9]{1,5}$", word) else (word, "", "443")
    if not re.fullmatch(HOST, host) or not 0 < int(port) < 65536:
        raise ValueError(f"not a host or host:port: {word[:100]!r}")
    return host.lower(), int(port)


def hosts(value, where: str) -> list[str]:
    """A list of "host" or "host:port" strings (the hosts an environment build may reach besides its index)."""
    if not isinstance(value, list):
        raise UserError(f"{SETTINGS_FILE}: {where}: expected a list of \"host:port\" strings, got {value!r:.100}")
    for word in value:
        try:
            host_port(word if isinstance(word, str) else "")
        except ValueError:
            raise UserError(f"{SETTINGS_FILE}: {where}: expected \"host\" or \"host:port\", got {word!r:.100}") \
                from None
    return [str(w) for w in value]


SECRET_KEYS = ("password", "sslpassword")  # query parameters libpq takes a secret from


def _query_secrets(rest: str) -> list[str]:
    """The values of the SECRET_KEYS in the query of REST (a URL after its '://'), blank ones too."""
    from urllib.parse import parse_qs
    return [value for key, values in parse_qs(rest.partition("?")[2], keep_blank_values=True).items()
            if key.strip().lower() in SECRET_KEYS for value in values]


def has_password(url: str) -> bool:
    """Whether a database URL may carry a password, read as SQLAlchemy reads one (`name://user:password@...`, the
    user ending at the first ':' or '/', the password at the next '@', so it may hold '/', '?' or '#'), or as a
    `password=` query parameter. Errs towards yes: a URL it cannot tell about is taken to have one."""
    rest = url.partition("://")[2]
    cut = min((i for i in (rest.find(":"), rest.find("/")) if i >= 0), default=-1)
    if cut >= 0 and rest[cut] == ":" and rest.find("@", cut + 1) > cut + 1:
        return True
    return bool(_query_secrets(rest))


def shown_url(url: str) -> str:
    """A database URL as a message may show it: its scheme, host, port and database; never what comes before its
    last '@' (a user and password, whatever they hold) nor its query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "a database URL"
    return f"{scheme[:40]}://{rest[rest.rfind('@') + 1:].partition('?')[0]}"


def store_where(url: str | None) -> str:
    """The store as a message names it: an SQLite file's path, else `shown_url`."""
    if not url:
        return "the store"
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else shown_url(url)


def redacted(text: str, url: str) -> str:
    """TEXT (a driver's error, which may quote a host or a database name that is part of a mistyped password)
    without any piece of URL's secrets: its password region, its pieces between any separator a driver splits at,
    and their percent-decoded forms."""
    from urllib.parse import unquote
    rest = url.partition("://")[2]
    secret = rest[:rest.rfind("@")].partition(":")[2] if "@" in rest else ""
    pieces = {secret, *re.split(r"[@:/?#,;\s]", secret), *_query_secrets(rest)}
    pieces |= {unquote(p) for p in pieces} | {p.replace("@", "%40") for p in pieces}
    for piece in sorted(pieces, key=len, reverse=True):
        if len(piece) >= 2:
            text = text.replace(piece, "***")
    return " ".join(text.split())  # (one line: libpq adds its hints on lines of their own)


def private_if_secret(path, url: str | None, env_name: str) -> None:
    """A database URL with a password in a settings file other accounts may read would give them the store (every
    score, every token's hash): refused, as libpq refuses such a .pgpass and ssh such a key."""
    if not url or not isinstance(url, str):
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 and has_password(url):
        raise UserError(f"{path}: db holds a password and the file is readable by other accounts (mode "
                        f"{mode:04o}): chmod 600 {path}, or give the URL in {env_name} or the password in ~/.pgpass")
