// The parts of a page that refresh in place (a board, a session's facts): each element with data-refresh (a path
// of this site answering a node tree as JSON, web/nodes.py) and data-every (milliseconds) is fetched again on that
// beat while the tab is visible and replaced when its tree changed. The tree is built with createElement, text
// nodes and setAttribute, each tag and attribute name checked against the lists the page's <meta name="nodes">
// carries (the server's own lists), each URL attribute checked to be a path of this site: a participant's text
// (a team name, a memo) is only ever a text node. A form that posts gets the page's own CSRF field.
(function () {
  const meta = document.querySelector('meta[name="nodes"]');
  if (!meta) return;
  const rules = JSON.parse(meta.content);
  const tags = new Set(rules.tags), voids = new Set(rules.void), attrs = new Set(rules.attrs);
  const urls = new Set(rules.urls);

  function sitePath(value) {
    return value.startsWith("/") && !value.startsWith("//") && !value.includes("\\");
  }

  function build(node, csrf) {
    if (typeof node === "string") return document.createTextNode(node);
    if (!tags.has(node.tag)) throw new Error("refused tag " + node.tag);
    const out = document.createElement(node.tag);
    for (const [name, value] of Object.entries(node.attrs)) {
      if (!attrs.has(name) || typeof value !== "string") throw new Error("refused attribute " + name);
      if (urls.has(name) && !sitePath(value)) throw new Error("refused URL in " + name);
      out.setAttribute(name, value);
    }
    if (voids.has(node.tag)) return out;
    if (node.tag === "form" && node.attrs.method === "post" && csrf) out.appendChild(csrf.cloneNode(false));
    for (const child of node.children) out.appendChild(build(child, csrf));
    return out;
  }

  const STILL_MS = 1500, movedAt = {};
  for (const kind of ["pointermove", "pointerdown"]) {
    document.addEventListener(kind, e => {
      const part = e.target instanceof Element && e.target.closest("[data-refresh][id]");
      if (part) movedAt[part.id] = Date.now();
    }, {passive: true});
  }

  function watch(id) {
    let shown = null;
    async function once() {
      const here = document.getElementById(id);
      if (!here || document.visibilityState === "hidden") return here;
      const got = await fetch(here.dataset.refresh, {headers: {Accept: "application/json"}});
      if (got.status === 401) {  // logged out meanwhile: to the login page, back here after
        location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
        return null;
      }
      const text = got.ok ? await got.text() : null;
      if (text === null || text === shown) return here;
      // not while the pointer moves over it or a control inside has the focus: a row never moves under a click
      // (an organizer's Hide landing on the row that moved up); the next beat replaces it
      if (Date.now() - movedAt[id] < STILL_MS || (here.contains(document.activeElement) &&
                                                  document.activeElement !== document.body)) return here;
      const fresh = build(JSON.parse(text), document.querySelector('input[name="csrf"]'));
      if (fresh.id !== id) throw new Error("refused: the answer is not #" + id);
      shown = text;
      here.replaceWith(fresh);
      return fresh;
    }
    function next(el) {  // at most one refresh a second, whatever data-every says
      const every = Math.max(1000, Number(el && el.dataset.every) || 5000);
      if (el) setTimeout(() => once().catch(() => document.getElementById(id)).then(next), every);
    }
    next(document.getElementById(id));
  }

  for (const el of document.querySelectorAll("[data-refresh][id]")) watch(el.id);
})();
