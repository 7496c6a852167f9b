// The agent console: search, open a household, add a note. Every call is audited by the cloud.
"use strict";
const csrf = document.querySelector('meta[name="csrf-token"]').content;
let current = null;

function text(id, value) { document.getElementById(id).textContent = value; }
function items(id, values) {
  const list = document.getElementById(id);
  list.replaceChildren(...values.map((v) => { const li = document.createElement("li"); li.textContent = v; return li; }));
  if (!values.length) { const li = document.createElement("li"); li.className = "muted"; li.textContent = "none"; list.append(li); }
}
// What a nudge's figure is: what following it saves, but for the always-on floor what that floor costs (the most
// that switching everything off could save; a fridge stays on).
const NUDGE_FIGURE = { always_on: "costs" };

// UTC to the second: an agent reads a time to a caller in any zone, and a notification's stamp carries milliseconds
function when(ts) { return new Date(Math.round(ts) * 1000).toISOString().replace(".000Z", "Z"); }
function reason() { return document.getElementById("reason").value; }

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options,
    headers: { "Accept": "application/json", "X-CSRF-Token": csrf, ...(options.headers || {}) } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

async function search(event) {
  event.preventDefault();
  text("search-error", "");
  const q = document.getElementById("q").value;
  try {
    const found = await api(`/api/v1/agent/search?q=${encodeURIComponent(q)}&reason=${encodeURIComponent(reason())}`);
    const list = document.getElementById("results");
    list.replaceChildren(...found.map((h) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `${h.name} — account ${h.account_number}, ${h.postcode}`;
      button.dataset.household = h.id;
      button.addEventListener("click", () => open(h.id));
      li.append(button);
      return li;
    }));
    if (!found.length) text("search-error", "No household matches.");
  } catch (error) { text("search-error", error.message); }
}

async function open(id) {
  const c = await api(`/api/v1/agent/households/${encodeURIComponent(id)}?reason=${encodeURIComponent(reason())}`);
  current = id;
  document.getElementById("household").hidden = false;
  text("hh-name", c.household.name);
  text("hh-meta", `Account ${c.household.account_number} · ${c.household.postcode} · meters ${c.household.meters.join(", ") || "none on record"}`);
  const s = c.summary, p = c.coach.preview;
  text("hh-power", s.power_w === null ? "–" : `${s.power_w} W`);
  text("hh-today", s.today ? `${s.today.kwh} kWh, ${money(s.today.cost, s.today.currency)}` : "–");
  text("hh-bill", p ? money(p.so_far, p.currency) : "–");
  text("hh-projected", p ? money(p.projected, p.currency) : "–");
  text("hh-face", s.display ? `The household's display shows: ${s.display.face} — ${s.display.reason}` : "No display state yet.");
  text("hh-health", c.last_reading_ts ? `Last reading ${when(c.last_reading_ts)}` : "No reading received yet.");
  items("hh-hubs", c.hubs.map((h) => `${h.hub_id}: ${h.verdict}` + (h.last_ts ? ` (last reading ${when(h.last_ts)}` +
    (h.voltage_v !== null ? `, ${h.voltage_v} V` : "") + (h.last_failure_ts ? `, power failure seen ${when(h.last_failure_ts)}` : "") + ")" : "")));
  if (typeof Plotly !== "undefined") {
    const shapes = c.gaps_24h.map((g) => ({ type: "rect", xref: "x", yref: "paper", x0: new Date(g.start * 1000),
      x1: new Date(g.end * 1000), y0: 0, y1: 1, fillcolor: "rgba(179, 38, 30, 0.2)", line: { width: 0 }, layer: "below" }));
    Plotly.react("hh-chart", [{ type: "scatter", mode: "lines", x: c.power_24h.map((p) => new Date(p[0] * 1000)),
      y: c.power_24h.map((p) => p[1]), line: { color: "#0b57d0" }, connectgaps: false }], {
      margin: { l: 50, r: 10, t: 10, b: 40 }, yaxis: { title: { text: "W" }, rangemode: "tozero" },
      xaxis: { type: "date" }, shapes }, { displayModeBar: false, responsive: true });
    document.getElementById("hh-chart").dataset.gaps = String(shapes.length);
  }
  items("hh-gaps", c.gaps_24h.map((g) => `${when(g.start)} → ${when(g.end)} (${Math.round(g.seconds / 60)} min)`));
  items("hh-explain", c.coach.explanation ? c.coach.explanation.sentences : []);
  items("hh-appliances", (c.coach.appliances || []).map((a) =>
    `${applianceName(a.appliance)}: ${a.runs} finished ${a.runs === 1 ? "run" : "runs"}, ${a.kwh} kWh, ${money(a.cost, a.currency)}`));
  items("hh-nudges", c.coach.nudges.map((n) =>
    `${n.message} (${NUDGE_FIGURE[n.kind] || "saves"} ${money(n.saving, n.currency)}${n.annual ? " a year" : ""})`));
  items("hh-notifications", c.notifications.map((n) => `${when(n.created_at)} ${n.kind}: ${n.message}`));
  items("hh-notes", c.notes.map((n) => `${when(n.ts)} ${n.author}: ${n.text}`));
}

async function addNote(event) {
  event.preventDefault();
  const input = document.getElementById("note-text");
  await api(`/api/v1/agent/households/${encodeURIComponent(current)}/notes`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text: input.value, reason: reason() }) });
  input.value = "";
  await open(current);
}

document.getElementById("search").addEventListener("submit", search);
document.getElementById("note").addEventListener("submit", addNote);
