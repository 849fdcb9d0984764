"""The web dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser is
downloaded) against a real `harness serve` on loopback. With WEB_SCREENSHOTS=DIR the pages are also saved
there as PNGs (docs/screenshots is made that way)."""
import csv
import io
import os
import time
from pathlib import Path

import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant, run_session

from harness.core.escape import csv_cell
from harness.web.pages import flat_row

# Waits are written `page.wait_for_function("() => ...")`: Playwright compiles a bare expression with eval in the
# page, which the dashboard's Content-Security-Policy (no 'unsafe-eval') refuses; a function it does not.
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run"]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium (scripts/setup-browser.sh)")
        pytest.skip("no /usr/bin/chromium (scripts/setup-browser.sh installs it)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def site(cli, served, remote_cli, tmp_path):
    cli("dataset", "add", make_tiny_task(tmp_path / "tiny"), user=ORGANIZER)
    folder = participant(tmp_path / "code", NSML_MAIN)
    return served, remote_cli, folder


def _login(browser, url, token):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/tasks")
    assert "/login" in page.url  # not logged in: sent to the login form
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_url(f"{url}/tasks")
    return page


def _shot(page, name):
    folder = os.environ.get("WEB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_login_board_updates_after_a_submit_and_csv_matches(browser, site, cli):
    served, remote, folder = site
    bad = browser.new_page()
    bad.goto(f"{served.url}/login")
    bad.fill("#token", "nsml_00_wrong")
    bad.click("#login")
    assert "no valid token" in bad.inner_text("main")
    page = _login(browser, served.url, remote.token("alice"))
    assert page.inner_text("#whoami") == "alice"
    page.goto(f"{served.url}/tasks/tiny")
    assert "no scored submissions yet" in page.inner_text("#board")
    name = run_session(cli, folder)
    cli("submit", name, "1")
    page.wait_for_function("() => document.querySelector('#board').innerText.includes('alice/tiny/1')", timeout=30000)
    _shot(page, "board")
    csv_text = page.request.get(f"{served.url}/tasks/tiny/board.csv").text()
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    as_json = [flat_row(r) for r in cli.json("board", "tiny")]  # an interval [low, high] is two CSV columns
    assert [list(r) for r in rows] == [list(map(str, r)) for r in as_json]  # same columns
    assert [{k: "" if v is None else str(csv_cell(v)) for k, v in r.items()} for r in as_json] == rows  # same
    #                                                            values (text that a spreadsheet would run: 'text)
    page.click("text=Log out")
    page.wait_for_url(f"{served.url}/login")
    page.goto(f"{served.url}/sessions")
    assert "/login" in page.url


def test_a_running_session_shows_its_log_growing_and_its_graph_gaining_points(browser, site, cli):
    served, remote, folder = site
    page = _login(browser, served.url, remote.token("alice"))
    out = cli("run", "-d", "tiny", "-a", "--epochs 12 --sleep 1", folder).stdout
    name = out.split()[1]
    page.goto(f"{served.url}/sessions/{name}")
    page.wait_for_function("() => document.querySelector('#log').textContent.includes('train files')", timeout=60000)
    page.wait_for_selector(".chart[data-metric='train/loss']", timeout=60000)
    first = int(page.get_attribute(".chart[data-metric='train/loss']", "data-points"))
    page.wait_for_function(
        f"() => +document.querySelector(\".chart[data-metric='train/loss']\").dataset.points > {first}", timeout=60000)
    page.wait_for_function("() => document.querySelector('#log').textContent.includes('done training')", timeout=60000)
    page.wait_for_function("() => document.querySelector('#session-status').innerText.startsWith('succeeded')",
                           timeout=30000)
    page.wait_for_function(  # the chart's next refresh after the end has every point, then it stops
        "() => document.querySelector(\".chart[data-metric='train/loss']\").dataset.points === '12'", timeout=30000)
    _shot(page, "session")


def test_two_sessions_graphs_overlaid_and_another_users_session_refused(browser, site, cli):
    served, remote, folder = site
    a = run_session(cli, folder, "-a", "--epochs 3")
    b = run_session(cli, folder, "-a", "--epochs 5")
    page = _login(browser, served.url, remote.token("alice"))
    page.goto(f"{served.url}/sessions")
    page.check(f"input[value='{a}']")
    page.check(f"input[value='{b}']")
    page.click("#compare")
    page.wait_for_selector(".chart[data-metric='train/loss']")
    legend = page.inner_text(".chart[data-metric='train/loss']")
    assert a in legend and b in legend
    assert page.get_attribute(".chart[data-metric='train/loss']", "data-points") == "8"  # 3 + 5 points
    cli("run", "-d", "tiny", folder, user="bob")
    response = page.goto(f"{served.url}/sessions/bob/tiny/1")
    assert response.status == 404 and "unknown session 'bob/tiny/1'" in page.inner_text("main")
    response = page.goto(f"{served.url}/sessions/bob/tiny/1/metrics.json")
    assert response.status == 404


def test_a_submission_page_shows_its_phases_and_reason(browser, site, cli):
    served, remote, folder = site
    name = run_session(cli, folder)
    dry = cli.json("submit", "-t", name, "1")
    page = _login(browser, served.url, remote.token("alice"))
    page.goto(f"{served.url}/submissions/{dry['id']}")
    assert page.inner_text("#status").startswith("succeeded") and "dry run" in page.inner_text("#status")
    assert "loaded /nsml/checkpoints/1" in page.inner_text("#infer-log")  # own dry run: its log is shown
    _shot(page, "submission")
    real = cli.json("submit", name, "1")
    page.goto(f"{served.url}/submissions/{real['id']}")
    assert "organizers only" in page.inner_text("main")  # a real submit's infer log is not the participant's
    page.goto(f"{served.url}/sessions/{name}")
    page.fill("input[name=checkpoint]", "0")
    page.click("#submit")  # a dry run from the page
    page.wait_for_url(f"{served.url}/submissions/*")
    for _ in range(60):
        if not page.inner_text("#status").startswith(("queued", "running")):
            break
        time.sleep(0.5)
        page.reload()
    assert page.inner_text("#status").startswith("succeeded")


def test_an_organizer_hides_an_entry_marks_a_baseline_and_rescores_after_a_dry_run(browser, site, cli):
    served, remote, folder = site
    name = run_session(cli, folder)
    cli("submit", name, "1")
    bob = cli("run", "-d", "tiny", participant(Path(folder).parent / "bob", NSML_MAIN), user="bob").stdout.split()[1]
    cli("logs", "-f", bob, user="bob")
    cli("submit", bob, "1", user="bob")
    alice = _login(browser, served.url, remote.token("alice"))
    alice.goto(f"{served.url}/tasks/tiny")
    assert alice.locator("#board tr[data-user]").count() == 2
    assert alice.locator("button.hide").count() == 0 and alice.locator("#hidden").count() == 0  # not hers to do

    org = _login(browser, served.url, remote.token(ORGANIZER))
    org.goto(f"{served.url}/tasks/tiny")
    org.click("tr[data-user='bob'] button.hide")
    org.wait_for_url(f"{served.url}/tasks/tiny")
    assert org.locator("#board tr[data-user='bob']").count() == 0  # dropped from the board ...
    assert "bob" in org.inner_text("#hidden")  # ... kept, and shown to organizers with who hid it
    alice.reload()
    assert alice.locator("#board tr[data-user]").count() == 1 and "bob" not in alice.inner_text("main")
    assert [r["user"] for r in cli.json("board", "tiny")] == ["alice"]  # the same board everywhere

    org.click("tr[data-user='alice'] button.mark")
    org.wait_for_url(f"{served.url}/tasks/tiny")
    assert "baseline" in org.inner_text("#board tr[data-user='alice']")
    assert cli.json("board", "tiny")[0]["baseline"] is True

    org.click("#rescore")
    assert "would change" in org.inner_text("#rescore-summary")  # a dry run first
    org.click("#do-rescore")
    assert "type the task's name" in org.inner_text("main")  # not confirmed: nothing done
    org.fill("#confirm", "tiny")
    org.click("#do-rescore")
    assert "changed" in org.inner_text("#rescore-summary") and "would" not in org.inner_text("#rescore-summary")
    org.goto(f"{served.url}/audit")
    actions = org.inner_text("#audit")
    for action in ("hide", "baseline", "rescore"):
        assert action in actions
    assert ORGANIZER in actions
    org.goto(f"{served.url}/tasks/tiny")
    org.click("#hidden button.unhide")
    org.wait_for_url(f"{served.url}/tasks/tiny")
    assert org.locator("#board tr[data-user='bob']").count() == 1
    response = alice.goto(f"{served.url}/audit")
    assert response.status == 403


CONTEST = """
name = "cup"
[teams]
red = ["alice"]
blue = ["bob"]
[[rounds]]
name = "r1"
tasks = ["tiny"]
start = 2026-07-01T00:00:00
end = 2026-07-02T00:00:00
public_fraction = 0.5
split_seed = 0
qualify = { top = 1 }
"""


def test_round_boards_private_tab_only_after_close_and_contest_page_shows_qualifiers(browser, site, cli, tmp_path):
    served, remote, folder = site
    with open(tmp_path / "tiny" / "task.toml", "a") as fh:  # a round's task splits its test set
        fh.write('\n[split]\nlabel = "lines"\nprediction = "lines"\n')
    spec = tmp_path / "cup.toml"
    spec.write_text(CONTEST)
    cli("contest", "clock", "2026-07-01T01:00:00", user=ORGANIZER)
    cli("contest", "create", spec, user=ORGANIZER)
    name = run_session(cli, folder)
    cli("submit", name, "1")
    alice = _login(browser, served.url, remote.token("alice"))
    alice.goto(f"{served.url}/tasks/tiny")
    assert "red" in alice.inner_text("#board") and "Private rank" not in alice.inner_text("#board")
    alice.goto(f"{served.url}/tasks/tiny?tab=private")
    assert "hidden until the round is closed" in alice.inner_text("main") and "Private rank" not in \
        alice.inner_text("#board")
    alice.goto(f"{served.url}/sessions/{name}")  # a page with a form: alice's own CSRF token
    token = alice.locator("input[name=csrf]").first.get_attribute("value")
    forged = alice.request.post(f"{served.url}/rounds/cup/r1/close", form={"csrf": token, "force": "1"})
    assert forged.status == 403 and "organizer command" in forged.text() and "close it now" not in forged.text()
    assert str(tmp_path) not in forged.text()  # no path of the server's machine
    org = _login(browser, served.url, remote.token(ORGANIZER))
    org.goto(f"{served.url}/tasks/tiny?tab=private")
    assert "Private rank" in org.inner_text("#board")  # organizers see it before close
    org.goto(f"{served.url}/contests")
    org.click("a.close")
    assert "2026-07-02 00:00:00 UTC" in org.inner_text("#round-state")  # the round is open until then
    org.click("#do-close")  # the round is not over: not without ticking "close it now"
    assert org.locator("#closed").count() == 0 and "/close" in org.url
    org.check("#force")
    org.click("#do-close")
    assert "is closed" in org.inner_text("#closed") and "open for 23h" in org.inner_text("#cut-short")
    alice.goto(f"{served.url}/tasks/tiny?tab=private")
    assert "Private rank" in alice.inner_text("#board")  # revealed to everyone after close
    alice.goto(f"{served.url}/contests")
    assert alice.inner_text("td.qualifiers") == "red" and alice.locator("a.close").count() == 0


def test_login_never_redirects_off_site(browser, site):
    served, remote, _folder = site
    page = browser.new_page()
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        page.goto(f"{served.url}/login?next={target}")
        page.fill("#token", remote.token("alice"))
        page.click("#login")
        page.wait_for_url(f"{served.url}/tasks")
