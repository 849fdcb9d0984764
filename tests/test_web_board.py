"""The dashboard as a Kaggle or Codabench user reads it (a real headless Chromium, as in test_web.py): a closed
round's Public tab ranked by public scores and its Private tab by private ones, entered teams without a valid
submission below the ranked with a dash and why; the best-score chart beside a board draws the board's entries
and follows it, its legend showing values without a hover; every time shown says its zone; a session's log above
its checkpoints however many there are."""
import re

import pytest
from helpers import NSML_MAIN, ORGANIZER, make_tiny_task, participant, run_session
from test_web import _login, _shot, browser, site  # noqa: F401 (fixtures)

from harness.web.fragments import board_tree
from harness.web.nodes import to_html

# 15 test numbers, half public (seed 0): threshold 70 scores 1.0 public / 0.714 private, threshold 45 scores
# 0.875 public / 1.0 private, so the public order (red, blue) is the private order reversed.
CONTEST = """
name = "cup"
[teams]
red = ["alice"]
blue = ["bob"]
green = ["carol"]
[[rounds]]
name = "r1"
tasks = ["tiny"]
start = 2026-07-01T00:00:00
end = 2026-07-02T00:00:00
public_fraction = 0.5
split_seed = 0
"""
PUBLIC_ORDER, PRIVATE_ORDER = ["red", "blue", "green"], ["blue", "red", "green"]
TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?")
ZONE = re.compile(r" UTC|Z|[+-]\d{2}:\d{2}")


def _session(cli, tmp_path, user: str, threshold: int) -> str:
    folder = participant(tmp_path / f"code-{user}", NSML_MAIN)
    out = cli("run", "-d", "tiny", "-e", "main.py", "-a", f"--epochs 1 --threshold {threshold}", folder,
              user=user).stdout
    name = out.split()[1]
    cli("logs", "-f", name, user=user)
    return name


@pytest.fixture
def closed_round(cli, served, remote_cli, tmp_path):
    """Round cup/r1 of task tiny, closed: red (alice) leads the public board, blue (bob) the private one, green
    (carol) entered and never submitted."""
    task = make_tiny_task(tmp_path / "tiny")
    with open(task / "task.toml", "a") as fh:  # a round's task splits its test set
        fh.write('\n[split]\nlabel = "lines"\nprediction = "lines"\n')
    cli("dataset", "add", task, user=ORGANIZER)
    (tmp_path / "cup.toml").write_text(CONTEST)
    cli("contest", "clock", "2026-07-01T01:00:00", user=ORGANIZER)
    cli("contest", "create", tmp_path / "cup.toml", user=ORGANIZER)
    subs = {}
    for user, threshold in (("alice", 70), ("bob", 45)):
        subs[user] = cli.json("submit", _session(cli, tmp_path, user, threshold), "0", user=user)
    cli("contest", "clock", "2026-07-02T01:00:00", user=ORGANIZER)
    cli("contest", "close", "cup/r1", user=ORGANIZER)
    return served, remote_cli, subs


def _teams(page) -> list[str]:
    return [r.get_attribute("data-team") for r in page.locator("#board tbody tr[data-team]").all()]


def _column(page, n: int) -> list[str]:
    return [t.strip() for t in page.locator(f"#board tbody tr td:nth-child({n})").all_inner_texts()]


def test_a_closed_rounds_public_and_private_tabs_rank_by_their_own_scores(browser, closed_round):  # noqa: F811
    served, remote, _subs = closed_round
    page = _login(browser, served.url, remote.token("carol"))
    page.goto(f"{served.url}/tasks/tiny")  # the Public tab
    headers = page.locator("#board thead th").all_inner_texts()
    assert headers[:3] == ["Rank", "Team", "Public"] and "Private" not in headers
    assert _teams(page) == PUBLIC_ORDER
    assert _column(page, 1) == ["1", "2", "—"] and _column(page, 3) == ["1.0", "0.875", "—"]
    assert "no submission" in page.inner_text("#board tr[data-team='green']")  # entered, never submitted
    _shot(page, "round-board-public")

    page.click("#tab-private")
    page.wait_for_url(f"{served.url}/tasks/tiny?tab=private")
    headers = page.locator("#board thead th").all_inner_texts()
    assert headers[:3] == ["Private rank", "Team", "Private"] and "Shake-up" in headers
    assert _teams(page) == PRIVATE_ORDER
    assert _column(page, 1) == ["1", "2", "—"] and _column(page, 3) == ["1.0", "0.714286", "—"]
    assert _column(page, 5) == ["2", "1", "—"] and _column(page, 8)[:2] == ["▲1", "▼1"]
    page.wait_for_function("() => document.querySelector('#history-chart').dataset.lines === '2'", timeout=30000)
    _shot(page, "round-board-private")
    with page.expect_response(lambda r: "/tasks/tiny/board.json?tab=private" in r.url, timeout=15000):
        pass  # refresh.js refreshes the tab it shows, not the other one
    page.wait_for_timeout(300)
    assert _teams(page) == PRIVATE_ORDER

    page.click("#tab-public")
    page.wait_for_url(f"{served.url}/tasks/tiny?tab=public")
    assert _teams(page) == PUBLIC_ORDER


def test_the_board_chart_draws_the_boards_entries_with_values_in_its_legend_without_a_hover(
        browser, closed_round):  # noqa: F811
    served, remote, _subs = closed_round
    page = _login(browser, served.url, remote.token("carol"))
    page.goto(f"{served.url}/tasks/tiny?tab=private")
    page.wait_for_function("() => document.querySelector('#history-chart').dataset.lines === '2'", timeout=30000)
    values = page.locator("#history-chart .u-legend .u-value").all_inner_texts()
    assert values == ["latest", "1.0", "0.875"]  # each team's best public score, no cursor on the chart
    labels = page.locator("#history-chart .u-legend .u-label").all_inner_texts()
    assert labels == ["Time (UTC)", "red", "blue"]  # the board's ranked teams, best public first; green has none


