"""web: the dashboard `harness serve` also serves at /. Server-rendered pages
(Jinja2; htmx for the parts that refresh; boards readable without JavaScript): log in with a token (an http-only,
same-site cookie), tasks and their boards (CSV too), your submissions and sessions, a session's live log (SSE)
and the graphs of `nsml.report` (uPlot, vendored under static/vendor, see scripts/refresh-vendor.sh).
pages (tasks, boards, submissions, contests), session_pages (sessions, logs, graphs, actions), organizer_pages
(moderation, closing a round), views (what the templates show: numbers, every time in UTC, a round board's
Public and Private tabs, the chart's entries), security (the Content-Security-Policy and other headers; the CSRF
token of every form, checked in one place).
May import: service (through `service.local.LocalApi`, the same calls as the API), core.
"""
