"""Floor 11 (beside server) — client: the CLI's way to a `harness serve` while logged in (`nsml login URL`).
remote (`RemoteApi`: every `service.api.Api` operation over HTTP with httpx; uploads after the local snapshot
rules; downloads unpacked under the archive rules).
May import: service.api (the contract), runs.snapshot (the rules uploads follow), core.
"""
from .remote import RemoteApi  # noqa: F401