def test_the_chart_follows_the_board_and_session_legends_show_values(browser, site, cli):  # noqa: F811
    served, remote, folder = site
    page = _login(browser, served.url, remote.token("alice"))
    page.goto(f"{served.url}/tasks/tiny")
    page.wait_for_function("() => document.querySelector('#history-chart').textContent.includes('no scored')")
    name = run_session(cli, folder, "-a", "--epochs 3")
    cli("submit", name, "2")
    page.wait_for_function("() => document.querySelector('#board').innerText.includes('alice')", timeout=30000)
    page.wait_for_function("() => document.querySelector('#history-chart').dataset.lines === '1'", timeout=30000)
    assert page.locator("#history-chart .u-legend .u-value").all_inner_texts() == ["latest", "1.0"]

    page.goto(f"{served.url}/sessions/{name}")
    page.wait_for_selector(".chart[data-metric='train/loss'] .u-legend")
    values = page.locator(".chart[data-metric='train/loss'] .u-legend .u-value").all_inner_texts()
    assert values == ["latest", "0.333333"]  # the last report of train/loss (1/3), without a hover
    page.hover(".chart[data-metric='train/loss'] .u-over", position={"x": 2, "y": 2})
    assert page.locator(".chart[data-metric='train/loss'] .u-legend .u-value").all_inner_texts() == ["0", "1.0"]
    page.mouse.move(0, 0)  # the cursor left: the latest values again, not "--"
    assert page.locator(".chart[data-metric='train/loss'] .u-legend .u-value").all_inner_texts() == values


def _times_have_zones(text: str) -> int:
    found = list(TIME.finditer(text))
    for m in found:
        assert ZONE.match(text, m.end()), f"a time without its zone: {text[max(0, m.start() - 40):m.end() + 20]!r}"
    return len(found)


def test_every_time_the_dashboard_shows_says_its_zone(browser, closed_round, cli):  # noqa: F811
    served, remote, subs = closed_round
    page = _login(browser, served.url, remote.token("alice"))
    name = cli.json("ps", "-a", user="alice")[0]["name"]
    for path in ("/tasks/tiny", "/tasks/tiny?tab=private", "/contests", "/submissions?task=tiny",
                 f"/submissions/{subs['alice']['id']}", "/sessions", f"/sessions/{name}"):
        page.goto(f"{served.url}{path}")
        assert _times_have_zones(page.inner_text("main")) >= 1, path
    cli("hide", str(subs["bob"]["id"]), user=ORGANIZER)  # the hidden entries' "when", and an audit line
    org = _login(browser, served.url, remote.token(ORGANIZER))
    for path in ("/tasks/tiny", "/audit", "/contests"):
        org.goto(f"{served.url}{path}")
        assert _times_have_zones(org.inner_text("main")) >= 1, path


def test_a_session_page_shows_its_log_above_a_long_checkpoint_table(browser, site, cli):  # noqa: F811
    served, remote, folder = site
    name = run_session(cli, folder, "-a", "--epochs 60")  # 60 checkpoints
    page = _login(browser, served.url, remote.token("alice"))
    page.goto(f"{served.url}/sessions/{name}")
    page.wait_for_function("() => document.querySelector('#log').textContent.includes('done training')", timeout=30000)
    log, table = page.locator("#log").bounding_box(), page.locator("#checkpoints").bounding_box()
    assert log["y"] < table["y"] and log["y"] < 900  # in the first screen, above the checkpoints
    rows = page.locator("#checkpoints tbody tr td:first-child").all_inner_texts()
    assert rows[:2] == ["59", "58"] and len(rows) == 20  # the newest, newest first
    assert page.inner_text("#older-checkpoints summary") == "40 older checkpoints"
    _shot(page, "session-many-checkpoints")
    page.click("#older-checkpoints summary")
    assert page.locator("#older-checkpoints tbody tr").count() == 40 and \
        page.locator("#older-checkpoints tbody tr td:first-child").last.inner_text() == "0"


def test_board_rows_without_a_reason_or_a_rank_render():
    """A round board's rows from a service that gives no `reason` (or gives one), ranked or not, render: a dash
    for what is not ranked, the reason as text."""
    board = {"kind": "round", "round": "cup/r1", "status": "closed", "private_shown": True, "view": "private",
             "rows": [{"team": "red", "public_rank": 1, "public": 1.0, "private_rank": 1, "private": 0.5,
                       "shakeup": 0, "submits": 1, "last_submit": "2026-07-01T01:00:00", "baseline": False},
                      {"team": "<b>x</b>", "public_rank": None, "public": None, "private_rank": None,
                       "private": None, "shakeup": None, "submits": 0, "last_submit": None, "baseline": False,
                       "reason": "no valid submission (1 <i>failed</i>)"}]}
    who = {"user": "alice", "organizer": False}
    html = to_html(board_tree("tiny", "private", board, who))
    assert "2026-07-01 01:00:00 UTC" in html and "&lt;b&gt;x&lt;/b&gt;" in html and "<i>" not in html
    assert html.count('class="rank">—<') == 1 and "1 &lt;i&gt;failed&lt;/i&gt;" in html
    public = to_html(board_tree("tiny", "public", {**board, "view": "public"}, who))
    assert "Private rank" not in public and public.count('class="rank">—<') == 1
