// The householder dashboard: renders /api/v1/household/summary, refreshing every few seconds.
"use strict";

// A date as the householder reads it, "7 December 2026" (the page's first render writes the same); an API date is
// ISO, "2026-12-07".
const DAY = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
function day(iso, less = 0) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - less);
  return DAY.format(d);
}

// A moment as the dates above are written, in the browser's own zone: "7 December 2026 at 13:35:52".
const MOMENT = new Intl.DateTimeFormat("en-GB", { dateStyle: "long", timeStyle: "medium" });
function fmtTime(ts) {
  return ts ? MOMENT.format(new Date(ts * 1000)) : "–";
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
    document.getElementById("today-date").textContent = day(s.today.date);
    document.getElementById("today-kwh").textContent = s.today.kwh;
    document.getElementById("today-cost").textContent = s.today.cost;
    document.getElementById("currency-symbol").textContent = s.today.currency_symbol;
  }
  document.getElementById("updated").textContent = fmtTime(s.now_ts);
  document.getElementById("notices").replaceChildren(...(s.notices || []).map((text) => {
    const li = document.createElement("li");
    li.className = "warning";
    li.textContent = text;
    return li;
  }));
  drawChart(s.series);
}

function showCoach(c) {
  const p = c.preview;
  const sym = document.getElementById("currency-symbol").textContent;
  if (p) {
    const from = p.covered_from !== p.period_start ? ` (Ohmni has seen it from ${day(p.covered_from)})` : "";
    // the API's end is the day after the bill's last (exclusive); a householder reads "to" as through
    document.getElementById("bill-period").textContent = `${day(p.period_start)} to ${day(p.period_end, 1)}${from}`;
    document.getElementById("bill-so-far").textContent = p.so_far;
    document.getElementById("bill-projected").textContent = p.projected;
    document.getElementById("bill-range").textContent =
      `Likely between ${sym}${p.projected_low} and ${sym}${p.projected_high}, from ${p.basis}.`;
  }
  const shock = document.getElementById("bill-shock");
  shock.hidden = !c.bill_shock;
  shock.textContent = c.bill_shock || "";
  const ex = document.getElementById("bill-explanation");
  ex.replaceChildren(...(c.explanation ? c.explanation.sentences : []).map((s) => {
    const li = document.createElement("li");
    li.textContent = s;
    return li;
  }));
  const list = document.getElementById("nudges");
  if (!c.nudges.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "Nothing worth changing yet.";
    list.replaceChildren(li);
    return;
  }
  list.replaceChildren(...c.nudges.map((n) => {
    const li = document.createElement("li");
    li.className = "nudge";
    li.dataset.kind = n.kind;
    li.dataset.id = n.id;
    li.dataset.status = n.status;
    const text = document.createElement("p");
    text.textContent = n.message;
    li.append(text);
    if (n.status === "accepted") {
      const done = document.createElement("p");
      done.className = "muted accepted";
      done.textContent = "You said you would do this.";
      li.append(done);
    } else {
      for (const [decision, label] of [["accept", "I'll do it"], ["dismiss", "Not for me"]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.decision = decision;
        button.textContent = label;
        button.addEventListener("click", () => decide(n.id, decision));
        li.append(button, " ");
      }
    }
    return li;
  }));
}

function rows(id, items, cells) {
  const body = document.getElementById(id);
  if (!items.length) return;
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const value of cells(item)) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    return tr;
  }));
}

function showBreakdown(c) {
  rows("appliances", c.appliances || [], (a) => [applianceName(a.appliance), a.runs, a.kwh, money(a.cost, a.currency)]);
  rows("tariffs", c.tariffs || [], (t) => [t.current ? `${t.name} (yours)` : t.name, money(t.cost, t.currency)]);
  if (c.tariffs && c.tariffs.length) {
    document.getElementById("tariffs-note").textContent =
      `Your last ${c.tariffs[0].days} days priced on each tariff we know, standing charges included.`;
  }
}

const SHADE = { cheap: "rgba(27, 127, 59, 0.15)", peak: "rgba(179, 38, 30, 0.15)" };
let span = "day";

