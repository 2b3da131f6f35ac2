// The live view of one call: the agent's sidebar, and (read-only) the supervisor's call panel.
//
// Layout rule: every region has a fixed size, so nothing moves while the agent reads. Only the transcript
// scrolls, inside its own box, and it follows new lines only when the reader is already at the bottom.
// Events come from WS /v1/calls/{id}/events (docs/protocol.md); a dropped socket reconnects with
// ?after=<last eid>, and lines are keyed by seq, so nothing is shown twice.

import { ReconnectingSocket, api, clear, copyText, el, labelText, LEVELS, wsUrl } from "./common.js";
import { GuidancePanel } from "./guidance.js";

const CURRENT_TURNS = 3; // a label is "current" while it was flagged in one of the last 3 customer turns

/** Split `text` at the spans' code-point offsets (the server counts code points) into text and <mark>s. */
export function highlighted(text, spans) {
  const chars = Array.from(text);
  const marks = (spans || [])
    .map((s) => ({ start: Math.max(0, s.start), end: Math.min(chars.length, s.end), label: s.label }))
    .filter((s) => s.end > s.start)
    .sort((a, b) => a.start - b.start);
  // Merge overlapping spans (two labels on one word) into one mark naming both labels.
  const merged = [];
  for (const m of marks) {
    const last = merged[merged.length - 1];
    if (last && m.start < last.end) {
      last.end = Math.max(last.end, m.end);
      if (!last.labels.includes(m.label)) last.labels.push(m.label);
    } else merged.push({ start: m.start, end: m.end, labels: [m.label] });
  }
  const out = [];
  let at = 0;
  for (const m of merged) {
    if (m.start > at) out.push(chars.slice(at, m.start).join(""));
    const names = m.labels.map(labelText).join(", ");
    out.push(el("mark", { class: "flagged", title: names, "aria-label": `${chars.slice(m.start, m.end).join("")} (${names})` },
      chars.slice(m.start, m.end).join("")));
    at = m.end;
  }
  if (at < chars.length) out.push(chars.slice(at).join(""));
  return out;
}

export class CallView {
  /**
   * @param {HTMLElement} root   an empty element; the view builds its regions inside it
   * @param {string} callId
   * @param {{readonly?: boolean}} options  readonly: no feedback buttons (supervisor panel)
   */
  constructor(root, callId, { readonly = false } = {}) {
    this.root = root;
    this.callId = callId;
    this.readonly = readonly;
    this.lastEid = 0;
    this.lines = new Map(); // seq -> {li, speaker, text, spans}
    this.customerSeqs = [];
    this.flags = new Map(); // label -> {count, lastSeq}
    this.procedures = new Map(); // procedure id -> {title, count, steps: Map(index -> text)}
    this.suggestion = null;
    this.ended = false;
    this.build();
    this.socket = new ReconnectingSocket(
      () => wsUrl(`/v1/calls/${encodeURIComponent(callId)}/events`, this.lastEid ? { after: this.lastEid } : {}),
      { onMessage: (m) => this.handle(m), onState: (s, e) => this.connState(s, e) },
    );
  }

  close() {
    this.socket.close();
  }

