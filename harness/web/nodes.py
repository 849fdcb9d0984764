"""The parts of a dashboard page that refresh in place (a board, a session's facts), as a tree of plain nodes that
one of two renderers turns into the page: `to_html` here, for the first paint (and for a browser without
JavaScript), and static/refresh.js, which fetches the same tree as JSON every few seconds and builds it with
createElement and text nodes. No renderer ever parses participant text as HTML: a text child is a text node
(escaped here), a tag and an attribute name come from the lists below (declared here, handed to the script by
`rules_json`), and a URL attribute must be a path of this site.

A node is {"tag": TAG, "attrs": {NAME: TEXT}, "children": [TEXT | node, ...]}, a `Node` that only `el` makes:
any other value given as a child (a dict from a JSON column included) is its text. A form that posts gets its
CSRF field from the renderer (the token is the viewer's, not the tree's)."""
from __future__ import annotations

import json

from markupsafe import Markup

TAGS = frozenset({"div", "p", "span", "code", "a", "table", "thead", "tbody", "tr", "th", "td", "dl", "dt", "dd",
                  "form", "input", "button"})
VOID = frozenset({"input"})
ATTRS = frozenset({"id", "class", "title", "colspan", "type", "name", "value", "method", "action", "href",
                   "data-user", "data-team", "data-view", "data-refresh", "data-every"})
URL_ATTRS = frozenset({"href", "action", "data-refresh"})


def site_path(value: str) -> bool:
    """A path of this site: '/...' and not '//host' nor a backslash a browser reads as '/' (no scheme, so no
    javascript: URL)."""
    return value.startswith("/") and not value.startswith("//") and "\\" not in value


class Node(dict):
    """A node `el` made (and checked): the only dict a renderer reads as markup."""


def el(tag: str, *children, **attrs) -> Node:
    """A node: TAG (one of TAGS) with ATTRS (a trailing _ dropped, other _ as -: class_ -> class, data_team ->
    data-team; a None value leaves the attribute out) and CHILDREN (nodes; anything else is its text; None and ""
    dropped)."""
    if tag not in TAGS:
        raise ValueError(f"node tag {tag!r} is not one of web.nodes.TAGS")
    shown = {}
    for key, value in attrs.items():
        name = key.rstrip("_").replace("_", "-")
        if name not in ATTRS:
            raise ValueError(f"node attribute {name!r} is not one of web.nodes.ATTRS")
        if value is None:
            continue
        if name in URL_ATTRS and not site_path(str(value)):
            raise ValueError(f"node attribute {name}={value!r} is not a path of this site")
        shown[name] = str(value)
    kids = [c if isinstance(c, Node) else str(c) for c in children if c is not None and c != ""]
    return Node(tag=tag, attrs=shown, children=kids)


def _escape(text: str) -> str:
    """TEXT safe in an element and in a double- or single-quoted attribute: the five characters HTML gives a
    meaning there, written as references (markupsafe's escape, without making an object of each text)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
            .replace("'", "&#39;"))


def _write(node: Node | str, csrf: str, out: list[str]) -> None:
    if not isinstance(node, Node):
        out.append(_escape(str(node)))
        return
    tag = node["tag"]
    if tag not in TAGS:  # (el made it, so never; a tree made another way stops here)
        raise ValueError(f"node tag {tag!r} is not one of web.nodes.TAGS")
    out.append(f"<{tag}")
    for name, value in node["attrs"].items():
        if name not in ATTRS or (name in URL_ATTRS and not site_path(value)):  # (el's checks, made again)
            raise ValueError(f"node attribute {name}={value!r} is not one of web.nodes.ATTRS or not a path here")
        out.append(f' {name}="{_escape(value)}"')
    out.append(">")
    if tag in VOID:
        return
    if tag == "form" and node["attrs"].get("method") == "post":
        out.append(csrf)
    for child in node["children"]:
        _write(child, csrf, out)
    out.append(f"</{tag}>")


def to_html(node: Node | str, csrf: Markup | str = "") -> Markup:
    """NODE as HTML: text escaped, each form that posts given CSRF (the viewer's hidden field, already HTML)
    first."""
    out: list[str] = []
    _write(node, str(csrf), out)
    return Markup("".join(out))


def rules_json() -> str:
    """The lists refresh.js builds from (it reads them from the page's <meta name="nodes">): one home."""
    return json.dumps({"tags": sorted(TAGS), "void": sorted(VOID), "attrs": sorted(ATTRS),
                       "urls": sorted(URL_ATTRS)})
