"""client: the CLI's ways to the library when it does not load it itself.
remote (`RemoteApi`: every operation declared in harness.api over HTTP with httpx, for a `harness serve` while
logged in (`nsml login URL`); the CALL and STREAM ones made from their declarations; uploads after the local
snapshot rules; downloads unpacked under the archive rules).
service (`ServiceApi`: every operation over the state root's Unix socket, to the service harness.server.
local_service runs; each method made from its declaration).
May import: api (the declarations), runs.snapshot (the rules uploads follow), core. Each is imported on first use
(httpx costs a local command ~60 ms).
"""


def __getattr__(name: str):
    if name == "RemoteApi":
        from .remote import RemoteApi
        return RemoteApi
    if name == "ServiceApi":
        from .service import ServiceApi
        return ServiceApi
    raise AttributeError(name)
