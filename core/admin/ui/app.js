// The admin page: polls the admin API every second and redraws. No
// dependencies; everything it needs is served by the gateway itself.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const NODE_W = 170, NODE_H = 26, ROW = 44, COL_X = 250, FAILED_X = 640, TOP = 24;
let layout = null; // state name → {x, y}

function el(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}

function fmtUs(us) {
  if (!us) return "0µs";
  if (us < 1000) return us.toFixed(us < 10 ? 1 : 0) + "µs";
  if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + "ms";
  return (us / 1e6).toFixed(2) + "s";
}

function fmtCount(n) {
  if (n < 1e4) return String(n);
  if (n < 1e6) return (n / 1e3).toFixed(1) + "k";
  return (n / 1e6).toFixed(2) + "M";
}

// buildGraph lays the states out in a column in happy-path order, with
// FAILED to the right, and draws one group per edge.
function buildGraph(g) {
  const svg = document.getElementById("graph");
  svg.textContent = "";
  layout = {};
  const column = g.states.filter(s => s !== "FAILED");
  column.forEach((s, i) => { layout[s] = { x: COL_X, y: TOP + i * ROW + NODE_H / 2 }; });
  layout.FAILED = { x: FAILED_X, y: TOP + (column.length - 1) * ROW / 2 + NODE_H / 2 };
  const height = TOP + column.length * ROW;
  svg.setAttribute("viewBox", `0 0 760 ${height}`);
  const defs = el("defs", {}, svg);
  for (const [id, color] of [["arrow", "#38495a"], ["arrow-red", "#c62828"]]) {
    const m = el("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: color }, m);
  }
  const edges = el("g", {}, svg);
  const idx = Object.fromEntries(column.map((s, i) => [s, i]));
  for (const e of g.edges) {
    const a = layout[e.from], b = layout[e.to];
    if (!a || !b) continue;
    const grp = el("g", { class: "edge" + (e.failure ? " failure" : ""), "data-edge": e.from + ">" + e.to, "data-from": e.from, "data-to": e.to }, edges);
    let d, lx, ly, anchor = "start";
    if (e.failure) {
      const x1 = a.x + NODE_W / 2, y1 = a.y, x2 = b.x - NODE_W / 2, y2 = b.y;
      d = `M${x1},${y1} C${x1 + 120},${y1} ${x2 - 120},${y2} ${x2},${y2}`;
      lx = x1 + 96; ly = y1 - 4;
    } else if (idx[e.to] === idx[e.from] + 1) {
      d = `M${a.x},${a.y + NODE_H / 2} L${b.x},${b.y - NODE_H / 2}`;
      lx = a.x + 8; ly = (a.y + b.y) / 2 + 3;
    } else {
      const span = Math.abs(idx[e.to] - idx[e.from]);
      const x1 = a.x - NODE_W / 2, x2 = b.x - NODE_W / 2, bend = 30 + span * 14;
      d = `M${x1},${a.y} C${x1 - bend},${a.y} ${x2 - bend},${b.y} ${x2},${b.y}`;
      lx = x1 - bend * 0.75 - 4; ly = (a.y + b.y) / 2 + 3; anchor = "end";
    }
    el("path", { d, "marker-end": e.failure ? "url(#arrow-red)" : "url(#arrow)" }, grp);
    const t = el("text", { x: lx, y: ly, "text-anchor": anchor }, grp);
    t.textContent = "";
  }
  const nodes = el("g", {}, svg);
  for (const s of g.states) {
    const p = layout[s];
    const n = el("g", { class: "node" + (s === "FAILED" ? " failed" : ""), "data-state": s }, nodes);
    el("rect", { x: p.x - NODE_W / 2, y: p.y - NODE_H / 2, width: NODE_W, height: NODE_H, rx: 4 }, n);
    const t = el("text", { x: p.x, y: p.y }, n);
    t.textContent = s;
  }
}

function updateGraph(g) {
  if (!layout || Object.keys(layout).length !== g.states.length) buildGraph(g);
  const w = document.getElementById("graph-window");
  w.textContent = g.window_s > 0 ? `(recent = last ${Math.round(g.window_s)} s)` : "(recent = since start)";
  const seen = new Set();
  for (const e of g.edges) {
    const grp = document.querySelector(`#graph [data-edge="${e.from}>${e.to}"]`);
    if (!grp) continue;
    grp.dataset.count = e.count;
    grp.dataset.recent = e.recent;
    grp.classList.toggle("hot", e.recent > 0);
    const t = grp.querySelector("text");
    t.textContent = e.count > 0 ? `${fmtCount(e.recent)}/${fmtCount(e.count)} · p99 ${fmtUs(e.p99_us)}` : "";
    if (e.count > 0) { seen.add(e.from); seen.add(e.to); }
  }
  document.querySelectorAll("#graph .node").forEach(n => {
    if (n.dataset.state !== "FAILED") n.classList.toggle("active", seen.has(n.dataset.state));
  });
}

function spark(id, values) {
  const line = document.querySelector(`#${id} polyline`);
  line.setAttribute("data-points", String(values.length));
  if (values.length < 2) { line.setAttribute("points", ""); return; }
  const max = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => `${(i / (values.length - 1)) * 200},${38 - (v / max) * 36}`);
  line.setAttribute("points", pts.join(" "));
}