// The key names only what is shaded: a flat rate has no cheap or peak hours, Economy 7 no peak.
function showKey(levels) {
  const key = document.getElementById("history-key");
  const named = Object.keys(SHADE).filter((level) => levels.has(level));
  if (!named.length) {
    key.textContent = "Your tariff charges the same at every hour shown.";
    return;
  }
  const spans = named.map((level) => {
    const span = document.createElement("span");
    span.className = `key ${level}`;
    span.textContent = level;
    return span;
  });
  key.replaceChildren("Shaded: ", ...spans.flatMap((s, i) => (i ? [" and ", s] : [s])),
    " hours of your tariff.");
}

async function refreshHistory() {
  try {
    const r = await fetch(`/api/v1/household/history?span=${span}`, { cache: "no-store", credentials: "same-origin" });
    if (!r.ok || typeof Plotly === "undefined") return;
    const h = await r.json();
    const shapes = h.bands.filter((b) => b.level !== "standard").map((b) => ({
      type: "rect", xref: "x", yref: "paper", x0: new Date(b.start * 1000), x1: new Date(b.end * 1000), y0: 0, y1: 1,
      fillcolor: SHADE[b.level], line: { width: 0 }, layer: "below" }));
    // the whole window, and each bar its interval wide: with one bar (a first day) Plotly guessed both, and drew a
    // hairline on an axis of fractions of a second
    const range = h.bands.length ? [new Date(h.bands[0].start * 1000), new Date(h.bands[h.bands.length - 1].end * 1000)]
      : undefined;
    Plotly.react("history", [{ type: "bar", x: h.bars.map((b) => new Date(b.start * 1000 + h.resolution_s * 500)),
      y: h.bars.map((b) => Number(b.kwh)), width: h.resolution_s * 900, marker: { color: "#0b57d0" }, name: "kWh" }], {
      margin: { l: 50, r: 10, t: 10, b: 40 }, yaxis: { title: { text: "kWh" }, rangemode: "tozero" },
      xaxis: { type: "date", range }, shapes }, { displayModeBar: false, responsive: true });
    showKey(new Set(h.bands.map((b) => b.level)));
    document.getElementById("history").dataset.span = h.span;
    document.getElementById("history").dataset.shaded = String(shapes.length);
  } catch (e) { /* next time */ }
}

for (const button of document.querySelectorAll("button[data-span]")) {
  button.addEventListener("click", () => {
    span = button.dataset.span;
    for (const b of document.querySelectorAll("button[data-span]")) b.setAttribute("aria-pressed", String(b === button));
    refreshHistory();
  });
}

async function decide(id, decision) {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const r = await fetch(`/api/v1/household/nudges/${encodeURIComponent(id)}`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ decision }) });
  if (r.ok) await refreshCoach();
}

async function refreshCoach() {
  try {
    const r = await fetch("/api/v1/household/coach", { cache: "no-store", credentials: "same-origin" });
    if (r.ok) { const c = await r.json(); showCoach(c); showBreakdown(c); }
    refreshHistory();
  } catch (e) { /* next time */ }
}

// The figures stay as they were while Ohmni cannot be asked (its store restarting, the network away): say so, and
// from when they are, rather than show them as current without a word.
function unreachable(why) {
  const el = document.getElementById("unreachable");
  el.hidden = why === null;
  if (why !== null) {
    el.textContent = `${why}: the figures below are from ${document.getElementById("updated").textContent}. ` +
      "Trying again…";
  }
}

async function refresh() {
  try {
    const r = await fetch("/api/v1/household/summary", { cache: "no-store", credentials: "same-origin" });
    if (r.status === 401) { window.location.href = "/"; return; }
    if (r.ok) { show(await r.json()); unreachable(null); return; }
    unreachable(r.status === 503 ? "Ohmni is not answering just now" : `Ohmni answered with an error (${r.status})`);
  } catch (e) {
    unreachable("Ohmni cannot be reached just now");  // the next refresh tries again
  }
}

renderFace(document.getElementById("face"), document.getElementById("face").dataset.face);
refresh();
refreshCoach();
setInterval(refresh, 3000);
setInterval(refreshCoach, 15000);
