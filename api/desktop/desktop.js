// cxstream agent desktop: plain JS, no build, no network but this API.
// The token comes from the page's #token=... fragment (never sent to the server in a URL)
// or the Token field, and is kept in sessionStorage for this tab only.
"use strict";

const STAGE_COLOURS = {
  awareness: "#7b8ea8", consideration: "#2557d6", purchase: "#1a7f37", onboarding: "#8250df",
  usage: "#0a7ea4", service: "#d4760a", loyalty: "#bf8700",
  resolved: "#57ab5a", churned: "#6e2a2a", unknown: "#9aa4b1",
};
const state = { customer: null, nbas: new Map(), alerts: new Map(), stream: null, lastEventId: null };
const $ = (id) => document.getElementById(id);

function token() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { sessionStorage.setItem("cx-token", fromHash); history.replaceState(null, "", location.pathname); }
  const field = $("token");
  if (!field.value) field.value = sessionStorage.getItem("cx-token") || "";
  return field.value;
}

function status(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.className = error ? "error" : "";
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function fact(dl, name, value) {
  dl.append(el("dt", name), el("dd", value === null || value === undefined || value === "" ? "—" : value));
}

function renderCard(profile) {
  $("customer-id").textContent = profile.customer_id;
  const dl = $("facts");
  dl.replaceChildren();
  const ids = Object.entries(profile.identifiers || {}).map(([t, v]) => `${t}: ${v.join(", ")}`);
  fact(dl, "Identifiers", ids.join("; "));
  fact(dl, "Lifetime value", (profile.lifetime_value || 0).toFixed(2));
  fact(dl, "Orders", profile.orders);
  fact(dl, "Segment", profile.segment);
  fact(dl, "Churn risk", profile.churn_score === null ? null : `${Math.round(profile.churn_score * 100)} %`);
  const consent = Object.entries(profile.consent || {}).map(([p, ok]) => `${p} ${ok ? "yes" : "no"}`);
  fact(dl, "Consent", consent.join(", "));
  fact(dl, "Open cases", (profile.open_cases || []).length ? profile.open_cases.join(", ") : "none");
  fact(dl, "Last NPS", profile.last_nps);
  fact(dl, "Stage", profile.journey_stage);
  fact(dl, "Interactions", profile.event_count);
  fact(dl, "Last seen", profile.last_seen);
  $("card").hidden = false;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function renderJourney(timeline) {
  const points = timeline.interactions.map((i) => ({ ...i, t: Date.parse(i.time) })).filter((i) => !isNaN(i.t));
  const W = 640, H = 240, L = 36, R = 10, T = 10, B = 40;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "journey map" });
  const t0 = Math.min(...points.map((p) => p.t)), t1 = Math.max(...points.map((p) => p.t));
  const x = (t) => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (W - L - R);
  const y = (s) => T + (1 - (s + 1) / 2) * (H - T - B);
  for (const s of [-1, 0, 1]) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(s), y2: y(s), stroke: "#d8dee6" }));
    const label = svg("text", { x: 4, y: y(s) + 3 });
    label.textContent = s.toFixed(0);
    chart.append(label);
  }
  // the customer's sentiment as of each interaction: the last measured one carried on
  let level = null;
  for (const p of points) {
    if (typeof p.sentiment === "number") level = p.sentiment;
    p.level = level;
  }
  const scored = points.filter((p) => p.level !== null);
  if (scored.length > 1) {
    const d = scored.map((p, n) => `${n ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.level).toFixed(1)}`).join(" ");
    chart.append(svg("path", { d, fill: "none", stroke: "#9aa4b1", "stroke-width": 1.5 }));
  }
  const stages = new Set();
  for (const p of points) {
    const stage = p.stage || "unknown";
    stages.add(stage);
    const colour = STAGE_COLOURS[stage] || STAGE_COLOURS.unknown;
    // every interaction is a tick on the stage band; scored ones are also a point
    chart.append(svg("rect", { x: x(p.t) - 2, y: H - B + 8, width: 4, height: 12, fill: colour, class: "stage-tick" }));
    if (p.level !== null) {
      const measured = typeof p.sentiment === "number";
      const dot = svg("circle", measured
        ? { cx: x(p.t), cy: y(p.level), r: 4.5, fill: colour, class: "sentiment-point" }
        : { cx: x(p.t), cy: y(p.level), r: 3, fill: "#fff", stroke: colour, class: "interaction-point" });
      const tip = svg("title", {});
      tip.textContent = `${p.time} ${p.touchpoint} (${stage}): ${measured ? "" : "as of "}${p.level.toFixed(2)}`;
      dot.append(tip);
      chart.append(dot);
    }
  }
  for (const [t, anchor] of [[t0, "start"], [t1, "end"]]) {
    const label = svg("text", { x: x(t), y: H - 4, "text-anchor": anchor });
    label.textContent = points.length ? new Date(t).toISOString().slice(0, 16).replace("T", " ") : "";
    chart.append(label);
  }
  $("journey").replaceChildren(chart);
  const legend = $("stage-legend");
  legend.replaceChildren();
  for (const stage of stages) {
    const item = el("li", stage);
    const dot = el("i");
    dot.style.background = STAGE_COLOURS[stage] || STAGE_COLOURS.unknown;
    item.prepend(dot);
    legend.append(item);
  }
  const s = timeline.sentiment;
  const windows = Object.entries(s.windows).map(([w, v]) => `${w} ${v.toFixed(2)}`).join(", ");
  legend.append(el("li", `windows: ${windows || "—"}; trend ${s.trend === null ? "—" : s.trend.toFixed(2)}`));
  $("journey-panel").hidden = false;
}

