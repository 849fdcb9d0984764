// The graphs of nsml.report: one uPlot chart per metric, every chosen session a line; x by step or wall time;
// exponential smoothing; refreshed every 3 s while a session runs. Series come downsampled (<= 1000 points).
// Participant text (metric keys, session names, the log) goes in as textContent, never as HTML. The legends show
// each line's latest value without a hover (the point under the cursor while hovering).
(function () {
  const box = document.getElementById("charts");
  if (!box) return;
  const names = box.dataset.sessions.split(",").filter(Boolean);
  const colors = ["#0a7d44", "#1f6feb", "#d4380d", "#8250df", "#bf8700", "#0e7490", "#be185d", "#4d7c0f"];
  const xSel = document.getElementById("x"), smooth = document.getElementById("smooth");
  const charts = Object.create(null);  // by metric key: a key named "__proto__" is just a key
  let timer = null;

  // USER/TASK/N as a URL path: each part percent-encoded, the slashes kept
  function pathOf(name) {
    return name.split("/").map(encodeURIComponent).join("/");
  }

  // SESSION's series of KEY (its own property only: "constructor" is a metric key like any other)
  function lineOf(s, key) {
    return s.series && Object.hasOwn(s.series, key) ? s.series[key] : {x: [], y: []};
  }

  function number(v) {  // the one score format (harness.core.display.score_text): 6 significant digits, 1.0 not 1
    if (v == null) return "";
    const text = String(Number(v.toPrecision(6)));
    return /^-?[0-9]+$/.test(text) ? text + ".0" : text;
  }

  function lastOf(ys) {
    for (let i = ys.length - 1; i >= 0; i--) if (ys[i] != null) return ys[i];
    return null;
  }

  // no cursor on the chart (none yet, or it left): the legend shows every line's latest value
  function showLatest(u) {
    if (u.cursor.idx == null) u.setLegend({idx: null});
  }

  function smoothed(ys, a) {
    let acc = null;
    return ys.map(y => (acc = acc === null ? y : a * acc + (1 - a) * y));
  }

  async function fetchAll() {
    const x = xSel.value;
    const got = await Promise.all(names.map(n => fetch(`/sessions/${pathOf(n)}/metrics.json?x=${encodeURIComponent(x)}`)
      .then(r => r.json())));
    return got;
  }

  // a session with more metrics than one answer holds (harness.service.metrics.MAX_SERIES) says so, in words
  function noteCut(all) {
    let note = document.getElementById("charts-cut");
    const cut = all.filter(s => s.series && s.metrics > Object.keys(s.series).length);
    if (!cut.length) { if (note) note.remove(); return; }
    if (!note) {
      note = document.createElement("p");
      note.id = "charts-cut";
      note.className = "note";
      box.before(note);
    }
    note.textContent = cut.map(s => `${s.session}: the first ${Object.keys(s.series).length} of ${s.metrics} ` +
                                    `metrics are drawn`).join("; ");
  }

  function render(all) {
    noteCut(all);
    const a = parseFloat(smooth.value);
    const keys = [...new Set(all.flatMap(s => Object.keys(s.series || {})))].sort();
    for (const key of keys) {
      const xs = [...new Set(all.flatMap(s => lineOf(s, key).x))].sort((p, q) => p - q);
      const data = [xs];
      for (const s of all) {
        const line = lineOf(s, key);
        const at = new Map(line.x.map((v, i) => [v, i]));
        const ys = smoothed(line.y, a);
        data.push(xs.map(v => at.has(v) ? ys[at.get(v)] : null));
      }
      const points = all.reduce((n, s) => n + lineOf(s, key).x.length, 0);
      let c = charts[key];
      if (c && c.u.series.length === all.length + 1) {
        c.u.setData(data);
        showLatest(c.u);
        c.el.dataset.points = points;
        continue;
      }
      if (c) { c.u.destroy(); c.el.remove(); }
      const el = document.createElement("div");
      el.className = "chart";
      el.dataset.metric = key;
      el.dataset.points = points;
      const title = document.createElement("h3");
      title.textContent = key;  // a metric key is the participant's text: never parsed as HTML
      el.appendChild(title);
      box.appendChild(el);
      const xName = xSel.value === "step" ? "step" : "seconds";
      const opts = {width: 520, height: 240, scales: {x: {time: false}},
                    axes: [{label: xName}, {}],
                    series: [{label: xName, value: (u, v) => v == null ? "latest" : String(v)},
                             ...all.map((s, i) => ({label: s.session, stroke: colors[i % colors.length],
                                                    spanGaps: true, width: 1.5,
                                                    value: (u, v, si) => number(v == null ? lastOf(u.data[si]) : v)}))]};
      const u = new uPlot(opts, data, el);
      showLatest(u);
      charts[key] = {u, el};
    }
  }

  async function refresh() {
    const all = await fetchAll();
    render(all);
    const live = box.dataset.live === "yes" && all.some(s => !["succeeded", "failed", "stopped", "lost"].includes(s.status));
    clearTimeout(timer);
    if (live) timer = setTimeout(refresh, 3000);
  }

  xSel.addEventListener("change", () => { for (const k in charts) { charts[k].u.destroy(); charts[k].el.remove(); delete charts[k]; } refresh(); });
  smooth.addEventListener("input", refresh);
  refresh();

  const log = document.getElementById("log");
  if (log && log.dataset.stream) {
    const es = new EventSource(log.dataset.stream);
    es.onmessage = e => { log.textContent += JSON.parse(e.data); log.scrollTop = log.scrollHeight; };
    es.addEventListener("end", () => es.close());
  }
})();
