// Call guidance on the pages: the sidebar's stage checklist and abuse-protocol panel (from `guidance` events),
// and the supervisor's QA view (GET /v1/calls/{id}/qa) and incident record (GET/PATCH
// /v1/calls/{id}/incident-report, PDF with ?format=pdf). Text is always added as text, never as HTML.
import { api, clear, el, token } from "./common.js";

const STAGE_TITLES = {
  greeting: "Greeting",
  identification: "Identification",
  problem_resolution: "Problem resolution",
  information_sharing: "Information sharing",
  closing: "Closing",
};
const SHORT_STEP = {
  greeting_given: "Greeting",
  identity_verified: "Identity verified",
  issue_summarised: "Issue summarised",
  further_help_offered: "Further help",
  customer_thanked: "Thanked",
};
const KIND_TEXT = {
  redirect: "Redirect",
  first_warning: "First warning",
  final_warning: "Final warning",
  end_call: "Call ended",
  "de-escalation": "De-escalation",
  handover: "Handover",
  response: "Response",
};

export function stageTitle(id) {
  return STAGE_TITLES[id] || String(id || "–").replace(/_/g, " ");
}

/** The sidebar region: stage, required steps ticked as they happen, and where the call is in the protocol. */
export class GuidancePanel {
  constructor(section) {
    this.stage = el("span", { class: "g-stage" }, "Stage: –");
    this.score = el("span", { class: "g-score muted small" });
    this.steps = el("ul", { class: "g-steps", "aria-label": "Required steps" });
    this.protocol = el("div", { class: "g-protocol", hidden: true, "aria-live": "polite" });
    section.append(el("h2", {}, "Call checklist"), el("div", { class: "g-head" }, this.stage, this.score), this.steps, this.protocol);
  }

  update(m) {
    this.stage.textContent = `Stage: ${stageTitle(m.stage)}`;
    const done = m.checklist.filter((s) => s.done).length;
    this.score.textContent = `${done}/${m.checklist.length} steps`;
    clear(this.steps).append(...m.checklist.map((s) => el("li", {
      class: s.done ? "g-done" : "g-todo",
      title: s.done ? `seq ${s.seq}: “${s.evidence}”` : `${s.title}: not yet`,
      dataset: { step: s.step },
    }, el("span", { class: "mark", "aria-hidden": "true" }, s.done ? "✓" : "○"), SHORT_STEP[s.step] || s.title,
    el("span", { class: "sr-only" }, s.done ? ` (done at line ${s.seq})` : " (to do)"))));
    this.renderProtocol(m.protocol);
  }

  renderProtocol(p) {
    this.protocol.hidden = !p.active;
    if (!p.active) return;
    const ladder = el("ol", { class: "g-ladder", "aria-label": "Abuse protocol" }, ...p.steps.map((s) => {
      const state = s.given ? "done" : s.due ? "due" : "todo";
      return el("li", { class: `g-${state}`, dataset: { step: s.step } },
        el("span", { class: "mark", "aria-hidden": "true" }, { done: "✓", due: "▶", todo: "○" }[state]), s.title,
        el("span", { class: "sr-only" }, ` (${state === "done" ? "done" : state === "due" ? "due now" : "not reached"})`));
    }));
    const head = el("div", { class: "g-prot-head" },
      el("strong", {}, "Protocol"),
      el("span", { class: "badge level-high" }, p.severity_title || p.severity),
      p.may_end_call ? el("span", { class: "badge alerting" }, "You may end the call") : null,
      p.supervisor_alerted ? el("span", { class: "badge" }, "Supervisor alerted") : null);
    const say = p.due && p.say ? el("p", { class: "g-say" }, el("span", { class: "small muted" }, "Say now: "), `“${p.say}”`) : null;
    const care = p.wellbeing.length
      ? el("p", { class: "g-care small" }, el("strong", {}, "For you: "),
        ...p.wellbeing.map((w, i) => el("span", { title: w.detail }, `${i ? " · " : ""}${w.title}`)))
      : null;
    clear(this.protocol).append(head, ladder, say, care);
    // What to say now matters most: keep it in view inside the region (the region scrolls, the page does not).
    if (say && p.due !== this.shownDue) say.scrollIntoView({ block: "nearest" });
    this.shownDue = p.due;
  }
}

