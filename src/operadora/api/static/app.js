// Operadora dashboard: plain JS, no build step. Live updates arrive over Server-Sent Events
// read with fetch() so the bearer token travels in a header, never in a URL.
"use strict";

const TOKEN_KEY = "operadora.token";
const state = { token: localStorage.getItem(TOKEN_KEY) || "", role: null, calls: new Map(), justEnded: new Map(), abort: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function toast(message, kind) {
  const t = $("toast");
  t.textContent = message;
  t.className = kind || "error";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

async function api(path, options) {
  const res = await fetch(path, { ...(options || {}), headers: { Authorization: "Bearer " + state.token, ...((options || {}).headers || {}) } });
  if (!res.ok) {
    let body = {};
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    const err = new Error(body.message || res.statusText);
    err.status = res.status; err.errorId = body.error_id;
    throw err;
  }
  return res;
}
const getJSON = async (path) => (await api(path)).json();

const fmtTime = (t) => t ? new Date(t * 1000).toLocaleString() : "";
function fmtDuration(seconds) {
  if (seconds == null || seconds < 0) return "";
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// ---- live calls -------------------------------------------------------------------------

function callRow(call) {
  let row = document.getElementById("call-" + call.id);
  if (row) return row;
  const admin = state.role === "admin";
  const hang = el("button", { class: "hangup", disabled: !admin, title: admin ? "Hang up now" : "admins only" }, "Hang up");
  hang.addEventListener("click", () => act(call.id, "hangup"));
  const rec = el("button", { class: "record", disabled: !admin, title: admin ? "Record this call" : "admins only" }, "Record");
  rec.addEventListener("click", () => act(call.id, "record"));
  row = el("tr", { id: "call-" + call.id, class: "call", "data-call-id": call.id },
    el("td", { class: "caller" }), el("td", { class: "did" }), el("td", { class: "state" }),
    el("td", { class: "duration" }), el("td", { class: "speaking" }),
    el("td", {}, el("div", { class: "transcript" })), el("td", { class: "actions" }, hang, rec));
  $("live-body").append(row);
  return row;
}

function renderCall(call) {
  const row = callRow(call);
  row.querySelector(".caller").textContent = call.caller_id || "unknown";
  row.querySelector(".did").textContent = call.did || "";
  row.querySelector(".state").textContent = call.state + (call.recording ? " ● rec" : "") + (call.transfer ? ` → ${call.transfer.kind} ${call.transfer.target}` : "");
  row.querySelector(".speaking").textContent = (call.speaking || []).join(", ");
  const box = row.querySelector(".transcript");
  while (box.childElementCount < call.turns.length) {
    const turn = call.turns[box.childElementCount];
    box.append(el("p", { class: "turn " + turn.speaker }, el("b", {}, turn.speaker + ": "), turn.text));
  }
  scrollLater(box);
  renderCounts();
}

// Scrolling reads layout: do it once per frame for every transcript that grew, not per event.
const toScroll = new Set();
function scrollLater(box) {
  if (!toScroll.size) requestAnimationFrame(() => {
    for (const b of toScroll) b.scrollTop = b.scrollHeight;
    toScroll.clear();
  });
  toScroll.add(box);
}

function renderCounts() {
  $("live-count").textContent = state.calls.size;
  $("live-empty").hidden = state.calls.size > 0;
  const transfers = $("transfers"), queue = $("queue");
  transfers.replaceChildren(); queue.replaceChildren();
  for (const call of state.calls.values()) {
    if (!call.transfer) continue;
    const item = el("li", {}, `${call.caller_id || call.id}: ${call.transfer.kind} → ${call.transfer.target} (${call.transfer.state})`);
    (call.transfer.kind === "queue" ? queue : transfers).append(item);
  }
}

function tickDurations() {
  const now = Date.now() / 1000;
  for (const call of state.calls.values()) {
    const row = document.getElementById("call-" + call.id);
    if (row) row.querySelector(".duration").textContent = fmtDuration(now - (call.answered_at || call.arrived_at));
  }
}

function ensureCall(id, at) {
  let call = state.calls.get(id);
  if (!call) {
    call = { id, caller_id: "", did: "", state: "arrived", arrived_at: at, answered_at: null, speaking: [], turns: [], transfer: null, recording: null };
    state.calls.set(id, call);
  }
  return call;
}

function onEvent(kind, e) {
  if (kind === "snapshot") {
    state.calls = new Map(e.calls.map((c) => [c.id, c]));
    $("live-body").replaceChildren();
    for (const c of state.calls.values()) renderCall(c);
    renderCounts();
    return;
  }
  if (kind === "resync") { reconnect(0); return; }
  if (kind === "CallEndedEvent") {
    const ended = state.calls.get(e.call_id);
    state.calls.delete(e.call_id);
    document.getElementById("call-" + e.call_id)?.remove();
    renderCounts();
    // show it in history at once; the server's records replace it once they have it
    if (ended) {
      const record = { ...ended, ended_at: e.at, disposition: e.disposition, ended_by: e.ended_by, tries: 0 };
      state.justEnded.set(e.call_id, record);
      if (!$("history-q").value.trim()) $("history-body").prepend(historyRow(record));
    }
    clearTimeout(onEvent.history);
    onEvent.history = setTimeout(loadHistory, 1000);
    loadSide(); scheduleStats();
    return;
  }
  const call = ensureCall(e.call_id, e.at);
  switch (kind) {
    case "CallArrivedEvent": Object.assign(call, { caller_id: e.caller_id, did: e.did, arrived_at: e.at }); break;
    case "CallAnsweredEvent": Object.assign(call, { state: "answered", answered_at: e.at }); break;
    case "MediaConnectedEvent": call.state = "connected"; break;
    case "SpeakingEvent":
      call.speaking = call.speaking.filter((s) => s !== e.speaker);
      if (e.speaking) call.speaking.push(e.speaker);
      break;
    case "TurnEvent": call.turns.push({ speaker: e.speaker, text: e.text, at: e.at, latency_ms: e.latency_ms }); break;
    case "TransferEvent":
      call.transfer = e.outcome ? null : { id: e.transfer_id, kind: e.kind, target: e.target, state: e.state };
      if (e.outcome) loadSide();
      break;
    case "RecordingEvent": call.recording = e.state === "started" ? e.name : null; break;
    case "ActionRequestedEvent": if (e.action === "callback") setTimeout(loadSide, 300); break;
    default: return;
  }
  renderCall(call);
}

async function act(callId, action) {
  try {
    await api(`/api/calls/${encodeURIComponent(callId)}/${action}`, { method: "POST" });
    toast(action === "hangup" ? "Hanging up." : "Recording started.", "ok");
  } catch (err) {
    toast(`${action} refused: ${err.message}`);
  }
}

// ---- the event stream -------------------------------------------------------------------

function setConn(on) {
  const c = $("conn");
  c.textContent = on ? "live" : "offline";
  c.className = "badge " + (on ? "on" : "off");
}

async function stream(signal) {
  const res = await api("/api/live/stream", { signal, headers: { Accept: "text/event-stream" } });
  setConn(true);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let kind = "message", data = "";
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(kind, JSON.parse(data));
    }
  }
}

function reconnect(delay) {
  if (state.abort) state.abort.abort();
  const abort = new AbortController();
  state.abort = abort;
  setTimeout(async () => {
    try { await stream(abort.signal); } catch (err) {
      if (abort.signal.aborted) return;
      setConn(false);
      if (err.status === 401) { toast("The token was refused: " + err.message); return; }
    }
    if (!abort.signal.aborted) { setConn(false); reconnect(2000); }
  }, delay);
}

// ---- side panels, charts, history -------------------------------------------------------

async function loadSide() {
  try {
    const [agents, callbacks] = await Promise.all([getJSON("/api/agents"), getJSON("/api/callbacks")]);
    const none = () => el("li", { class: "empty" }, "none");
    const agentItems = agents.map(agentItem);
    const callbackItems = callbacks.slice(0, 20).map((c) => el("li", {}, `${c.number} ${c.due_at ? "at " + fmtTime(c.due_at) : ""} — ${c.state}`));
    $("agents").replaceChildren(...(agentItems.length ? agentItems : [none()]));
    $("callbacks").replaceChildren(...(callbackItems.length ? callbackItems : [none()]));
  } catch (_) { /* shown by the stream state */ }
}

const AGENT_STATUSES = ["available", "busy", "on_call", "paused", "offline"];

function agentItem(a) {
  const item = el("li", { class: "agent " + a.status, "data-agent-id": a.id }, `${a.name} (${a.extension || "-"}): `);
  if (state.role !== "admin") { item.append(a.status); return item; }
  const select = el("select", { class: "agent-status", title: "change status" },
    ...AGENT_STATUSES.map((st) => el("option", { value: st, selected: st === a.status }, st)));
  select.addEventListener("change", async () => {
    try {
      await api(`/api/agents/${encodeURIComponent(a.id)}`, {
        method: "PUT", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ status: select.value }),
      });
      item.className = "agent " + select.value;
    } catch (err) { toast("Could not change the status: " + err.message); select.value = a.status; }
  });
  item.append(select);
  return item;
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function barChart(svg, pairs, color) {
  svg.replaceChildren();
  if (!pairs.length) { svg.append(svgEl("text", { x: 10, y: 70, class: "axis" }, "no data yet")); return; }
  const max = Math.max(...pairs.map((p) => p[1]), 1);
  const w = 460 / pairs.length;
  pairs.forEach(([label, value], i) => {
    const h = (value / max) * 90;
    svg.append(svgEl("rect", { x: 10 + i * w, y: 112 - h, width: Math.max(w - 2, 1), height: h, fill: color }));
    if (value) svg.append(svgEl("text", { x: 10 + i * w + w / 2, y: 108 - h, class: "value" }, String(Math.round(value))));
    if (label) svg.append(svgEl("text", { x: 10 + i * w + w / 2, y: 128, class: "axis" }, label));
  });
}

