"""Engine creation (SQLite: WAL + busy timeout) and schema migration with Alembic."""
from __future__ import annotations

import contextlib
import os
import stat
import zlib
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from harness.core import finite_json
from harness.core.errors import UserError
from harness.core.setting_values import redacted, shown_url

from .quick import MIGRATIONS, code_head

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                                   json_serializer=finite_json.dumps)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:  # (JSON columns hold finite numbers only: PostgreSQL's json type refuses NaN and Infinity)
            engine = create_engine(url, pool_pre_ping=True, json_serializer=finite_json.dumps)
    except (ArgumentError, ModuleNotFoundError, ValueError) as exc:  # (ValueError: a port that is no number)
        raise UserError(f"--db (or HARNESS_DB, or db in harness.toml): cannot use {shown_url(url)!r}: "
                        f"{redacted(str(exc), url)}") from None
    return engine


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def _current_revision(engine: Engine) -> str | None:
    """The schema's revision by one query (None: a new database). Alembic is imported only to migrate."""
    with engine.connect() as conn:
        try:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except (OperationalError, ProgrammingError) as exc:
            if "alembic_version" not in str(exc.orig) and "no such table" not in str(exc.orig):
                raise
            return None


def migrate(engine: Engine, url: str) -> None:
    """Bring the schema to the newest revision (no-op when it is already there). URL: the store's, as given (what a
    driver's error may quote, and so what is kept out of one)."""
    try:
        current = _current_revision(engine)
    except OperationalError as exc:
        hint = ""
        if engine.url.get_backend_name() == "sqlite" and engine.url.database:
            folder = Path(engine.url.database).parent
            if not os.access(folder, os.W_OK):
                hint = f" ({folder} is not writable: a read-only file system or missing permission)"
        raise UserError(f"--db: cannot open {shown_url(url)!r}: {redacted(str(exc.orig), url)}{hint}") from None
    if current != code_head():
        from alembic import command

        command.upgrade(_alembic_config(engine), "head")


def after_commit(db: OrmSession, hook) -> None:
    """Run HOOK once the transaction DB belongs to has committed (never after a rollback)."""
    db.info.setdefault("after_commit", []).append(hook)


class Store:
    """The database: a session factory plus a transaction helper."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        migrate(self.engine, url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def tx(self, serialize: str | tuple[str, ...] | None = None) -> Iterator[OrmSession]:
        """One transaction: commit on success, roll back on error.

        ``serialize=KEY``: transactions with the same key run one after another, so that a check and the insert
        it guards cannot interleave across processes (SQLite: BEGIN IMMEDIATE takes the database's write lock
        first; PostgreSQL: a transaction-scoped advisory lock on the key). A tuple of keys: after each of them
        (PostgreSQL: locked in sorted order, so that two such transactions never wait on each other in a ring)."""
        with self._factory() as db:
            with db.begin():
                if serialize is not None:
                    self._serialize(db, serialize)
                yield db
            for hook in db.info.pop("after_commit", []):
                hook()

    def _serialize(self, db: OrmSession, keys: str | tuple[str, ...]) -> None:
        backend = self.engine.url.get_backend_name()
        if backend == "sqlite":
            db.connection().exec_driver_sql("BEGIN IMMEDIATE")
        elif backend == "postgresql":
            for key in sorted({keys} if isinstance(keys, str) else set(keys)):
                db.connection().exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(key.encode()),))
        else:  # pragma: no cover - other databases: a row lock would be needed
            raise UserError(f"--db: serialized transactions are not implemented for {backend}")

    def close(self) -> None:
        self.engine.dispose()

    def lease(self) -> "DatabaseLease":
        return DatabaseLease(self)


SCHEDULER_KEY = zlib.crc32(b"harness-scheduler")


class DatabaseLease:
    """The one-scheduler-per-database lease. On PostgreSQL (a database several machines may share) it is a
    session-level advisory lock held on a connection of its own for the holder's life — the server ends it when
    that process or its machine dies; on SQLite the state root's lock file is the lease, so this always holds."""

    def __init__(self, store: Store):
        self.store = store
        self.conn = None

    @property
    def shared(self) -> bool:
        return self.store.engine.url.get_backend_name() == "postgresql"

    def acquire(self) -> bool:
        if not self.shared:
            return True
        conn = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if not conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (SCHEDULER_KEY,)).scalar():
            conn.close()
            return False
        self.conn = conn
        return True

    def release(self) -> None:
        if self.conn is not None:
            self.conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (SCHEDULER_KEY,))
            self.conn.close()
            self.conn = None

    def held_elsewhere(self) -> bool:
        """Whether another process holds it now (a scheduler on this or another machine serves the database)."""
        if not self.acquire():
            return True
        self.release()
        return False


def open_store(url: str) -> Store:
    path = None
    if url.startswith("sqlite:///") and url[len("sqlite:///"):] not in ("", ":memory:"):
        path = Path(url[len("sqlite:///"):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(url)
    if path is not None:
        _own_only(path)
    return store


def _own_only(path: Path) -> None:
    """The SQLite store readable by its owner only (it holds every user's token hashes and private scores; its
    -wal and -shm files take its mode): set so where this account owns it. By path, never by opening the file:
    closing any descriptor of it would drop the locks this process's connections hold (SQLite's own warning)."""
    for name in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))):
        try:
            st = os.lstat(name)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(name, 0o600)
        except OSError:
            continue  # (absent, gone meanwhile, no right: SQLite says what matters in its own words)
