"""client: the CLI's way to a `harness serve` while logged in (`nsml login URL`).
remote (`RemoteApi`: every operation declared in harness.api over HTTP with httpx, the CALL and STREAM ones made
from their declarations; uploads after the local snapshot rules; downloads unpacked under the archive rules).
May import: api (the declarations), runs.snapshot (the rules uploads follow), core.
"""
from .remote import RemoteApi  # noqa: F401