// ---- supervisor: QA view ---------------------------------------------------------------------------------------
export async function renderQA(box, callId) {
  clear(box).append(el("p", { class: "empty" }, "Loading…"));
  try {
    const [qa, summary] = await Promise.all([
      api(`/v1/calls/${encodeURIComponent(callId)}/qa`),
      api(`/v1/calls/${encodeURIComponent(callId)}/summary`),
    ]);
    const pct = Math.round(qa.score * 100);
    const note = el("dl", { class: "qa-summary small" },
      el("dt", {}, "Reason"), el("dd", {}, summary.reason ? `“${summary.reason}”` : "–"),
      el("dt", {}, "Done"), el("dd", {}, summary.done.map((d) => `line ${d.seq}: “${d.text}”`).join(" · ") || "–"),
      el("dt", {}, "Outcome"), el("dd", {}, summary.outcome),
      el("dt", {}, "Follow-ups"), el("dd", {}, summary.follow_ups.join(" · ") || "–"));
    clear(box).append(
      el("h3", {}, `Script adherence: ${pct}%`),
      el("p", { class: "small muted" }, `${qa.done} of ${qa.required} required steps · agent ${qa.agent || "unknown"}`),
      el("h4", {}, "Stages"),
      el("p", { class: "small qa-stages" }, qa.stages.map((s) => `${stageTitle(s.stage)} (line ${s.seq})`).join(" → ") || "–"),
      el("h4", {}, "Required steps"),
      el("table", { class: "qa-table" },
        el("thead", {}, el("tr", {}, el("th", {}, "Step"), el("th", {}, "Done"), el("th", { class: "num" }, "Line"), el("th", {}, "Evidence"))),
        el("tbody", {}, ...qa.steps.map((s) => el("tr", { class: s.done ? "qa-done" : "qa-missed", dataset: { step: s.step } },
          el("td", {}, s.title),
          el("td", {}, s.done ? "✓ yes" : "✗ no"),
          el("td", { class: "num" }, s.seq ?? "–"),
          el("td", { class: "small" }, s.evidence ? `“${s.evidence}”` : "–"))))),
      el("h4", {}, "Call log summary"),
      note,
    );
  } catch (e) {
    clear(box).append(el("p", { class: "error" }, `No QA result: ${e.message}`));
  }
}

// ---- supervisor: incident record ----------------------------------------------------------------------------
function field(label, ...content) {
  return [el("h4", {}, label), ...content];
}

