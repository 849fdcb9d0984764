"""server: `harness serve`, the HTTP API (/api/v1, FastAPI on uvicorn) and dashboard of one state root.
app (the app: authentication by bearer token, one-line JSON errors, body caps), deps (what every route shares:
the caller's `LocalApi`, error statuses, tar uploads), derived (a route for each declared CALL and STREAM
operation of harness.api, made from its declaration), transfers (the CUSTOM operations' routes: uploads, the
checkpoint download, a contest's text); local_service (the state root's service: the same operations over a Unix
socket for local commands, the scheduler on a thread; harness.client.service is its client).
May import: web, service, context, scheduler (to start it), api, core.
"""
