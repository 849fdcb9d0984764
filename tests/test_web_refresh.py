"""The parts of the dashboard that refresh in place (a board, a session's facts) are node trees (web/nodes.py) that
two renderers build: to_html for the first paint, static/refresh.js for every refresh. Whatever a participant
names a team, a session or writes in a memo or a reason, both renderers make it a text node; the script refuses a
tree outside the server's lists (a tag, an attribute, a URL off this site, another element's id) and keeps the
part it had; a viewer whose login ended is sent to log in again."""
import json
from html.parser import HTMLParser

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_web import _login, browser  # noqa: F401 (a fixture)
from test_web_hostile import CSP_WATCH, IMG, assert_inert, hostile_site  # noqa: F401 (a fixture)

from harness.web.fragments import board_tree, facts_tree
from harness.web.nodes import ATTRS, TAGS, el, to_html


class _Tags(HTMLParser):
    """What a browser would build from HTML: its tags, attribute names and text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.update(name for name, _ in attrs)

    def handle_data(self, data):
        self.text.append(data)


def _texts(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    return [t for child in node["children"] for t in _texts(child)]


@pytest.mark.parametrize("tag, attrs", [("script", {}), ("iframe", {}), ("a", {"onclick": "x"}),
                                        ("a", {"href": "javascript:alert(1)"}), ("a", {"href": "//evil.example/"}),
                                        ("a", {"href": "/\\evil.example"}), ("form", {"action": "https://x.example"}),
                                        ("div", {"style": "color:red"}), ("div", {"data_refresh": "http://x/"})])
def test_a_node_outside_the_lists_is_refused_where_it_is_made(tag, attrs):
    with pytest.raises(ValueError, match="web.nodes|path of this site"):
        el(tag, "x", **attrs)


def test_only_a_node_el_made_is_markup_and_urls_are_checked_again_as_it_renders():
    """A dict that looks like a node (a JSON column shown in a cell, one day) is its text: never a form that gets
    the viewer's CSRF field, never a javascript: link; a node changed after el checked it stops the render."""
    forged = {"tag": "form", "attrs": {"method": "post", "action": "https://evil.example/"}, "children": []}
    html = to_html(el("td", forged, {"tag": "a", "attrs": {"href": "javascript:alert(1)"}}), "<input csrf>")
    assert "<form" not in html and "<a" not in html and "<input" not in html and "&#39;form&#39;" in html
    node = el("a", "x", href="/ok")
    node["attrs"]["href"] = "javascript:alert(1)"
    with pytest.raises(ValueError, match="not a path here"):
        to_html(node)


def test_a_form_that_posts_gets_the_viewers_csrf_field_and_text_is_escaped():
    form = el("form", el("input", type="hidden", name="n", value='"><b>'), "<i>", method="post", action="/x")
    html = to_html(form, '<input type="hidden" name="csrf" value="T">')
    assert html == ('<form method="post" action="/x"><input type="hidden" name="csrf" value="T">'
                    '<input type="hidden" name="n" value="&#34;&gt;&lt;b&gt;">&lt;i&gt;</form>')


hostile = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(team=hostile, user=hostile, reason=hostile, memo=hostile, key=hostile)
def test_participant_text_is_only_ever_text_in_both_renderers(team, user, reason, memo, key):
    """Every field a participant chooses, on a round board (both tabs), a users' board (an organizer's, with its
    forms) and a session's facts: the HTML holds only the listed tags and attributes and reads back as the same
    text, and the JSON tree holds it as a text child, so every other viewer keeps being served the page."""
    rows = [{"team": team, "public_rank": 1, "public": 0.5, "private_rank": None, "private": None, "submits": 1,
             "last_submit": "2026-07-01T01:00:00", "reason": reason, "baseline": True, "shakeup": None}]
    round_board = {"kind": "round", "round": team, "status": "closed", "private_shown": True, "rows": rows,
                   "hidden_reason": reason, "shakeup": None}
    users = {"kind": "users", "rows": [{"user": user, "rank": None, "score": None, "session": f"{user}/t/1",
                                        "checkpoint": memo, "submits": 2, "last_submit": None, "reason": reason,
                                        "submission": 7, "interval_note": memo}]}
    facts = {"name": f"{user}/t/1", "status": "failed", "reason": reason, "message": memo, "entry": key,
             "args": [memo], "gpu_ids": [], "summary": {key: 0.5}, "memo": memo, "node": {"id": key, "address": key}}
    trees = [board_tree("t", "public", {**round_board, "view": "public"}, {"user": "x", "organizer": False}),
             board_tree("t", "private", {**round_board, "view": "private"}, {"user": "x", "organizer": False}),
             board_tree("t", "public", users, {"user": user, "organizer": True}), facts_tree(facts)]
    for tree in trees:
        parser = _Tags()
        parser.feed(to_html(tree, ""))
        parser.close()
        assert set(parser.tags) <= TAGS and parser.attrs <= ATTRS
        assert "".join(parser.text) == "".join(_texts(tree))
        again = json.loads(json.dumps(tree))
        assert again == tree and all(isinstance(t, str) for t in _texts(again))
    shown = "".join(_texts(trees[0]))
    assert team in shown and reason in shown
    assert memo in "".join(_texts(trees[3])) and key in "".join(_texts(trees[3]))


