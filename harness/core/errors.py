"""Errors the CLI turns into one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user: printed as a single line, exit code 2."""

    exit_code = 2


class NotFound(UserError):
    """An unknown task, session, checkpoint or file."""


class TaskNotPrepared(NotFound):
    """A task the harness knows (built in or registered) whose data is not prepared yet."""


class QuotaExceeded(UserError):
    """A counted submit over the task's quota."""


class Unauthorized(UserError):
    """No token, an unknown or malformed one, or a disabled account (HTTP 401)."""


class PermissionDenied(UserError):
    """Acting on what is not yours, or an organizer command by a participant (raised by service.permissions)."""


class ClusterUnavailable(Exception):
    """The cluster that places runs ([cluster] executor = "ray") did not answer: runs wait, none is failed for it."""


class StorageError(UserError):
    """The state root or the store cannot be used (a full disk, a damaged database): one line, exit code 3."""

    exit_code = 3


def storage_error(exc: BaseException, db_url: str | None) -> StorageError | None:
    """EXC worded as a StorageError when it is storage trouble (an OSError for a full, read-only or forbidden
    disk; SQLAlchemy's or sqlite3's error for a store that cannot be used), else None. DB_URL: the store's (shown
    without its secrets, core.setting_values), None where not known. The CLI and the local service word it here."""
    import errno
    import sqlite3
    import sys

    from .setting_values import redacted, store_where

    reasons = {errno.ENOSPC: "no space left", errno.EROFS: "read-only file system",
               errno.EACCES: "permission denied", errno.EDQUOT: "disk quota exceeded"}
    if isinstance(exc, OSError) and exc.errno in reasons:
        where = exc.filename or "the state root"
        return StorageError(f"{where}: {reasons[exc.errno]} (nothing was recorded for this command)")
    sa = sys.modules.get("sqlalchemy.exc")  # loaded only if the command used the library
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    detail = redacted(detail, db_url or "")
    if sa is not None and isinstance(exc, sa.OperationalError) or isinstance(exc, sqlite3.OperationalError):
        return StorageError(f"--db: {detail} (nothing was recorded for this command)")
    if sa is not None and isinstance(exc, sa.DatabaseError) or isinstance(exc, sqlite3.DatabaseError):
        return StorageError(f"--db: {store_where(db_url)} is corrupt or not a database ({detail}); "
                            "nothing was recorded for this command")
    return None
