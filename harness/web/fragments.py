"""The two parts of the dashboard that refresh in place, built as node trees (web/nodes.py): a task's board (a
users' board, or a round's Public or Private tab) and a session's facts. The page renders the tree once as HTML;
static/refresh.js fetches the same tree as JSON every few seconds and builds it as DOM nodes, so the first paint
and every refresh come from this one place, and participant text (team, user, session names, memos, reasons) is
only ever a text node."""
from __future__ import annotations

from urllib.parse import quote

from harness.core.display import LADDER_NOTE, interval_text, shakeup_text

from .nodes import Node, el
from .views import DASH, arrow, fmt, utc

BOARD_EVERY_MS = 5000
FACTS_EVERY_MS = 3000
INTERVAL_TITLE = "the score's 95% bootstrap interval over the test examples"
PAIRED = "(paired bootstrap: under 90% sure the upper one is better)"
TIE_TITLE = f"entries the test set cannot tell apart {PAIRED}"
PUBLIC_INTERVAL_TITLE = "the public score's 95% bootstrap interval over the public half's examples"
PUBLIC_TIE_TITLE = f"entries the public half cannot tell apart {PAIRED}"


def _rank(value) -> str:
    return DASH if value is None else str(value)


def _score(value) -> str:
    return DASH if value is None else fmt(value)


def _classes(*names: str) -> str | None:
    """A class attribute of the NAMES that are not empty (None: no attribute)."""
    return " ".join(n for n in names if n) or None


def _labels(r: dict) -> list:
    """After a name: its baseline tag and why it is unranked, when it is."""
    out = []
    if r.get("baseline"):
        out += [" ", el("span", "baseline", class_="tag")]
    if r.get("reason"):
        out += [" ", el("span", r["reason"], class_="hint reason")]
    return out


def _head(*cells) -> Node:
    """A header row of CELLS: a text, or (text, title)."""
    return el("thead", el("tr", *(el("th", *c[:1], title=c[1]) if isinstance(c, tuple) else el("th", c)
                                  for c in cells if c)))


def _moderate(task: str, r: dict) -> Node:
    """An organizer's buttons on a users' board row: hide its submission, mark it (or not) a baseline."""
    sub = r.get("submission") or r.get("public_submission")
    base = f"/tasks/{quote(task, safe='')}"
    hide = el("form", el("input", type="hidden", name="submission", value=sub),
              el("button", "Hide", type="submit", class_="hide", title=f"hide submission {sub} from the board"),
              method="post", action=f"{base}/hide", class_="inline")
    mark = el("form", el("input", type="hidden", name="name", value=r.get("user") or r.get("team")),
              el("input", type="hidden", name="team", value="1") if r.get("team") else None,
              el("input", type="hidden", name="on", value="0" if r.get("baseline") else "1"),
              el("button", "Not baseline" if r.get("baseline") else "Baseline", type="submit", class_="mark"),
              method="post", action=f"{base}/baseline", class_="inline")
    return el("td", hide, mark, class_="moderate")


def _users_board(task: str, board: dict, who: dict) -> list:
    rows = board["rows"]
    spans = any(r.get("interval") for r in rows)
    ties = any(r.get("tie") for r in rows)
    head = _head("Rank", "User", "Score", spans and ("95% interval", INTERVAL_TITLE), "Session", "Checkpoint",
                 "Submits", "Last submit", ties and ("Tied", TIE_TITLE), who["organizer"] and "Moderate")
    body = []
    for r in rows:
        body.append(el(
            "tr", el("td", _rank(r.get("rank"))), el("td", r["user"], *_labels(r)),
            el("td", _score(r.get("score")), class_="num"),
            el("td", interval_text(r.get("interval")), class_="num interval") if spans else None,
            el("td", r.get("session") or ""), el("td", r.get("checkpoint") or ""),
            el("td", r.get("submits"), class_="num"), el("td", utc(r.get("last_submit"))),
            el("td", r.get("tie") or "", class_="tie") if ties else None,
            _moderate(task, r) if who["organizer"] else None,
            class_=_classes("mine" if r["user"] == who["user"] else "", "baseline" if r.get("baseline") else ""),
            data_user=r["user"]))
    out = [el("table", head, el("tbody", *(body or [_empty(7)])), class_="grid board")]
    note = next((r["interval_note"] for r in rows if r.get("interval_note")), None)
    if rows and not spans and note:
        out.append(el("p", note, class_="hint", id="interval-note"))
    return out


def _empty(span: int) -> Node:
    return el("tr", el("td", "no scored submissions yet", colspan=span))


