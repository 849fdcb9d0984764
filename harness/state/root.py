"""`Harness`: settings, the store (recovered on open), and look-ups of users, tasks and sessions by name."""
from __future__ import annotations

import difflib
from functools import cached_property
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from harness.core.clock import utcnow
from harness.core.errors import NotFound, TaskNotPrepared
from harness.core.names import parse_session_name, session_name
from harness.core.settings import Settings, load_settings
from harness.store import Store, open_store
from harness.store.models import Session, Task, User
from harness.taskpacks import registry


class Harness:
    def __init__(self, settings: Settings | None = None, store: Store | None = None):
        self.settings = settings or load_settings()
        if store is not None:  # shared (the server: one store, a Harness per request's identity)
            self.__dict__["store"] = store

    @cached_property
    def store(self) -> Store:
        from harness.scheduler.lease import recover_if_orphaned

        self.settings.ensure_dirs()
        store = open_store(self.settings.db_url)
        recover_if_orphaned(self.settings, store)  # no run stays "running" after its scheduler died
        return store

    def tx(self, serialize: str | None = None):
        return self.store.tx(serialize)

    # -- users ---------------------------------------------------------------------------------------------
    def user(self, db: OrmSession, name: str | None = None) -> User:
        name = name or self.settings.user
        user = db.scalar(select(User).where(User.name == name))
        if user is None:
            user = User(name=name)
            db.add(user)
            db.flush()
        return user

    # -- tasks ---------------------------------------------------------------------------------------------
    def register_task(self, db: OrmSession, manifest: registry.Manifest, path: Path) -> Task:
        task = db.scalar(select(Task).where(Task.name == manifest.name))
        if task is None:
            task = Task(name=manifest.name, path=str(path))
            db.add(task)
        task.path = str(path)
        task.metric = manifest.metric
        task.direction = manifest.direction
        task.prepared_at = utcnow()
        db.flush()
        return task

    def task(self, db: OrmSession, name: str, hidden: frozenset[str] = frozenset(), sources: bool = True) -> Task:
        """The prepared task NAME. One of HIDDEN (a task the caller may not know of yet: service.permissions.task_of)
        is as unknown as a name never registered, and no unknown name's answer lists one; without SOURCES (a
        participant: only an organizer prepares) so is a task not prepared yet, a built-in or a pack on disk."""
        task = db.scalar(select(Task).where(Task.name == name))  # (looked up for a hidden name too: the same time)
        if task is not None and name not in hidden:
            return task
        known = set(registry.known_sources(self.settings)) if sources else set()
        known = (known | set(db.scalars(select(Task.name)))) - hidden
        if name in known and sources:
            raise TaskNotPrepared(f"task {name!r} is not prepared yet: run 'harness dataset prepare {name}'")
        raise NotFound(registry.unknown_task_message(name, known))

    def manifest(self, task: Task) -> registry.Manifest:
        return registry.Manifest.read(Path(task.path))

    # -- sessions ------------------------------------------------------------------------------------------
    def session(self, db: OrmSession, name: str, owner: str | None = None) -> Session:
        """The session NAME; "did you mean" suggests only among OWNER's sessions (None: among all — the
        caller may see every one)."""
        name = session_name(*parse_session_name(name))
        sess = db.scalar(select(Session).where(Session.name == name))
        if sess is None:
            raise self.unknown_session(db, name, owner)
        return sess

    def unknown_session(self, db: OrmSession, name: str, owner: str | None) -> NotFound:
        """What `session` says of a session NAME that is not there — or, to a participant, not theirs (the same
        words: whether another user's session exists is not told, permissions.own_session)."""
        query = select(Session.name)
        if owner is not None:
            query = query.join(User, Session.user_id == User.id).where(User.name == owner)
        close = difflib.get_close_matches(name, db.scalars(query).all(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return NotFound(f"unknown session {name!r}.{hint}")