function lastHours(perHour, hours) {
  const counts = new Map(perHour.map(([h, n]) => [h, n]));
  const now = Math.floor(Date.now() / 3600000) * 3600;
  const out = [];
  for (let i = hours - 1; i >= 0; i--) {
    const h = now - i * 3600;
    out.push([i % 3 === 0 ? new Date(h * 1000).getHours() + "h" : "", counts.get(h) || 0]);
  }
  return out;
}

async function loadStats() {
  try {
    const s = await getJSON("/api/stats?hours=24");
    barChart($("chart-hours"), lastHours(s.calls_per_hour, 24), "#3b82f6");
    barChart($("chart-outcomes"), Object.entries(s.outcomes), "#10b981");
    $("containment").textContent = s.containment_rate == null ? "–" : Math.round(s.containment_rate * 100) + "%";
    barChart($("chart-latency"), Object.entries(s.latency_ms).filter(([, v]) => v != null), "#f59e0b");
  } catch (_) { /* retried on the next tick */ }
}
function scheduleStats() { clearTimeout(scheduleStats.t); scheduleStats.t = setTimeout(loadStats, 1000); }

function historyRow(c) {
  const row = el("tr", { class: "history-row", "data-call-id": c.id },
    el("td", {}, fmtTime(c.arrived_at)), el("td", {}, c.caller_id), el("td", {}, c.did),
    el("td", {}, fmtDuration(c.ended_at - (c.answered_at || c.arrived_at))),
    el("td", { class: "outcome" }, c.disposition), el("td", {}, c.ended_by));
  row.addEventListener("click", () => showDetail(c.id));
  return row;
}

