"""web: the dashboard `harness serve` also serves at /. Server-rendered pages (Jinja2; boards readable without
JavaScript; the parts that refresh are node trees, see nodes.py): log in with a token (an http-only, same-site
cookie), tasks and their boards (CSV too), your submissions and sessions, a session's live log (SSE) and the
graphs of `nsml.report` (uPlot, vendored under static/vendor, see scripts/refresh-vendor.sh).
pages (tasks, boards, submissions, contests), session_pages (sessions, logs, graphs, actions), organizer_pages
(moderation, closing a round), views (what the templates show: numbers, every time in UTC, a round board's
Public and Private tabs, the chart's entries), nodes (a part that refreshes, as a tree of listed tags rendered
here or by static/refresh.js), fragments (the board and a session's facts as such trees), security (the
Content-Security-Policy and other headers; the CSRF token of every form, checked in one place).
May import: service (through `service.local.LocalApi`, the same calls as the API), core.
"""
