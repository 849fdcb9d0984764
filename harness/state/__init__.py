"""state: `Harness` (root.py), the library's handle on one state root: settings, the store (opened, migrated, and runs of a dead
scheduler recovered), and look-ups of users, tasks and sessions by name ("did you mean" included). No rights
are checked here: that is the service's job.
May import: scheduler and every floor below.
"""
from .root import Harness  # noqa: F401