def _round_row(r: dict, private: bool) -> Node:
    team = el("td", r["team"], *_labels(r), class_="team")
    if private:
        cells = [el("td", _rank(r.get("private_rank")), class_="rank"), team,
                 el("td", _score(r.get("private")), class_="num"),
                 el("td", interval_text(r.get("private_interval")), class_="num interval"),
                 el("td", _rank(r.get("public_rank"))), el("td", _score(r.get("public")), class_="num"),
                 el("td", interval_text(r.get("public_interval")), class_="num interval"),
                 el("td", arrow(r.get("shakeup"))), el("td", r.get("private_tie") or "", class_="tie")]
    else:
        cells = [el("td", _rank(r.get("public_rank")), class_="rank"), team,
                 el("td", _score(r.get("public")), class_="num"),
                 el("td", interval_text(r.get("public_interval")), class_="num interval"),
                 el("td", r.get("tie") or "", class_="tie")]
    ranked = (r.get("private_rank") if private else r.get("public_rank")) is not None
    return el("tr", *cells, el("td", r.get("submits"), class_="num"), el("td", utc(r.get("last_submit"))),
              class_=_classes("baseline" if r.get("baseline") else "", "" if ranked else "unranked"),
              data_team=r["team"])


def _round_board(task: str, board: dict) -> list:
    private = board.get("view") == "private"
    page = f"/tasks/{quote(task, safe='')}"
    out = [el("p", el("a", "Public", href=f"{page}?tab=public", id="tab-public", class_=None if private else "on"),
              " ", el("a", "Private", href=f"{page}?tab=private", id="tab-private", class_="on" if private else None),
              " ", el("span", f"{board.get('round')} ({board.get('status')})", class_="hint"), class_="tabs")]
    if board.get("hidden_reason"):
        out.append(el("p", board["hidden_reason"], class_="hint"))
    if board.get("public_board") == "ladder" and not private:
        out.append(el("p", LADDER_NOTE, class_="hint", id="ladder-note"))
    if private and board.get("shakeup"):
        out.append(el("p", shakeup_text(board["shakeup"], board.get("status") == "closed"), class_="hint",
                      id="shakeup"))
    if private:
        head = _head("Private rank", "Team", "Private", "Private 95%", "Public rank", "Public", "Public 95%",
                     "Shake-up", ("Tied", "entries the private half cannot tell apart"), "Submits", "Last submit")
    else:
        head = _head("Rank", "Team", "Public", ("95% interval", PUBLIC_INTERVAL_TITLE), ("Tied", PUBLIC_TIE_TITLE),
                     "Submits", "Last submit")
    body = [_round_row(r, private) for r in board["rows"]] or [_empty(11)]
    out.append(el("table", head, el("tbody", *body), class_="grid board", data_view=board.get("view")))
    return out


def board_tree(task: str, tab: str, board: dict, who: dict) -> Node:
    """The board TAB of TASK shows WHO (whoami: user, organizer), refreshed from /tasks/TASK/board.json?tab=TAB."""
    parts = _round_board(task, board) if board["kind"] == "round" else _users_board(task, board, who)
    return el("div", *parts, id="board", data_refresh=f"/tasks/{quote(task, safe='')}/board.json?tab={tab}",
              data_every=BOARD_EVERY_MS)


def facts_tree(s: dict) -> Node:
    """A session's facts (status, entry, GPUs, summary, memo), refreshed from /sessions/NAME/facts.json."""
    status = el("dd", s["status"], f" ({s['reason']}: {s.get('message')})" if s.get("reason") else None,
                class_=f"status-{s['status']}", id="session-status")
    node = s.get("node")
    gpus = el("dd", ",".join(str(g) for g in s["gpu_ids"]) if s.get("gpu_ids") else "none",
              *([" on node ", el("code", str(node["id"])[:8], title=node["id"]), f" ({node.get('address')})"]
                if node else []))
    summary = " ".join(f"{k}={fmt(v)}" for k, v in (s.get("summary") or {}).items())
    facts = el("dl", el("dt", "Status"), status,
               el("dt", "Entry"), el("dd", el("code", " ".join([s["entry"], *(s.get("args") or [])]))),
               el("dt", "GPUs"), gpus, el("dt", "Summary"), el("dd", summary), el("dt", "Memo"),
               el("dd", s.get("memo") or ""), class_="facts")
    return el("div", facts, id="facts", data_refresh=f"/sessions/{quote(s['name'], safe='/')}/facts.json",
              data_every=FACTS_EVERY_MS)
