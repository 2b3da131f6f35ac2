// Supervisor dashboard: the alert feed (WS /v1/alerts), every call with its risk (GET /v1/calls), a live
// read-only view of any call, its QA view (GET /v1/calls/{id}/qa) and its incident report
// (GET/PATCH /v1/calls/{id}/incident-report), and the period report (GET /v1/reports/supervisor).
import { CallView, degradedText } from "./callview.js";
import { ReconnectingSocket, api, clear, clock, el, keepTokenOnLinks, labelText, wsUrl } from "./common.js";
import { periodReport, renderIncident, renderQA } from "./guidance.js";

const REFRESH_MS = 3000;
const alertsList = document.getElementById("alerts");
const announce = document.getElementById("announce");
const alerts = new Map(); // alert id -> {data, li}
const rows = new Map(); // call id -> {tr, cells}
let selected = null; // {id, view: CallView | null}
keepTokenOnLinks();

// ---- sound (off by default; the AudioContext needs a user gesture, which the checkbox click is) --------
const sound = document.getElementById("sound");
let audio = null;
sound.addEventListener("change", () => {
  if (sound.checked && !audio) audio = new AudioContext();
  if (sound.checked) beep();
});
function beep() {
  if (!sound.checked || !audio) return;
  for (const [at, freq] of [[0, 880], [0.2, 660]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.15, audio.currentTime + at);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + at + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start(audio.currentTime + at);
    osc.stop(audio.currentTime + at + 0.2);
  }
}

// ---- alerts ------------------------------------------------------------------------------------------------
const alertSocket = new ReconnectingSocket(() => wsUrl("/v1/alerts"), {
  onMessage: onAlertMessage,
  onState: (state) => {
    const conn = document.getElementById("alerts-conn");
    conn.textContent = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", closed: "disconnected" }[state];
    conn.dataset.state = state;
  },
});

function onAlertMessage(m) {
  if (m.type === "alert") {
    const known = alerts.get(m.id);
    // The server sends the open alerts again after a reconnect: only a new alert or a step-up is news.
    const news = !known || (m.update && (m.severity > known.data.severity || m.labels.length > known.data.labels.length));
    const data = known ? { ...known.data, ...m, acked: known.data.acked || m.acked } : m;
    renderAlert(data, news);
    if (news) {
      beep();
      announce.textContent = `${m.update ? "Alert stepped up" : "New alert"}: call ${m.call_id}, ${m.level}, ${m.labels.map(labelText).join(", ")}`;
      refreshCalls();
    }
  } else if (m.type === "alert_ack") {
    const known = alerts.get(m.id);
    if (known) renderAlert({ ...known.data, acked: true, acked_by: m.acked_by, note: m.note }, false);
    refreshCalls();
  } else if (m.type === "degraded") {
    // The service is past its capacity (or back): which features are behind, for the whole worker.
    document.getElementById("calls-status").textContent = degradedText(m);
  } else if (m.type === "error") {
    document.getElementById("calls-status").textContent = `Alert socket: ${m.message}`;
  }
}

function renderAlert(a, fresh) {
  const ackBtn = el("button", { type: "button", class: "btn warn ack", disabled: a.acked, onclick: () => ack(a.id) },
    a.acked ? "Acknowledged" : "Acknowledge");
  const li = el("li", { class: `alert level-${a.level}${a.acked ? " acked" : ""}${fresh ? " fresh" : ""}`, dataset: { id: a.id, call: a.call_id } },
    el("div", { class: "head" },
      el("span", { class: "what" }, `${a.reason[0].toUpperCase()}${a.reason.slice(1)}`),
      el("span", { class: `badge level-${a.level}` }, a.level),
      el("span", {}, "call ", el("strong", {}, a.call_id)),
      el("span", { class: "small muted" }, clock(a.ts), a.update ? " · stepped up" : ""),
    ),
    el("p", { class: "quote" }, `“${a.text}”`),
    el("div", { class: "row small" },
      el("span", { class: "muted" }, a.labels.map(labelText).join(", ")),
      el("span", { style: "margin-left:auto" }),
      a.acked ? el("span", { class: "muted" }, `by ${a.acked_by || "a supervisor"}`) : null,
      el("button", { type: "button", class: "btn", onclick: () => select(a.call_id, "live") }, "Open call"),
      ackBtn,
    ),
  );
  const known = alerts.get(a.id);
  if (known) known.li.replaceWith(li);
  else alertsList.prepend(li);
  alerts.set(a.id, { data: a, li });
  const open = [...alerts.values()].filter((x) => !x.data.acked).length;
  const badge = document.getElementById("open-count");
  badge.textContent = `${open} open`;
  badge.classList.toggle("alerting", open > 0);
  document.getElementById("no-alerts").hidden = alerts.size > 0;
}