  // ---- regions ------------------------------------------------------------------------------------------
  build() {
    const r = clear(this.root);
    r.classList.add("callview");
    this.conn = el("span", { class: "conn", role: "status" }, "connecting…");
    this.notice = el("span", { class: "notice", role: "status" });
    this.meterFill = el("span", { class: "meter-fill" });
    this.meter = el("span", {
      class: "meter", role: "meter", "aria-label": "call risk", "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-valuenow": 0, "aria-valuetext": "calm",
    }, this.meterFill);
    this.level = el("span", { class: "level level-none" }, "Calm");
    r.append(el("header", { class: "cv-head" },
      el("div", { class: "cv-title" }, el("span", { class: "call-id", title: this.callId }, this.callId), this.conn),
      el("div", { class: "meter-row" }, el("span", { class: "meter-label" }, "Risk"), this.meter, this.level),
      this.notice,
    ));

    this.chips = el("ul", { class: "chips", "aria-live": "polite" });
    this.flagNote = el("p", { class: "muted small" }, "No red flags.");
    r.append(el("section", { class: "cv-flags", "aria-label": "Red flags" },
      el("h2", {}, "Red flags"), this.chips, this.flagNote));

    this.proc = el("p", { class: "proc muted small" });
    this.step = el("p", { class: "step idle" }, "Listening… the next step appears here.");
    this.script = el("blockquote", { class: "script", hidden: true });
    this.copyBtn = el("button", { type: "button", class: "btn", disabled: true, onclick: () => this.copy() }, "Copy script");
    const actions = el("div", { class: "actions" }, this.copyBtn);
    if (!this.readonly) {
      this.usefulBtn = el("button", { type: "button", class: "btn", disabled: true, onclick: () => this.feedback("useful") }, "Useful");
      this.wrongBtn = el("button", { type: "button", class: "btn", disabled: true, onclick: () => this.feedback("wrong") }, "Wrong");
      actions.append(this.usefulBtn, this.wrongBtn);
    }
    this.fbStatus = el("p", { class: "fb-status small", role: "status" });
    r.append(el("section", { class: "cv-next", "aria-label": "Next step", "aria-live": "polite" },
      el("h2", {}, "Next step"), this.proc, this.step, this.script, actions, this.fbStatus));

    this.checklist = el("ol", { class: "checklist" }, el("li", { class: "muted small" }, "No procedure yet."));
    r.append(el("section", { class: "cv-checklist", "aria-label": "Procedure checklist" },
      el("h2", {}, "Procedure"), this.checklist));

    const guidance = el("section", { class: "cv-guidance", "aria-label": "Call checklist and abuse protocol" });
    this.guidance = new GuidancePanel(guidance);
    r.append(guidance);

    this.waiting = el("li", { class: "line note" }, "Waiting for the call…");
    this.log = el("ol", { class: "transcript", role: "log", "aria-label": "Transcript", tabindex: 0 }, this.waiting);
    this.jump = el("button", { type: "button", class: "btn jump", hidden: true, onclick: () => this.toBottom() }, "New lines ↓");
    this.log.addEventListener("scroll", () => { if (this.atBottom()) this.jump.hidden = true; });
    r.append(el("section", { class: "cv-transcript", "aria-label": "Transcript" },
      el("h2", {}, "Transcript"), el("div", { class: "log-box" }, this.log, this.jump)));
  }

  connState(state, event) {
    if (this.ended) return;
    const text = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", closed: "disconnected" }[state];
    this.conn.textContent = text;
    this.conn.dataset.state = state;
    if (state === "closed" && event && event.code >= 4400) this.notice.textContent = `Not allowed: ${event.reason || event.code}`;
  }

  // ---- events -------------------------------------------------------------------------------------------
  handle(m) {
    if (m.eid) {
      if (m.eid <= this.lastEid) return; // already shown (a resume never repeats, but be safe)
      this.lastEid = m.eid;
    }
    switch (m.type) {
      case "transcript": return this.onTranscript(m);
      case "flag": return this.onFlag(m);
      case "severity": return this.setSeverity(m.score, m.level);
      case "suggestion": return this.onSuggestion(m);
      case "guidance": return this.guidance.update(m);
      case "alert": this.notice.textContent = m.update ? "Supervisor alerted again." : "Supervisor alerted."; return;
      case "alert_ack": this.notice.textContent = `Supervisor ${m.acked_by} is on it.`; return;
      case "gap": return this.addNote(`missing lines ${m.first_missing}–${m.last_missing}`);
      case "degraded": this.notice.textContent = degradedText(m); return;
      case "call_ended":
        this.ended = true;
        this.conn.textContent = "call ended";
        this.conn.dataset.state = "ended";
        this.socket.close();
        return;
      case "error":
        if (m.reason === "analysis_failed") this.notice.textContent = "Analysis failed for one line; the call goes on.";
        return;
      default:
    }
  }

  atBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 8;
  }

  toBottom() {
    this.log.scrollTop = this.log.scrollHeight;
    this.jump.hidden = true;
  }

  /** Change the transcript without moving what the reader looks at. */
  withScroll(change) {
    const follow = this.atBottom();
    change();
    if (follow) this.toBottom();
    else this.jump.hidden = false;
  }

  onTranscript(m) {
    if (this.waiting) {
      this.waiting.remove();
      this.waiting = null;
    }
    const known = this.lines.get(m.seq);
    if (known && known.final) return; // a final line is never replaced
    const line = { speaker: m.speaker, text: m.text, spans: known ? known.spans : [], final: m.is_final };
    line.li = el("li", { class: `line ${m.speaker}${m.is_final ? "" : " partial"}`, dataset: { seq: m.seq } },
      el("span", { class: "who" }, m.speaker === "customer" ? "Customer" : "Agent"),
      el("span", { class: "text" }, highlighted(m.text, line.spans)));
    this.withScroll(() => {
      if (known) known.li.replaceWith(line.li);
      else this.insertLine(m.seq, line.li);
    });
    this.lines.set(m.seq, line);
    if (m.is_final && m.speaker === "customer") this.customerSeqs.push(m.seq);
  }

  insertLine(seq, li) {
    // Lines arrive in seq order; a partial line of a later seq may already be there.
    let before = null;
    for (const [s, other] of this.lines) if (s > seq && (!before || s < Number(before.dataset.seq))) before = other.li;
    if (before) this.log.insertBefore(li, before);
    else this.log.append(li);
  }

  addNote(text) {
    this.withScroll(() => this.log.append(el("li", { class: "line note" }, text)));
  }

  onFlag(m) {
    const line = this.lines.get(m.seq);
    if (line) {
      line.spans = m.spans || [];
      const text = line.li.querySelector(".text");
      clear(text).append(...highlighted(line.text, line.spans));
      line.li.classList.add("has-flag");
    }
    for (const label of m.labels) {
      const f = this.flags.get(label) || { count: 0, lastSeq: -1 };
      f.count += 1;
      f.lastSeq = m.seq;
      this.flags.set(label, f);
    }
    if (m.severity) this.setSeverity(m.severity.score, m.severity.level);
    this.renderFlags();
  }

  renderFlags() {
    const recent = new Set(this.customerSeqs.slice(-CURRENT_TURNS));
    const current = [...this.flags].filter(([, f]) => recent.has(f.lastSeq));
    const earlier = [...this.flags].filter(([, f]) => !recent.has(f.lastSeq));
    clear(this.chips).append(...current.map(([label, f]) =>
      el("li", { class: `chip chip-${label}` }, labelText(label), f.count > 1 ? el("span", { class: "count" }, ` ×${f.count}`) : null)));
    this.flagNote.textContent = earlier.length
      ? `Earlier: ${earlier.map(([l, f]) => `${labelText(l)} ×${f.count}`).join(", ")}`
      : current.length ? "" : "No red flags.";
  }

  setSeverity(score, level) {
    const lvl = LEVELS.includes(level) ? level : "none";
    this.meterFill.style.width = `${Math.round(Math.min(1, Math.max(0, score)) * 100)}%`;
    this.meter.dataset.level = lvl;
    this.meter.setAttribute("aria-valuenow", Math.round(score * 100));
    this.meter.setAttribute("aria-valuetext", `${lvl} (${score.toFixed(2)})`);
    this.level.className = `level level-${lvl}`;
    this.level.textContent = lvl === "none" ? "Calm" : lvl[0].toUpperCase() + lvl.slice(1);
    this.renderFlags(); // older flags fade from "current" as the call moves on
  }

  onSuggestion(m) {
    const s = (m.suggestions || [])[0];
    this.suggestion = s ? { ...s, eid: m.eid } : null;
    if (this.fbStatus) this.fbStatus.textContent = "";
    if (!s) {
      this.proc.textContent = "";
      this.step.textContent = "Nothing to do right now: listen.";
      this.step.className = "step idle";
      this.script.hidden = true;
      this.setButtons(false);
      return;
    }
    this.proc.textContent = `${s.procedure_title} · step ${s.step_index + 1} of ${s.step_count}`;
    this.step.textContent = s.step;
    this.step.className = "step";
    this.script.textContent = s.script ? `“${s.script}”` : "";
    this.script.hidden = !s.script;
    this.setButtons(true);
    this.copyBtn.disabled = !s.script;
    this.copyBtn.textContent = "Copy script";
    const p = this.procedures.get(s.procedure_id) || { title: s.procedure_title, count: s.step_count, steps: new Map() };
    p.count = s.step_count;
    p.steps.set(s.step_index, s.step);
    this.procedures.set(s.procedure_id, p);
    this.renderChecklist(s, m.advisor || {});
    this.loadSteps(s, m.advisor || {});
  }

  // Names every step of the checklist (the events only carry the current one); fetched once per procedure.
  async loadSteps(s, advisor) {
    const p = this.procedures.get(s.procedure_id);
    if (!p || p.loaded) return;
    p.loaded = true;
    try {
      const proc = await api(`/v1/procedures/${s.procedure_id.split("/").map(encodeURIComponent).join("/")}`);
      for (const step of proc.steps) if (!p.steps.has(step.index)) p.steps.set(step.index, step.title || step.action);
      if (this.suggestion && this.suggestion.procedure_id === s.procedure_id) this.renderChecklist(this.suggestion, advisor);
    } catch (err) {
      // No knowledge base behind the service (stand-in advisor): the checklist keeps "Step N".
      console.debug("procedure steps unavailable:", err.message);
    }
  }

  setButtons(enabled) {
    this.copyBtn.disabled = !enabled;
    if (this.usefulBtn) {
      this.usefulBtn.disabled = !enabled;
      this.wrongBtn.disabled = !enabled;
      this.usefulBtn.removeAttribute("aria-pressed");
      this.wrongBtn.removeAttribute("aria-pressed");
    }
  }

  renderChecklist(s, advisor) {
    // The advisor's state names the steps done: a list (rule advisor) or {procedure id: [indexes]}.
    let done = advisor.done;
    if (done && !Array.isArray(done)) done = done[s.procedure_id];
    const doneSet = new Set(Array.isArray(done) ? done : []);
    if (!Array.isArray(done)) for (let i = 0; i < s.step_index; i++) doneSet.add(i);
    const p = this.procedures.get(s.procedure_id);
    const items = [];
    for (let i = 0; i < p.count; i++) {
      const state = i === s.step_index ? "current" : doneSet.has(i) ? "done" : "todo";
      const mark = { done: "✓", current: "▶", todo: "○" }[state];
      const words = { done: "done", current: "now", todo: "to do" }[state];
      items.push(el("li", { class: `step-${state}`, "aria-current": state === "current" ? "step" : null },
        el("span", { class: "mark", "aria-hidden": "true" }, mark),
        el("span", {}, p.steps.get(i) || `Step ${i + 1}`),
        el("span", { class: "sr-only" }, ` (${words})`)));
    }
    clear(this.checklist).append(...items);
  }

  async copy() {
    if (!this.suggestion) return;
    const ok = await copyText(this.suggestion.script);
    this.copyBtn.textContent = ok ? "Copied ✓" : "Copy failed";
  }

  async feedback(verdict) {
    const s = this.suggestion;
    if (!s) return;
    this.usefulBtn.disabled = this.wrongBtn.disabled = true;
    try {
      await api(`/v1/calls/${encodeURIComponent(this.callId)}/feedback`, {
        method: "POST",
        body: { verdict, eid: s.eid, procedure_id: s.procedure_id, step_index: s.step_index },
      });
      (verdict === "useful" ? this.usefulBtn : this.wrongBtn).setAttribute("aria-pressed", "true");
      this.fbStatus.textContent = verdict === "useful" ? "Thanks: marked useful." : "Thanks: marked wrong.";
    } catch (e) {
      this.fbStatus.textContent = `Not saved (${e.message}).`;
      this.usefulBtn.disabled = this.wrongBtn.disabled = false;
    }
  }
}

// What a `degraded` event means to a person (docs/protocol.md, "Overload").
const FEATURE_TEXT = { red_flags: "red flags are late", suggestions: "next steps are skipped", steps: "step tracking is skipped" };
export function degradedText(m) {
  if (m.features && m.features.length) return `Service busy: ${m.features.map((f) => FEATURE_TEXT[f] || f).join(", ")}.`;
  return "Service back to normal.";
}