def test_a_json_part_answers_401_when_the_login_is_gone_and_a_page_redirects(served):
    anonymous = httpx.Client(base_url=served.url)
    part = anonymous.get("/tasks/tiny/board.json")
    assert part.status_code == 401 and part.json()["type"] == "LoginNeeded"
    assert anonymous.get("/sessions/alice/tiny/1/facts.json").status_code == 401
    page = anonymous.get("/tasks/tiny")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/tasks/tiny"


REFUSED_TREES = [
    {"tag": "script", "attrs": {"id": "board"}, "children": ["window.__pwned = 1"]},
    {"tag": "div", "attrs": {"id": "board", "onclick": "alert(1)"}, "children": []},
    {"tag": "div", "attrs": {"id": "board"}, "children": [
        {"tag": "a", "attrs": {"href": "javascript:alert(1)"}, "children": ["x"]}]},
    {"tag": "div", "attrs": {"id": "board", "data-refresh": "//evil.example/board.json"}, "children": []},
    {"tag": "div", "attrs": {"id": "elsewhere"}, "children": []},
    {"tag": "div", "attrs": {"id": "board", "title": 5}, "children": []},
]


def test_refresh_js_builds_only_trees_inside_the_lists_and_sends_a_logged_out_viewer_to_log_in(
        browser, hostile_site, cli):  # noqa: F811
    """The script is a gate of its own: a board.json answer (here from a stand-in route) with a tag, an attribute
    or a URL the server's lists do not hold, or meant for another element, leaves the board as it was; an answer
    inside them replaces it, its markup as text; a 401 sends the viewer to the login page, back here after."""
    served, remote, _folder = hostile_site
    page = _login(browser, served.url, remote.token("alice"))
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.add_init_script(CSP_WATCH)
    good = {"tag": "div", "attrs": {"id": "board", "data-refresh": "/tasks/tiny/board.json", "data-every": "1000"},
            "children": [IMG]}
    answers = [(200, t) for t in REFUSED_TREES] + [(200, good), (401, {"type": "LoginNeeded"})]
    page.route("**/tasks/tiny/board.json*", lambda route: route.fulfill(
        status=answers[0][0], content_type="application/json", body=json.dumps(answers.pop(0)[1])))
    page.goto(f"{served.url}/tasks/tiny")
    page.evaluate("document.getElementById('board').dataset.every = '1000'")
    for _ in REFUSED_TREES:
        with page.expect_response(lambda r: "board.json" in r.url, timeout=15000):
            pass
        page.wait_for_timeout(150)
        assert page.locator("#board table.board").count() == 1  # the board as first painted
    page.wait_for_function(f"() => document.getElementById('board').textContent === {json.dumps(IMG)}",
                           timeout=15000)
    assert page.locator("#board table").count() == 0
    assert_inert(page, dialogs)
    page.wait_for_url(f"{served.url}/login?next=%2Ftasks%2Ftiny", timeout=15000)


def test_a_part_is_not_replaced_while_the_pointer_moves_over_it(browser, hostile_site):  # noqa: F811
    """A row never moves under a click: while the pointer moves over the board (an organizer about to press
    Hide) a changed board waits; still for a moment, it is replaced."""
    served, remote, _folder = hostile_site
    page = _login(browser, served.url, remote.token("alice"))
    changed = {"tag": "div", "attrs": {"id": "board", "data-refresh": "/tasks/tiny/board.json",
                                       "data-every": "1000"}, "children": ["changed"]}
    page.route("**/tasks/tiny/board.json*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(changed)))
    page.goto(f"{served.url}/tasks/tiny")
    page.evaluate("document.getElementById('board').dataset.every = '1000'")
    box = page.locator("#board table").bounding_box()
    answers = []
    page.on("response", lambda r: answers.append(r.url) if "board.json" in r.url else None)
    for step in range(40):  # about 6 s of a pointer moving over the table: several answers come, none replaces it
        page.mouse.move(box["x"] + 5 + step % 7, box["y"] + box["height"] / 2)
        page.wait_for_timeout(150)
    assert len(answers) >= 2 and page.locator("#board table").count() == 1
    page.mouse.move(0, 0)
    page.wait_for_function("() => document.getElementById('board').textContent === 'changed'", timeout=15000)