function updateKey(k) {
  document.querySelector('[data-key="overhead"]').textContent = k.overhead_us.count ? fmtUs(k.overhead_us.p999) : "–";
  // The live numbers (last few seconds) move within a second; the moving
  // averages fold in every 5 s and take a minute to settle.
  const rate = (r) => r.toFixed(r < 10 ? 2 : 0) + " req/s";
  document.querySelector('[data-key="rate"]').textContent = rate(k.live.rps);
  document.querySelector('[data-key="rate-avg"]').textContent = `1 min ${rate(k.rate.m1)} · 5 min ${rate(k.rate.m5)} · 15 min ${rate(k.rate.m15)}`;
  document.querySelector('[data-key="errors"]').textContent = (k.live.error_ratio * 100).toFixed(2) + " %";
  document.querySelector('[data-key="errors-avg"]').textContent = `1 min ${(k.error_ratio * 100).toFixed(2)} % · ${fmtCount(k.errors_total)} of ${fmtCount(k.requests_total)} since start`;
  document.querySelectorAll(".live-window").forEach(e => { e.textContent = `last ${Math.ceil(k.live.window_s)} s`; });
  const h = k.history || [];
  spark("key-overhead", h.map(p => p.p999_us));
  spark("key-rate", h.map(p => p.rps));
  spark("key-errors", h.map(p => p.error_ratio));
}

function text(tag, s, cls) {
  const e = document.createElement(tag);
  e.textContent = s;
  if (cls) e.className = cls;
  return e;
}

function updateWaterfalls(items) {
  const box = document.getElementById("waterfalls");
  box.textContent = "";
  if (!items.length) { box.appendChild(text("p", "no requests yet", "muted")); return; }
  for (const it of items) {
    const wf = text("div", "", "wf");
    wf.dataset.id = it.ID;
    wf.appendChild(text("div", `${it.Method} ${it.Path} → ${it.Route || "-"} · ${it.Status} ${it.Outcome} · ${it.TotalMs.toFixed(3)}ms (overhead ${it.OverheadMs.toFixed(3)}ms)`, "title"));
    const total = Math.max(it.TotalMs, 0.001);
    const segs = it.Segments.filter(s => s.Kind !== "interval" || s.EndMs - s.StartMs >= total * 0.01);
    for (const s of segs.slice(0, 24)) {
      const row = text("div", "", "row");
      const label = s.Kind === "attempt" ? "attempt " + s.Name : s.Kind === "hook" ? "hook " + s.Name : s.Name;
      row.appendChild(text("span", label, "name")).title = label + (s.Note ? " (" + s.Note + ")" : "");
      const track = text("div", "", "track");
      const bar = text("div", "", "bar " + s.Kind + (s.Failed ? " failed" : ""));
      bar.style.left = (s.StartMs / total * 100) + "%";
      bar.style.width = ((s.EndMs - s.StartMs) / total * 100) + "%";
      track.appendChild(bar);
      track.appendChild(text("span", fmtUs((s.EndMs - s.StartMs) * 1000), "dur"));
      row.appendChild(track);
      wf.appendChild(row);
    }
    box.appendChild(wf);
  }
}

function updateHooks(rows) {
  const tb = document.querySelector("#hooks tbody");
  tb.textContent = "";
  if (!rows.length) { const tr = tb.insertRow(); tr.appendChild(text("td", "no hooks bound", "muted")).colSpan = 6; return; }
  for (const r of rows) {
    const tr = tb.insertRow();
    tr.dataset.hook = r.Hook;
    tr.appendChild(text("td", r.Hook));
    tr.appendChild(text("td", r.Scope));
    tr.appendChild(text("td", (r.Version || "–") + (r.Current ? "" : " (previous)"), r.Current ? "" : "muted"));
    tr.appendChild(text("td", fmtCount(r.Calls), "num"));
    tr.appendChild(text("td", (r.ErrorRate * 100).toFixed(2) + " %", "num" + (r.ErrorRate > 0 ? " bad" : "")));
    tr.appendChild(text("td", fmtUs(r.MeanUs), "num"));
  }
}

function updateAdmission(rows) {
  const tb = document.querySelector("#admission tbody");
  tb.textContent = "";
  if (!rows || !rows.length) { const tr = tb.insertRow(); tr.appendChild(text("td", "no adaptive limits configured", "muted")).colSpan = 4; return; }
  for (const r of rows) {
    const tr = tb.insertRow();
    tr.appendChild(text("td", r.service));
    tr.appendChild(text("td", String(r.limit), "num"));
    tr.appendChild(text("td", String(r.in_flight), "num" + (r.in_flight >= r.limit ? " bad" : "")));
    tr.appendChild(text("td", String(r.queue), "num" + (r.queue > 0 ? " bad" : "")));
  }
}

function updateFailed(items) {
  const tb = document.querySelector("#failed tbody");
  tb.textContent = "";
  for (const it of items) {
    const tr = tb.insertRow();
    tr.appendChild(text("td", it.Outcome, "bad"));
    tr.appendChild(text("td", it.Route || "-"));
    tr.appendChild(text("td", String(it.Status), "num"));
    tr.appendChild(text("td", it.TotalMs.toFixed(3) + "ms", "num"));
    tr.appendChild(text("td", it.Error));
  }
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

async function tick() {
  const status = document.getElementById("status");
  try {
    const [st, key, graph, slow, hooks, failed] = await Promise.all([
      getJSON("/admin/api/status"), getJSON("/admin/api/key"), getJSON("/admin/api/graph"),
      getJSON("/admin/passports?kind=slowest&limit=5"), getJSON("/admin/api/hooks"), getJSON("/admin/passports?kind=failed&limit=8"),
    ]);
    status.textContent = !st.observing ? "metrics off (observe.metrics: false)" : st.ready ? "ready" : "not ready: " + st.holds.join(", ");
    status.className = "status " + (st.ready ? "ok" : "bad");
    updateKey(key);
    updateGraph(graph);
    updateWaterfalls(slow);
    updateHooks(hooks);
    updateAdmission(st.admission);
    updateFailed(failed);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } catch (err) {
    status.textContent = "admin API unreachable";
    status.className = "status bad";
  }
  setTimeout(tick, 1000);
}

tick();
