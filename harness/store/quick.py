"""Read-only SQL without SQLAlchemy: the CLI's listing commands (`ps`, `board`) on an SQLite store.

Importing SQLAlchemy and the models costs a CLI process ~0.25 s; a listing needs one or two queries. So the
queries behind those listings (harness.store.read_sql) are plain SQL text, run through one small interface:

- ``QuickReader`` (stdlib sqlite3, read-only) when the store is SQLite, its schema is current and nothing needs
  recovering — else ``QuickReader.open`` answers None and the command takes the full path (which migrates and
  recovers);
- ``sa_rows`` for an open SQLAlchemy session (the library, PostgreSQL, the HTTP server later).

Both return plain tuples; ``as_time``/``as_json``/``as_bool`` even out what each driver gives back.
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def code_head() -> str:
    """The newest revision this code knows (migration files are named after their revision: 0004_....py)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def expand(sql: str, params: dict) -> tuple[str, dict]:
    """List parameters become one placeholder each (`:name` → `:name_0, :name_1`), for IN (...)."""
    out = dict(params)
    for key, value in params.items():
        if isinstance(value, (list, tuple)):
            names = [f"{key}_{i}" for i in range(len(value))] or [f"{key}_none"]
            del out[key]
            out.update(zip(names, value))
            if not value:
                out[f"{key}_none"] = None
            sql = sql.replace(f":{key}", ", ".join(f":{n}" for n in names))
    return sql, out


class QuickReader:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    @classmethod
    def open(cls, settings) -> "QuickReader | None":
        """A reader of the settings' SQLite store, or None where the full path must answer."""
        if not settings.db_url.startswith("sqlite:///"):
            return None
        path = Path(settings.db_url[len("sqlite:///"):]).expanduser()
        if not path.is_file():
            return None
        try:
            conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
        reader = cls(conn)
        if not version or version[0] != code_head() or reader._needs_recovery(settings):
            conn.close()
            return None
        return reader

    def _needs_recovery(self, settings) -> bool:
        """Runs marked running with no live scheduler, or with stale heartbeats (see harness.scheduler.recovery). The lock
        is not touched (even a moment's hold could make a scheduler handing over think another holds it): the
        holder named in the lock file must be a live scheduler process."""
        if not self.rows("SELECT id FROM runs WHERE status = 'running' LIMIT 1"):
            return False
        if not _scheduler_alive(settings.lock_path):
            return True
        limit = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=settings.lease_seconds)
        return bool(self.rows("SELECT id FROM runs WHERE status = 'running' AND heartbeat_at < :limit LIMIT 1",
                              limit=limit.isoformat(sep=" ")))

    def rows(self, sql: str, **params) -> list[tuple]:
        sql, params = expand(sql, params)
        return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()


def _scheduler_alive(lock_path: Path) -> bool:
    try:
        pid = int(lock_path.read_text().strip())
        return b"harness.scheduler" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def sa_rows(db):
    """The same interface over an open SQLAlchemy session."""
    from sqlalchemy import text

    def rows(sql: str, **params) -> list[tuple]:
        sql, params = expand(sql, params)
        return [tuple(r) for r in db.execute(text(sql), params)]
    return rows


def as_time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def as_json(value):
    return json.loads(value) if isinstance(value, str) else value


def as_bool(value) -> bool:
    return bool(value)
