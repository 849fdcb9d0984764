// A board's best score over time: the current leaders, one line each (time axis; at most 1,000 points a line).
// The leaders' names are series labels, which uPlot writes into its legend as textContent.
(function () {
  const box = document.getElementById("history-chart");
  if (!box) return;
  const colors = ["#0a7d44", "#1f6feb", "#d4380d", "#8250df", "#bf8700", "#0e7490", "#be185d", "#4d7c0f",
                  "#9a3412", "#334155"];
  fetch(`/tasks/${encodeURIComponent(box.dataset.task)}/score-history.json`).then(r => r.json()).then(got => {
    const names = Object.keys(got.series);
    box.dataset.lines = names.length;
    if (!names.length) { box.textContent = "no scored submissions yet"; return; }
    const xs = [...new Set(names.flatMap(n => got.series[n].x))].sort((a, b) => a - b);
    const data = [xs];
    for (const n of names) {   // a step line: the best so far holds until the next improvement
      const line = got.series[n];
      let i = -1;
      data.push(xs.map(x => { while (i + 1 < line.x.length && line.x[i + 1] <= x) i++; return i < 0 ? null : line.y[i]; }));
    }
    new uPlot({width: 900, height: 260, series: [{}, ...names.map((n, k) => ({label: n, stroke: colors[k % colors.length], width: 1.5}))]},
              data, box);
  });
})();
