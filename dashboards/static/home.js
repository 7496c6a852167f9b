// The householder dashboard: renders /api/v1/household/summary, refreshing every few seconds.
"use strict";

function fmtTime(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "–";
}

function drawChart(series) {
  if (typeof Plotly === "undefined") return;
  const x = series.map((p) => new Date(p.ts * 1000));
  const y = series.map((p) => p.power_w);
  Plotly.react("chart", [{ x, y, type: "scatter", mode: "lines", line: { color: "#0b57d0" }, name: "Power (W)" }], {
    margin: { l: 50, r: 10, t: 10, b: 40 },
    yaxis: { title: { text: "W" }, rangemode: "tozero" },
    xaxis: { type: "date" },
  }, { displayModeBar: false, responsive: true });
}

function show(s) {
  renderFace(document.getElementById("face"), s.display ? s.display.face : "neutral");
  document.getElementById("power-w").textContent = s.power_w === null ? "–" : String(s.power_w);
  document.getElementById("reason").textContent = s.display ? s.display.reason : "Waiting for the hub";
  if (s.today) {
    document.getElementById("today-date").textContent = s.today.date;
    document.getElementById("today-kwh").textContent = s.today.kwh;
    document.getElementById("today-cost").textContent = s.today.cost;
    document.getElementById("currency-symbol").textContent = s.today.currency_symbol;
  }
  document.getElementById("updated").textContent = fmtTime(s.now_ts);
  drawChart(s.series);
}

async function refresh() {
  try {
    const r = await fetch("/api/v1/household/summary", { cache: "no-store", credentials: "same-origin" });
    if (r.status === 401) { window.location.href = "/"; return; }
    if (r.ok) show(await r.json());
  } catch (e) { /* the next refresh tries again */ }
}

renderFace(document.getElementById("face"), document.getElementById("face").dataset.face);
refresh();
setInterval(refresh, 3000);
