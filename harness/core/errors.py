"""Errors the CLI turns into one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user: printed as a single line, exit code 2."""

    exit_code = 2


class NotFound(UserError):
    """An unknown task, session, checkpoint or file."""


class QuotaExceeded(UserError):
    """A counted submit over the task's quota."""


class PermissionDenied(UserError):
    """Acting on what is not yours, or an organizer command by a participant (raised by service.permissions)."""


class ClusterUnavailable(Exception):
    """The cluster that places runs ([cluster] executor = "ray") did not answer: runs wait, none is failed for it."""