async function loadHistory() {
  const q = $("history-q").value.trim();
  const params = new URLSearchParams({ state: "ended", limit: "25" });
  if (q) params.set(/^[+\d][\d\s-]*$/.test(q) ? "caller_id" : "q", q);
  try {
    const page = await getJSON("/api/calls?" + params);
    const rows = page.items.map(historyRow);
    for (const c of page.items) state.justEnded.delete(c.id);
    if (!q) {  // calls that ended here but are not in the records yet stay on top
      for (const [id, c] of state.justEnded) {
        if (++c.tries > 10) state.justEnded.delete(id); else rows.unshift(historyRow(c));
      }
      if (state.justEnded.size) { clearTimeout(onEvent.history); onEvent.history = setTimeout(loadHistory, 1000); }
    }
    $("history-body").replaceChildren(...rows);
  } catch (_) { /* retried later */ }
}

async function showDetail(callId) {
  try {
    const d = await getJSON(`/api/calls/${encodeURIComponent(callId)}`);
    $("detail").hidden = false;
    $("detail-title").textContent = `${d.caller_id} → ${d.did} · ${d.disposition} · ${fmtTime(d.arrived_at)}`;
    $("detail-transcript").replaceChildren(...d.turns.map((t) => el("p", { class: "turn " + t.speaker }, el("b", {}, t.speaker + ": "), t.text)));
    const recs = $("detail-recordings");
    recs.replaceChildren();
    for (const r of d.recordings) {
      const line = el("p", { class: "recording" }, `Recording ${r.name} (${r.reason}) `);
      if (r.playable) {
        const play = el("button", { class: "play" }, "Play");
        play.addEventListener("click", async () => {
          const blob = await (await api(`/api/recordings/${r.id}/audio`)).blob();
          const audio = el("audio", { controls: true, src: URL.createObjectURL(blob) });
          play.replaceWith(audio);
          audio.play().catch(() => {});
        });
        line.append(play);
      } else line.append("(no file yet)");
      recs.append(line);
    }
  } catch (err) { toast("Could not load the call: " + err.message); }
}

// ---- start ------------------------------------------------------------------------------

async function start() {
  if (!state.token) { $("whoami").textContent = "Enter a token to see the call center."; return; }
  try {
    const me = await getJSON("/api/me");
    state.role = me.role;
    $("whoami").textContent = `${me.name} (${me.role})`;
    document.body.dataset.role = me.role;
  } catch (err) {
    $("whoami").textContent = "Token refused: " + err.message;
    return;
  }
  reconnect(0);
  loadSide(); loadStats(); loadHistory();
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = state.token;
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    localStorage.setItem(TOKEN_KEY, state.token);
    $("live-body").replaceChildren();
    start();
  });
  $("token-clear").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    state.token = ""; $("token").value = "";
    if (state.abort) state.abort.abort();
    setConn(false);
  });
  $("history-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadHistory(); });
  setInterval(tickDurations, 1000);
  setInterval(loadSide, 10000);
  setInterval(loadStats, 30000);
  start();
});
