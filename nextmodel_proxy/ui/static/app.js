// NextModel Proxy dashboard: draws the two charts from the page's JSON block and sorts tables. No network.
"use strict";

(function () {
  const PALETTE = ["#2f6fed", "#12b76a", "#f79009", "#7a5af8", "#ee46bc", "#98a2b3"];

  function money(v) {
    if (v === 0) return "$0";
    if (Math.abs(v) >= 100) return "$" + v.toFixed(0);
    if (Math.abs(v) >= 1) return "$" + v.toFixed(2);
    return "$" + Number(v.toPrecision(2)).toString();
  }

  function chartWidth(el) {
    return Math.max(260, el.clientWidth || el.parentElement.clientWidth - 28);
  }

  function dayStamps(days) {
    // Local calendar days as timestamps at noon UTC: uPlot only needs an ordered x axis.
    return days.map((d) => Date.parse(d + "T12:00:00Z") / 1000);
  }

  function stackedBars(el, data) {
    const xs = dayStamps(data.days);
    const models = data.models;
    const raw = models.map((m) => data.spend_usd[m].map(Number));
    // Stack: each series is the running total, drawn last-to-first so every band shows.
    const stacked = [];
    raw.forEach((values, i) => {
      stacked.push(values.map((v, j) => v + (i ? stacked[i - 1][j] : 0)));
    });
    const series = [{}];
    const columns = [xs];
    for (let i = models.length - 1; i >= 0; i--) {
      series.push({
        label: models[i],
        stroke: PALETTE[i % PALETTE.length],
        fill: PALETTE[i % PALETTE.length] + "cc",
        paths: uPlot.paths.bars({ size: [0.7, 60] }),
        value: (u, v, si, di) => (di == null ? "–" : money(raw[i][di])),
      });
      columns.push(stacked[i]);
    }
    return new uPlot(
      {
        width: chartWidth(el),
        height: 240,
        series: series,
        axes: [{}, { size: 70, values: (u, vals) => vals.map(money) }],
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      },
      columns,
      el
    );
  }

  function modeChart(el, data) {
    return new uPlot(
      {
        width: chartWidth(el),
        height: 240,
        series: [
          {},
          { label: "Fresh", stroke: "#2f6fed", width: 2 },
          { label: "Exact cache", stroke: "#12b76a", width: 2, fill: "#12b76a22" },
        ],
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      },
      [dayStamps(data.days), data.fresh, data.exact_cache],
      el
    );
  }

  function drawCharts() {
    const block = document.getElementById("chart-data");
    if (!block || typeof uPlot === "undefined") return;
    const data = JSON.parse(block.textContent);
    const spendEl = document.getElementById("spend-chart");
    const modeEl = document.getElementById("mode-chart");
    const charts = [stackedBars(spendEl, data), modeChart(modeEl, data)];
    window.addEventListener("resize", () => {
      charts[0].setSize({ width: chartWidth(spendEl), height: 240 });
      charts[1].setSize({ width: chartWidth(modeEl), height: 240 });
    });
  }

  function sortable(table) {
    const heads = table.querySelectorAll("th[data-sort]");
    heads.forEach((th, col) => {
      th.addEventListener("click", () => {
        const asc = !th.classList.contains("sorted-asc");
        heads.forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        const numeric = th.dataset.sort === "num";
        const body = table.tBodies[0];
        const rows = Array.from(body.rows).filter((r) => r.cells.length > 1);
        const key = (r) => {
          const cell = r.cells[col];
          return numeric ? Number(cell.dataset.value) : cell.textContent.toLowerCase();
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach((r) => body.appendChild(r));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawCharts();
    document.querySelectorAll("table.sortable").forEach(sortable);
  });
})();
