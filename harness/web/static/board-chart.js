// A board's best score over time: the entries the board ranks (its top ten), one step line each (time axis in
// UTC; at most 1,000 points a line). Fetched again every few seconds, as the board is, and redrawn when it changed,
// so the chart never says "no scored submissions yet" beside a board that has them. The legend shows each line's
// latest best score without a hover (the point under the cursor while hovering). The entries' names are series
// labels, which uPlot writes into its legend as text (textContent / nodeValue), never as HTML.
(function () {
  const box = document.getElementById("history-chart");
  if (!box) return;
  const colors = ["#0a7d44", "#1f6feb", "#d4380d", "#8250df", "#bf8700", "#0e7490", "#be185d", "#4d7c0f",
                  "#9a3412", "#334155"];
  const EVERY_MS = 5000;
  let shown = null, chart = null;

  function number(v) {  // the one score format (harness.core.display.score_text): 6 significant digits, 1.0 not 1
    if (v == null) return "";
    const text = String(Number(v.toPrecision(6)));
    return /^-?[0-9]+$/.test(text) ? text + ".0" : text;
  }

  function utcText(seconds) {  // as the dashboard writes every time: 2026-07-01 01:00:00 UTC
    return new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function lastOf(ys) {
    for (let i = ys.length - 1; i >= 0; i--) if (ys[i] != null) return ys[i];
    return null;
  }

  function draw(got) {
    const names = Object.keys(got.series);
    if (chart) { chart.destroy(); chart = null; }
    box.textContent = "";
    box.dataset.lines = names.length;
    if (!names.length) { box.textContent = "no scored submissions yet"; return; }
    const xs = [...new Set(names.flatMap(n => got.series[n].x))].sort((a, b) => a - b);
    const data = [xs];
    for (const n of names) {   // a step line: the best so far holds until the next improvement
      const line = got.series[n];
      let i = -1;
      data.push(xs.map(x => { while (i + 1 < line.x.length && line.x[i + 1] <= x) i++; return i < 0 ? null : line.y[i]; }));
    }
    const series = [{label: "Time (UTC)", value: (u, v) => v == null ? "latest" : utcText(v)},
                    ...names.map((n, k) => ({label: n, stroke: colors[k % colors.length], width: 1.5,
                                             value: (u, v, si) => number(v == null ? lastOf(u.data[si]) : v)}))];
    chart = new uPlot({
      width: 900, height: 260, series,
      tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: {x: {time: true, range: (u, lo, hi) => xs[0] === xs[xs.length - 1] ? [xs[0] - 3600, xs[0] + 3600] : [lo, hi]}},
      axes: [{label: "time (UTC)"}, {}],
    }, data, box);
    chart.setLegend({idx: null});  // no cursor yet: every line's latest value
  }

  function load() {
    if (document.visibilityState === "hidden") return Promise.resolve();
    return fetch(`/tasks/${encodeURIComponent(box.dataset.task)}/score-history.json`)
      .then(r => r.ok ? r.text() : null)
      .then(text => {
        if (text === null || text === shown) return;
        shown = text;
        draw(JSON.parse(text));
      })
      .catch(() => {});
  }

  function every() {
    load().finally(() => setTimeout(every, EVERY_MS));
  }
  every();
})();
