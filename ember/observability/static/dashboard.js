// Ember's dashboard: one EventSource to /api/v1/events while the page is visible; nothing
// runs on the node when no page is open (the stream is its only cost). No build step.
"use strict";

const HISTORY_S = 300;
const history = []; // {t, messages, drops, frames}: counters from each frame, for the rates
let source = null;

const $ = (id) => document.getElementById(id);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function fill(tableId, rows, make) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    make(r, tr);
    return tr;
  }));
}

function counters(frame) {
  const c = frame.node.counters;
  const t = frame.sections.transport || {};
  return {
    t: frame.time,
    messages: c.messages_processed,
    drops: c.dropped_dead + c.mailbox_rejected + c.mailbox_dropped + c.dropped_on_exit + (t.dropped || 0),
    frames: t.frames_sent || 0,
  };
}

function rates(key) {
  // Per-second rates between consecutive frames, over the history window.
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const dt = history[i].t - history[i - 1].t;
    out.push(dt > 0 ? Math.max(0, history[i][key] - history[i - 1][key]) / dt : 0);
  }
  return out;
}

function spark(id, values) {
  const svg = $(id);
  const max = Math.max(1, ...values);
  const n = Math.max(1, values.length - 1);
  const points = values.map((v, i) => `${(i / n) * 300},${40 - (v / max) * 38}`).join(" ");
  svg.innerHTML = `<polyline points="${points}"></polyline>`;
}

function showRates() {
  for (const [key, label, sparkId] of [
    ["messages", "rate-messages", "spark-messages"],
    ["drops", "rate-drops", "spark-drops"],
    ["frames", "rate-frames", "spark-frames"],
  ]) {
    const r = rates(key);
    $(label).textContent = r.length ? Math.round(r[r.length - 1]).toLocaleString() : "–";
    spark(sparkId, r);
  }
}

function describe(name, s) {
  // One line per service: names per tier, groups per scope, or the service's own summary.
  if (!s.running) return "not running";
  if (name === "names" && s.names) {
    const tiers = Object.entries(s.names).map(([tier, n]) => `${n} ${tier}`).join(", ");
    return `${tiers}; ${s.conflicts} conflicts`;
  }
  if (name === "pg" && s.scopes) {
    return Object.entries(s.scopes)
      .map(([scope, c]) => `scope ${scope}: ${c.groups} groups, ${c.local_members} local members`)
      .join("; ") || "no scope";
  }
  if (name === "contracts" && s.coordinators !== undefined) {
    return `${s.coordinators} running; ${s.succeeded} succeeded, ${s.failed} failed`;
  }
  const rest = Object.entries(s).filter(([k]) => k !== "running").map(([k, v]) => `${k} ${JSON.stringify(v)}`);
  return rest.join(", ") || "running";
}

function render(frame) {
  $("node-name").textContent = frame.node.name;
  $("node-info").textContent = `${frame.node.address || "local"} · cluster ${frame.node.cluster} · ${frame.node.processes} process${frame.node.processes === 1 ? "" : "es"} · up ${Math.round(frame.node.uptime_s)} s`;
  fill("members", frame.members, (m, tr) => {
    tr.dataset.member = m.name;
    tr.dataset.status = m.status;
    tr.append(cell(m.name), cell(m.address), cell(m.status, m.status), cell(m.incarnation));
  });
  const raft = frame.sections.raft || {};
  fill("raft", raft.groups || [], (g, tr) => {
    tr.append(cell(g.group), cell(g.member), cell(g.role), cell(g.leader || "none", g.leader ? "" : "none"),
      cell(g.term), cell(g.commit), cell(g.applied), cell(g.max_lag));
  });
  const services = $("services");
  services.replaceChildren(...["names", "pg", "contracts"].map((name) => {
    const li = document.createElement("li");
    const s = frame.sections[name] || { running: false };
    li.dataset.service = name;
    li.textContent = `${name}: ${describe(name, s)}`;
    return li;
  }));
  const longest = Math.max(0, ...frame.top.map((p) => p.mailbox));
  fill("top", frame.top, (p, tr) => {
    const hot = longest > 0 && p.mailbox >= 0.85 * longest;
    tr.append(cell(p.pid), cell(p.name), cell(p.behaviour.split(".").pop()), cell(p.status),
      cell(p.mailbox, hot ? "hot" : ""), cell(p.messages.toLocaleString()));
  });
  history.push(counters(frame));
  while (history.length > 2 && history[history.length - 1].t - history[0].t > HISTORY_S) history.shift();
  showRates();
}

function setConn(on) {
  const el = $("conn");
  el.textContent = on ? "live" : "offline";
  el.className = on ? "conn on" : "conn off";
}

function connect() {
  if (source) return;
  source = new EventSource("/api/v1/events?top=10");
  source.addEventListener("summary", (e) => { setConn(true); render(JSON.parse(e.data)); });
  source.onerror = () => {
    setConn(false);
    // EventSource retries by itself; a 401 (session gone) ends the stream for good.
    if (source && source.readyState === EventSource.CLOSED) { source = null; check(); }
  };
}

function disconnect() {
  if (source) { source.close(); source = null; setConn(false); }
}

async function check() {
  const r = await fetch("/api/v1/node", { credentials: "same-origin" });
  if (r.status === 401) {
    $("board").hidden = true;
    $("login").hidden = false;
    return;
  }
  $("login").hidden = true;
  $("board").hidden = false;
  connect();
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await fetch("/api/v1/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: $("token").value }),
    credentials: "same-origin",
  });
  if (r.ok) { $("login-error").textContent = ""; check(); }
  else { $("login-error").textContent = "wrong token"; }
});

// A hidden tab stops its stream, so a forgotten background tab costs the node nothing.
document.addEventListener("visibilitychange", () => {
  if (document.hidden) disconnect(); else check();
});

check();
