"""Floor 11 (beside cli) — server: `harness serve`, the HTTP API (/api/v1, FastAPI on uvicorn) of one state root.
app (the app, authentication by bearer token, one-line JSON errors, body caps), routes and routes_contest (one
route per CLI command, each a call of the token account's `service.local.LocalApi`).
May import: service, context, scheduler (to start it), core.
"""
