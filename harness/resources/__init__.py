"""What the harness ships besides code: the built-in task packs (their data builders), the baseline submissions
the contest simulator plays, and the default session image's Dockerfile. In a checkout these are links to the
repository's own `tasks/`, `submissions/` and `Dockerfile`; a wheel carries copies, so it works alone."""
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = HERE / "tasks"
SUBMISSIONS = HERE / "submissions"
DOCKERFILE = HERE / "Dockerfile"
SESSION_SDK = HERE.parent / "session_sdk"  # the in-session `nsml` module, put on every session's path
