import Foundation

/// The status page served at `GET /`: one self-contained HTML document (no external asset,
/// no framework) whose script polls `/stats` every second and draws every service and
/// endpoint with its health, admin state, weight, connections and bytes with their rates
/// per second, a chart of connections per second over the last minute, and the drain,
/// maintenance and ready buttons (the JSON POSTs of the runtime routes).
///
/// It holds no figures itself, so it is served without the token; when one is set the
/// page asks for it once and keeps it in memory only, sending it with every request.
enum StatusPage {
    static func html(tokenRequired: Bool) -> String {
        template.replacingOccurrences(of: "__TOKEN_REQUIRED__", with: tokenRequired ? "true" : "false")
    }

    private static let template = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>balancerd</title>
<link rel="icon" href="data:,">
<style>
  :root { --up: #1a7f37; --down: #cf222e; --drain: #b35900; --maintenance: #6639ba; --ready: #1a7f37;
          --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; }
  * { box-sizing: border-box; }
  body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 0; background: var(--bg); color: #1f2328; }
  header { display: flex; align-items: baseline; gap: 16px; padding: 12px 20px; background: #24292f; color: #fff; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: #c9d1d9; font-size: 13px; }
  header .meta b { color: #fff; font-weight: 600; }
  main { padding: 16px 20px; max-width: 1280px; }
  #message { margin: 0 0 12px; padding: 8px 12px; border-radius: 6px; background: #ffebe9; color: var(--down); display: none; }
  #login { margin: 0 0 12px; padding: 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; display: none; }
  section.service { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin-bottom: 16px; overflow: hidden; }
  .service-head { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 24px; padding: 10px 14px; border-bottom: 1px solid var(--line); }
  .service-head h2 { font-size: 16px; margin: 0; }
  .service-head .listen { color: var(--muted); font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
  .figures { display: flex; gap: 18px; flex-wrap: wrap; }
  .figure { display: flex; flex-direction: column; }
  .figure .label { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .04em; }
  .figure .value { font-variant-numeric: tabular-nums; font-weight: 600; }
  .chart { margin-left: auto; display: flex; flex-direction: column; align-items: flex-end; gap: 2px; color: var(--muted); font-size: 11px; }
  .chart svg { background: var(--bg); border: 1px solid var(--line); border-radius: 4px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { padding: 6px 14px; text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; background: #fafbfc; }
  th:first-child, td:first-child { text-align: left; }
  td.address { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
  tr + tr td { border-top: 1px solid #eef1f4; }
  .badge { display: inline-block; min-width: 44px; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; text-align: center; }
  .badge.up { background: var(--up); } .badge.down { background: var(--down); }
  .badge.ready { background: var(--ready); } .badge.drain { background: var(--drain); } .badge.maintenance { background: var(--maintenance); }
  .rate { color: var(--muted); font-size: 12px; }
  td.actions { text-align: left; }
  button { font: inherit; font-size: 12px; padding: 2px 8px; margin-right: 4px; border: 1px solid var(--line); border-radius: 5px; background: #fff; cursor: pointer; }
  button:hover { background: var(--bg); }
  button[disabled] { opacity: .45; cursor: default; }
  footer { color: var(--muted); font-size: 12px; padding: 0 20px 20px; }
</style>
</head>
<body>
<header>
  <h1>balancerd</h1>
  <span class="meta">version <b id="version">–</b></span>
  <span class="meta">up <b id="uptime">–</b></span>
  <span class="meta">config generation <b id="generation">–</b></span>
  <span class="meta">open connections <b id="open">–</b></span>
  <span class="meta" id="updated">connecting…</span>
</header>
<main>
  <form id="login">
    <label>This admin port needs its token: <input id="token" type="password" autocomplete="off" size="32"></label>
    <button type="submit">Use token</button>
  </form>
  <p id="message"></p>
  <div id="services"></div>
</main>
<footer>Updated every second from <a href="/stats">/stats</a>; also <a href="/metrics">/metrics</a>. Drain: no new connections, checks go on. Maintenance: no new connections, no checks.</footer>
<script>
"use strict";
const tokenRequired = __TOKEN_REQUIRED__;
let token = null;          // in memory only, never stored
let previous = null;       // the last /stats answer, with its time, for rates
const history = new Map(); // service name -> [connections per second], the last 60 s
const views = new Map();   // service name -> its elements
let layout = "";           // the services and endpoints drawn, to know when to redraw

const $ = (id) => document.getElementById(id);

function headers(extra) {
  const all = Object.assign({}, extra);
  if (token) all["Authorization"] = "Bearer " + token;
  return all;
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.style.display = text ? "block" : "none";
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
}

function rate(n) { return n < 10 ? n.toFixed(1) : String(Math.round(n)); }

function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + (s % 60) + "s";
  return s + "s";
}

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function figure(label, className) {
  const box = element("div", { class: "figure" });
  box.append(element("span", { class: "label" }, label), element("span", { class: "value " + className }, "–"));
  return box;
}

const svgNS = "http://www.w3.org/2000/svg";

function drawService(service) {
  const section = element("section", { class: "service", "data-service": service.name });
  const head = element("div", { class: "service-head" });
  head.append(element("h2", {}, service.name), element("span", { class: "listen" }, service.listen));
  const figures = element("div", { class: "figures" });
  figures.append(figure("mode", "mode"), figure("active", "active"), figure("total", "total"),
                 figure("conn/s", "conn-rate"), figure("in", "bytes-in"), figure("out", "bytes-out"), figure("failed", "failed"));
  head.append(figures);
  const chart = element("div", { class: "chart" });
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", "200"); svg.setAttribute("height", "40"); svg.setAttribute("viewBox", "0 0 200 40");
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "connections per second, last minute");
  const area = document.createElementNS(svgNS, "polygon");
  area.setAttribute("fill", "rgba(9,105,218,0.15)");
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("fill", "none"); line.setAttribute("stroke", "#0969da"); line.setAttribute("stroke-width", "1.5");
  svg.append(area, line);
  const peak = element("span", { class: "peak" }, "");
  chart.append(svg, peak);
  head.append(chart);
  section.append(head);

  const table = element("table");
  const titles = ["endpoint", "state", "admin", "weight", "active", "total", "conn/s", "bytes in", "bytes out", ""];
  const headRow = element("tr");
  for (const title of titles) headRow.append(element("th", {}, title));
  table.append(headRow);
  const rows = new Map();
  for (const endpoint of service.endpoints) {
    const row = element("tr", { "data-endpoint": endpoint.address });
    const cells = {};
    for (const name of ["address", "state", "admin", "weight", "active", "total", "conn-rate", "bytes-in", "bytes-out"]) {
      cells[name] = element("td", { class: name });
      row.append(cells[name]);
    }
    cells.address.textContent = endpoint.address;
    const actions = element("td", { class: "actions" });
    for (const state of ["drain", "maintenance", "ready"]) {
      const button = element("button", { type: "button", "data-action": state, title: "set " + endpoint.address + " to " + state }, state);
      button.addEventListener("click", () => command(service.name, endpoint.address, state));
      actions.append(button);
    }
    row.append(actions);
    table.append(row);
    rows.set(endpoint.address, { row, cells, actions });
  }
  section.append(table);
  return { section, head, rows, area, line, peak };
}

function badge(cell, text) {
  if (cell.textContent === text) return;
  cell.textContent = "";
  cell.append(element("span", { class: "badge " + text }, text));
}

function withRate(cell, text, perSecond) {
  cell.textContent = text + " ";
  cell.append(element("span", { class: "rate" }, perSecond === null ? "" : rate(perSecond) + "/s"));
}

function byteRate(cell, value, perSecond) {
  cell.textContent = bytes(value) + " ";
  cell.append(element("span", { class: "rate" }, perSecond === null ? "" : bytes(perSecond) + "/s"));
}

function drawChart(view, values) {
  const width = 200, height = 40, slots = 60;
  const top = Math.max(1, ...values);
  const step = width / (slots - 1);
  const start = slots - values.length;
  const points = values.map((v, i) => ((start + i) * step).toFixed(1) + "," + (height - 2 - (v / top) * (height - 6)).toFixed(1));
  view.line.setAttribute("points", points.join(" "));
  if (points.length > 1) {
    view.area.setAttribute("points", (start * step).toFixed(1) + "," + height + " " + points.join(" ") + " " + width + "," + height);
  } else {
    view.area.setAttribute("points", "");
  }
  view.peak.textContent = "conn/s, last 60 s · peak " + rate(Math.max(0, ...values));
}

function render(stats, now) {
  $("version").textContent = stats.version;
  $("uptime").textContent = duration(stats.uptimeSeconds);
  $("generation").textContent = String(stats.config.generation);
  $("open").textContent = String(stats.openConnections);
  $("updated").textContent = "updated " + new Date(now).toLocaleTimeString();

  const shape = JSON.stringify(stats.services.map((s) => [s.name, s.endpoints.map((e) => e.address)]));
  if (shape !== layout) {
    layout = shape;
    views.clear();
    const root = $("services");
    root.textContent = "";
    for (const service of stats.services) {
      const view = drawService(service);
      views.set(service.name, view);
      root.append(view.section);
    }
  }
  const before = new Map();
  let seconds = 0;
  if (previous) {
    seconds = (now - previous.time) / 1000;
    for (const s of previous.stats.services) before.set(s.name, s);
  }
  const perSecond = (value, old) => (old === undefined || seconds <= 0) ? null : Math.max(0, (value - old) / seconds);

  for (const service of stats.services) {
    const view = views.get(service.name);
    const old = before.get(service.name);
    const oldEndpoints = new Map((old ? old.endpoints : []).map((e) => [e.address, e]));
    const q = (name) => view.head.querySelector(".value." + name);
    q("mode").textContent = service.mode === "active-passive" ? "active-passive" : service.balance;
    q("active").textContent = String(service.activeConnections);
    q("total").textContent = String(service.totalConnections);
    q("failed").textContent = String(service.failedConnections);
    const connections = perSecond(service.totalConnections, old && old.totalConnections);
    q("conn-rate").textContent = connections === null ? "–" : rate(connections);
    byteRate(q("bytes-in"), service.bytesIn, perSecond(service.bytesIn, old && old.bytesIn));
    byteRate(q("bytes-out"), service.bytesOut, perSecond(service.bytesOut, old && old.bytesOut));
    const values = history.get(service.name) || [];
    if (connections !== null) values.push(connections);
    while (values.length > 60) values.shift();
    history.set(service.name, values);
    drawChart(view, values);

    for (const endpoint of service.endpoints) {
      const { cells, actions } = view.rows.get(endpoint.address);
      const was = oldEndpoints.get(endpoint.address);
      badge(cells.state, endpoint.state);
      badge(cells.admin, endpoint.admin);
      cells.weight.textContent = String(endpoint.weight);
      cells.active.textContent = String(endpoint.activeConnections);
      cells.total.textContent = String(endpoint.totalConnections);
      const c = perSecond(endpoint.totalConnections, was && was.totalConnections);
      cells["conn-rate"].textContent = c === null ? "–" : rate(c);
      byteRate(cells["bytes-in"], endpoint.bytesIn, perSecond(endpoint.bytesIn, was && was.bytesIn));
      byteRate(cells["bytes-out"], endpoint.bytesOut, perSecond(endpoint.bytesOut, was && was.bytesOut));
      for (const button of actions.querySelectorAll("button")) button.disabled = button.dataset.action === endpoint.admin;
    }
  }
  previous = { stats, time: now };
}

async function poll() {
  if (tokenRequired && !token) return;
  try {
    const answer = await fetch("/stats", { headers: headers(), cache: "no-store" });
    if (answer.status === 401) {
      token = null;
      $("login").style.display = "block";
      showMessage("The token was refused; enter it again.");
      return;
    }
    if (!answer.ok) { showMessage("/stats answered " + answer.status); return; }
    render(await answer.json(), Date.now());
    showMessage("");
  } catch (error) {
    $("updated").textContent = "cannot reach balancerd";
    showMessage("Cannot reach balancerd: " + error.message);
  }
}

async function command(service, address, state) {
  const path = "/services/" + encodeURIComponent(service) + "/endpoints/" + encodeURIComponent(address) + "/state";
  try {
    const answer = await fetch(path, {
      method: "POST", cache: "no-store",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ state }),
    });
    if (!answer.ok) {
      const text = await answer.text();
      let reason = text;
      try { reason = JSON.parse(text).error || text; } catch (_) { /* not JSON */ }
      showMessage(service + " " + address + ": " + state + " refused (" + answer.status + "): " + reason);
      return;
    }
    showMessage("");
    await poll();
  } catch (error) {
    showMessage("Cannot reach balancerd: " + error.message);
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim() || null;
  $("token").value = "";
  if (token) { $("login").style.display = "none"; showMessage(""); poll(); }
});

if (tokenRequired) {
  $("login").style.display = "block";
  $("updated").textContent = "waiting for the token";
}
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""#
}