function renderNbas() {
  const list = $("nbas");
  list.replaceChildren();
  const nbas = [...state.nbas.values()].sort((a, b) => b.priority - a.priority);
  if (!nbas.length) list.append(el("li", "no current action", "meta"));
  for (const nba of nbas) {
    const item = el("li");
    item.dataset.nbaId = nba.id;
    item.append(el("strong", nba.message));
    item.append(el("div", `${nba.action} · ${nba.channel} · priority ${nba.priority}`, "meta"));
    const reasons = el("ul", null, "reasons");
    for (const r of nba.reason_codes || []) reasons.append(el("li", r));
    item.append(reasons);
    const buttons = el("div", null, "actions");
    const accept = el("button", "Accept", "accept");
    const reject = el("button", "Reject", "reject");
    accept.onclick = () => respond(nba, "accepted");
    reject.onclick = () => respond(nba, "rejected");
    buttons.append(accept, reject);
    item.append(buttons);
    list.append(item);
  }
  $("nba-panel").hidden = false;
}

function renderAlerts() {
  const list = $("alerts");
  list.replaceChildren();
  const alerts = [...state.alerts.values()].sort((a, b) => (a.time < b.time ? 1 : -1));
  if (!alerts.length) list.append(el("li", "no open alert", "meta"));
  for (const alert of alerts) {
    const item = el("li");
    item.dataset.alertId = alert.id;
    item.append(el("span", `${alert.severity} ${alert.kind}`, `sev-${alert.severity}`));
    item.append(el("div", alert.message));
    item.append(el("div", `${alert.time}${alert.touchpoint ? " · " + alert.touchpoint : ""}`, "meta"));
    list.append(item);
  }
  $("alert-panel").hidden = false;
}

async function respond(nba, outcome) {
  try {
    const body = { nba_id: nba.id, outcome, agent_id: $("agent").value || "agent-desktop", time: new Date().toISOString() };
    await api("/v1/responses", { method: "POST", body: JSON.stringify(body) });
    state.nbas.delete(nba.id);
    renderNbas();
    status(`${outcome}: ${nba.action}`);
  } catch (error) {
    status(`response not taken: ${error.message}`, true);
  }
}

async function loadActions(customerId) {
  const actions = await api(`/v1/customers/${encodeURIComponent(customerId)}/actions`);
  state.nbas = new Map(actions.nbas.map((n) => [n.id, n]));
  state.alerts = new Map(actions.alerts.map((a) => [a.id, a]));
  renderNbas();
  renderAlerts();
}

// SSE over fetch (EventSource cannot send an Authorization header).
async function follow(customerId) {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  const live = $("live");
  while (!controller.signal.aborted && state.customer === customerId) {
    try {
      const headers = { Authorization: `Bearer ${token()}` };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const response = await fetch(`/v1/stream?customer_id=${encodeURIComponent(customerId)}`, { headers, signal: controller.signal });
      if (response.status === 410) { state.lastEventId = null; await loadActions(customerId); continue; }
      if (!response.ok) throw new Error(`stream ${response.status}`);
      live.textContent = "live"; live.className = "on";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          handleFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    live.textContent = "reconnecting"; live.className = "off";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function handleFrame(frame) {
  const fields = { event: "message", data: "" };
  for (const line of frame.split("\n")) {
    const at = line.indexOf(":");
    if (at <= 0) continue;
    const name = line.slice(0, at), value = line.slice(at + 1).replace(/^ /, "");
    if (name === "data") fields.data += value; else fields[name] = value;
  }
  if (fields.id) state.lastEventId = fields.id;
  if (!fields.data) return;
  const item = JSON.parse(fields.data);
  if (fields.event === "nba") { state.nbas.set(item.id, item); renderNbas(); }
  if (fields.event === "alert") { state.alerts.set(item.id, item); renderAlerts(); }
}

async function lookUp(event) {
  event.preventDefault();
  status("looking up…");
  try {
    const body = { type: $("id-type").value, value: $("id-value").value };
    const found = await api("/v1/profiles/lookup", { method: "POST", body: JSON.stringify(body) });
    const customerId = found.customer_id;
    state.customer = customerId;
    state.lastEventId = null;
    renderCard(found.profile);
    renderJourney(await api(`/v1/customers/${encodeURIComponent(customerId)}/timeline`));
    await loadActions(customerId);
    status(`customer ${customerId}`);
    follow(customerId);
  } catch (error) {
    status(error.message, true);
  }
}

$("search-form").addEventListener("submit", lookUp);
token();