async function downloadPdf(callId, link) {
  const headers = { Accept: "application/pdf" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const res = await fetch(`/v1/calls/${encodeURIComponent(callId)}/incident-report?format=pdf`, { headers });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  link.href = URL.createObjectURL(await res.blob());
  link.download = `incident-${callId}.pdf`;
  link.click();
}

export async function renderIncident(box, callId) {
  clear(box).append(el("p", { class: "empty" }, "Loading…"));
  let r;
  try {
    r = await api(`/v1/calls/${encodeURIComponent(callId)}/incident-report`);
  } catch (e) {
    clear(box).append(el("p", { class: "error" }, `No report: ${e.message}`));
    return;
  }
  const status = el("p", { class: "status-line small", role: "status" });
  const pdfLink = el("a", { hidden: true });
  const pdfBtn = el("button", { type: "button", class: "btn", onclick: () => downloadPdf(callId, pdfLink).catch((e) => { status.textContent = `PDF failed: ${e.message}`; }) }, "Download PDF");
  const description = el("textarea", { id: "ir-description", rows: 5, class: "ir-text", "aria-label": "Description" });
  description.value = r.description;
  const followUp = el("textarea", { id: "ir-follow-up", rows: 3, class: "ir-text", "aria-label": "Follow-up, one per line" });
  followUp.value = r.follow_up.join("\n");
  const involved = el("input", { type: "checkbox", id: "ir-supervisor", checked: r.supervisor_involved });
  const reviewed = el("input", { type: "checkbox", id: "ir-reviewed", checked: r.status === "reviewed" });
  const save = el("button", { type: "submit", class: "btn primary" }, "Save changes");
  const form = el("form", { class: "ir-form", onsubmit: async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    try {
      const body = {
        description: description.value,
        follow_up: followUp.value.split("\n").map((x) => x.trim()).filter(Boolean),
        supervisor_involved: involved.checked,
        status: reviewed.checked ? "reviewed" : "draft",
      };
      const updated = await api(`/v1/calls/${encodeURIComponent(callId)}/incident-report`, { method: "PATCH", body });
      status.textContent = `Saved (${updated.edits.length} edit${updated.edits.length === 1 ? "" : "s"}).`;
    } catch (e) {
      status.textContent = `Not saved: ${e.message}`;
    } finally {
      save.disabled = false;
    }
  } });
  const sup = r.supervisor;
  form.append(
    el("div", { class: "row" }, el("h3", { style: "margin:0" }, `Incident report · ${r.status}`), el("span", { style: "margin-left:auto" }), pdfBtn, pdfLink),
    ...field("Date and time", el("p", {}, r.date_time ? new Date(r.date_time).toLocaleString() : "–")),
    ...field("Duration", el("p", {}, r.duration_s != null ? `${Math.round(r.duration_s)} s` : "call still live")),
    ...field("Agent", el("p", {}, `${r.agent.name || "(name not given)"} · ID ${r.agent.id || "unknown"}`)),
    ...field("Customer", el("p", {}, `${r.customer.name || "(not given)"} · ${r.customer.contact || "no contact given on the call"}${r.customer.redacted ? " (redacted)" : ""}`)),
    ...field("Description", description),
    ...field("Quotes", el("ul", { class: "ir-quotes" }, ...r.quotes.map((q) => el("li", {}, `line ${q.seq} (${q.labels.join(", ")}): “${q.text}”`)))),
    ...field("Actions taken by the agent", el("ul", { class: "ir-actions" }, ...r.actions_taken.map((a) =>
      el("li", { dataset: { kind: a.kind } }, el("strong", {}, `${KIND_TEXT[a.kind] || a.kind}`), ` · line ${a.seq}: “${a.text}”`)))),
    ...field("Warnings given", el("p", {}, r.warnings_given.map((w) => KIND_TEXT[w] || w).join(", ") || "none")),
    ...field("Supervisor", el("label", { class: "row small" }, involved, "Supervisor involved"),
      el("p", { class: "small" }, [
        sup.who.length ? `Who: ${sup.who.join(", ")}` : "No acknowledgement recorded",
        sup.alerted_at_seq != null ? ` · alerted at line ${sup.alerted_at_seq}` : "",
        sup.handover_seq != null ? ` · handed over at line ${sup.handover_seq}` : "",
      ].join(""))),
    ...field("Follow-up (one per line)", followUp),
    el("div", { class: "row" }, el("label", { class: "row small" }, reviewed, "Reviewed"), save),
    status,
  );
  clear(box).append(form);
}

// ---- supervisor: the report over a period ------------------------------------------------------------------
async function fetchBlob(path, accept) {
  const headers = { Accept: accept };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const res = await fetch(path, { headers });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.blob();
}

/** Wire the period form: per-agent table (JSON), chart (PNG) and CSV download from GET /v1/reports/supervisor. */
export function periodReport(form, { since, until, table, chart, csvButton, status }) {
  const day = (d) => d.toISOString().slice(0, 10);
  const now = new Date();
  until.value = day(new Date(now.getTime() + 86400000));
  since.value = day(new Date(now.getTime() - 7 * 86400000));
  const query = () => `/v1/reports/supervisor?since=${since.value}&until=${until.value}`;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.textContent = "Loading…";
    try {
      const r = await api(query());
      const fmt = (v, d = 1) => (v == null ? "–" : Number(v).toFixed(d));
      clear(table.tBodies[0]).append(...r.agents.map((a) => el("tr", {},
        el("td", {}, a.agent), el("td", { class: "num" }, a.calls), el("td", { class: "num" }, fmt(a.handle_time_s, 0)),
        el("td", { class: "num" }, fmt(a.time_to_first_response_s)), el("td", { class: "num" }, fmt(a.red_flags_per_call, 2)),
        el("td", { class: "num" }, a.escalations), el("td", { class: "num" }, `${Math.round(a.adherence * 100)}%`))));
      table.hidden = false;
      chart.src = URL.createObjectURL(await fetchBlob(`${query()}&format=png`, "image/png"));
      chart.hidden = false;
      status.textContent = `${r.calls.length} call(s).`;
    } catch (e) {
      status.textContent = `No report: ${e.message}`;
    }
  });
  csvButton.addEventListener("click", async () => {
    try {
      const a = el("a", { href: URL.createObjectURL(await fetchBlob(`${query()}&format=csv`, "text/csv")), download: `supervisor-report-${since.value}-${until.value}.csv` });
      a.click();
    } catch (e) {
      status.textContent = `No CSV: ${e.message}`;
    }
  });
}