async function ack(id) {
  const known = alerts.get(id);
  if (known) known.li.querySelector("button.ack").disabled = true;
  // The socket is the fast path; without it, the HTTP endpoint does the same.
  if (alertSocket.send({ type: "ack", id })) return;
  try {
    const res = await api(`/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST", body: {} });
    if (known) renderAlert({ ...known.data, acked: true, acked_by: res.acked_by }, false);
  } catch (e) {
    document.getElementById("calls-status").textContent = `Could not acknowledge: ${e.message}`;
    if (known) known.li.querySelector("button.ack").disabled = false;
  }
}

// ---- calls -------------------------------------------------------------------------------------------------
const liveOnly = document.getElementById("live-only");
liveOnly.addEventListener("change", () => refreshCalls());
let refreshing = false;

async function refreshCalls() {
  if (refreshing) return;
  refreshing = true;
  try {
    const calls = await api(`/v1/calls?limit=50${liveOnly.checked ? "&status=live" : ""}`);
    renderCalls(calls);
    document.getElementById("calls-status").textContent = "";
  } catch (e) {
    document.getElementById("calls-status").textContent = `Cannot load calls: ${e.message}`;
  } finally {
    refreshing = false;
  }
}

function renderCalls(calls) {
  const tbody = document.getElementById("calls");
  const seen = new Set();
  // Rows are updated in place (not rebuilt), so a keyboard user's focus on a button survives a refresh.
  calls.forEach((c, i) => {
    seen.add(c.id);
    let row = rows.get(c.id);
    if (!row) {
      const cells = {
        id: el("td", {}, el("strong", {}, c.id)),
        status: el("td"), risk: el("td"), peak: el("td"), flags: el("td", { class: "small" }),
        alerts: el("td", { class: "num" }),
      };
      const open = el("td", {}, el("div", { class: "row", style: "flex-wrap:nowrap" },
        el("button", { type: "button", class: "btn", onclick: () => select(c.id, "live"), "aria-label": `Watch call ${c.id}` }, "Live"),
        el("button", { type: "button", class: "btn", onclick: () => select(c.id, "qa"), "aria-label": `QA of call ${c.id}` }, "QA"),
        el("button", { type: "button", class: "btn", onclick: () => select(c.id, "report"), "aria-label": `Incident report of call ${c.id}` }, "Report")));
      const tr = el("tr", { dataset: { call: c.id } }, cells.id, cells.status, cells.risk, cells.peak, cells.flags, cells.alerts, open);
      row = { tr, cells };
      rows.set(c.id, row);
    }
    const { cells } = row;
    const status = c.status === "ended" ? "ended" : c.live ? "live" : c.status;
    cells.status.textContent = status;
    clear(cells.risk).append(
      el("span", { class: "meter", role: "meter", "aria-label": `risk of ${c.id}`, "aria-valuemin": 0, "aria-valuemax": 100,
        "aria-valuenow": Math.round(c.severity * 100), dataset: { level: c.severity_level }, style: "width:5rem;display:inline-block;vertical-align:middle" },
      el("span", { class: "meter-fill", style: `width:${Math.round(c.severity * 100)}%` })),
      " ", el("span", { class: `level level-${c.severity_level}` }, c.severity_level === "none" ? "calm" : c.severity_level));
    cells.peak.textContent = c.peak_level;
    cells.flags.textContent = Object.entries(c.flag_counts || {}).sort((a, b) => b[1] - a[1])
      .map(([l, n]) => `${labelText(l)} ${n}`).join(", ") || "–";
    cells.alerts.textContent = c.open_alerts;
    row.tr.classList.toggle("selected", selected !== null && selected.id === c.id);
    if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
  });
  for (const [id, row] of rows) if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
  document.getElementById("no-calls").hidden = calls.length > 0;
}

// ---- the selected call's panel -------------------------------------------------------------------------------
const panelBody = document.getElementById("panel-body");
const showTranscript = document.getElementById("show-transcript");
const showReport = document.getElementById("show-report");
const showQA = document.getElementById("show-qa");
showTranscript.addEventListener("click", () => selected && select(selected.id, "live"));
showReport.addEventListener("click", () => selected && select(selected.id, "report"));
showQA.addEventListener("click", () => selected && select(selected.id, "qa"));

function select(callId, what) {
  if (selected && selected.view) selected.view.close();
  selected = { id: callId, view: null };
  document.getElementById("panel-title").textContent = callId;
  showTranscript.disabled = showReport.disabled = showQA.disabled = false;
  showTranscript.setAttribute("aria-pressed", what === "live");
  showReport.setAttribute("aria-pressed", what === "report");
  showQA.setAttribute("aria-pressed", what === "qa");
  for (const [id, row] of rows) row.tr.classList.toggle("selected", id === callId);
  const url = new URL(location.href);
  url.searchParams.set("call", callId);
  history.replaceState(null, "", url);
  clear(panelBody);
  if (what === "live") {
    const box = el("div", { style: "height:100%" });
    panelBody.append(box);
    selected.view = new CallView(box, callId, { readonly: true });
  } else {
    const box = el("div", { class: "report", tabindex: 0, "aria-label": `${what === "qa" ? "QA" : "Incident report"} of call ${callId}` });
    panelBody.append(box);
    if (what === "qa") renderQA(box, callId);
    else renderIncident(box, callId);
  }
}

periodReport(document.getElementById("period"), {
  since: document.getElementById("period-since"),
  until: document.getElementById("period-until"),
  table: document.getElementById("period-agents"),
  chart: document.getElementById("period-chart"),
  csvButton: document.getElementById("period-csv"),
  status: document.getElementById("period-status"),
});
refreshCalls();
setInterval(refreshCalls, REFRESH_MS);
const pre = new URLSearchParams(location.search).get("call");
if (pre) select(pre, "live");
