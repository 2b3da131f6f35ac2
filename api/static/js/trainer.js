// Trainer page: the newest evaluation report (GET /v1/reports/latest), the newest behavioural-suite report
// (GET /v1/reports/checklist/latest) and the agents' feedback (GET /v1/feedback), exported as labeled JSON
// Lines (GET /v1/feedback/export).
import { api, clear, el, keepTokenOnLinks, labelText, token } from "./common.js";

keepTokenOnLinks();
const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

async function loadReport() {
  const box = document.getElementById("report");
  let found;
  try {
    found = await api("/v1/reports/latest");
  } catch (e) {
    clear(box).append(el("p", { class: "empty" }, e.status === 404 ? e.detail : `Cannot load the report: ${e.message}`));
    return;
  }
  const r = found.report;
  const systems = [["model", r], ...Object.entries(r.baselines || {})];
  const names = r.names || Object.keys(r.per_label);
  const head = el("tr", {}, el("th", {}, "Label"), el("th", { class: "num" }, "Support"),
    el("th", { class: "num" }, "Precision"), el("th", { class: "num" }, "Recall"), el("th", { class: "num" }, "F1"),
    el("th", { class: "num" }, "ROC AUC"),
    el("th", { class: "num", title: "true positives / false positives / false negatives, derived from P, R and support" }, "TP / FP / FN"),
    ...systems.slice(1).map(([name]) => el("th", { class: "num" }, `${name} F1`)));
  const body = names.map((name) => {
    const m = r.per_label[name] || {};
    // A confusion summary from the figures in the report: TP = R·support, FP = TP/P − TP, FN = support − TP.
    const tp = m.recall !== undefined ? Math.round(m.recall * m.support) : null;
    const fp = tp !== null && m.precision > 0 ? Math.round(tp / m.precision - tp) : null;
    const fn = tp !== null ? m.support - tp : null;
    const bestF1 = Math.max(...systems.map(([, s]) => (s.per_label[name] || {}).f1 ?? -1));
    return el("tr", {}, el("td", {}, labelText(name)), el("td", { class: "num" }, m.support ?? "–"),
      el("td", { class: "num" }, fmt(m.precision)), el("td", { class: "num" }, fmt(m.recall)),
      el("td", { class: `num${m.f1 === bestF1 ? " best" : ""}` }, fmt(m.f1)), el("td", { class: "num" }, fmt(m.roc_auc)),
      el("td", { class: "num" }, tp === null ? "–" : `${tp} / ${fp ?? "–"} / ${fn}`),
      ...systems.slice(1).map(([, s]) => {
        const f1 = (s.per_label[name] || {}).f1;
        return el("td", { class: `num${f1 === bestF1 ? " best" : ""}` }, fmt(f1));
      }));
  });
  const macro = el("tr", {}, el("th", {}, "macro F1"), el("td"), el("td"), el("td"),
    el("td", { class: "num best" }, fmt(r.macro_f1)), el("td"), el("td"),
    ...systems.slice(1).map(([, s]) => el("td", { class: "num" }, fmt(s.macro_f1))));
  const facts = [
    `${r.n ?? "?"} rows`, r.data ? `data ${r.data}` : null, r.device ? `device ${r.device}` : null,
    r.mode ? `mode ${r.mode}` : null, `file ${found.file}`, `written ${new Date(found.modified * 1000).toLocaleString()}`,
  ].filter(Boolean);
  const lat = r.latency;
  clear(box).append(
    el("p", { class: "small muted" }, facts.join(" · ")),
    el("div", { class: "table-wrap" }, el("table", { "aria-label": "Metrics per label" },
      el("thead", {}, head), el("tbody", {}, ...body, macro))),
    el("h2", { style: "margin-top:1rem" }, "Latency"),
    lat ? el("p", {}, `One utterance: p50 ${lat.single_p50_ms} ms, p95 ${lat.single_p95_ms} ms. `,
      `Batches of ${lat.batch_size}: ${lat.batch_throughput_per_s} utterances/s.`)
      : el("p", { class: "empty" }, "Not measured in this report."),
  );
}

// One row per capability: tests, then the pass rate per system (the best in bold); the model's failures
// (text, expected, got) fold out under the table, one <details> per capability.
async function loadChecklist() {
  const box = document.getElementById("suite");
  let found;
  try {
    found = await api("/v1/reports/checklist/latest");
  } catch (e) {
    clear(box).append(el("p", { class: "empty" }, e.status === 404 ? e.detail : `Cannot load the suite: ${e.message}`));
    return;
  }
  const r = found.report;
  const systems = r.systems || [];
  const rate = (s) => (s && s.pass_rate !== null && s.pass_rate !== undefined ? s.pass_rate : null);
  const cell = (s, n) => {
    const v = rate(s);
    return v === null ? "n/a" : s.n === n ? fmt(v) : `${fmt(v)} (${s.n})`;
  };
  const head = el("tr", {}, el("th", {}, "Capability"), el("th", { class: "num" }, "Tests"),
    ...systems.map((name) => el("th", { class: "num" }, name)));
  const rows = Object.entries(r.capabilities).map(([cap, b]) => {
    // Bold the best of the systems scored on every test (a baseline's rate on a few tests is not comparable).
    const best = Math.max(...systems.map((name) => (b.systems[name]?.n === b.n ? rate(b.systems[name]) ?? -1 : -1)));
    return el("tr", {}, el("td", { title: b.description }, labelText(cap)), el("td", { class: "num" }, b.n),
      ...systems.map((name) => {
        const s = b.systems[name];
        return el("td", { class: `num${s?.n === b.n && rate(s) === best ? " best" : ""}` }, cell(s, b.n));
      }));
  });
  const overall = el("tr", {}, el("th", {}, "all"), el("td", { class: "num" }, r.n_cases),
    ...systems.map((name) => el("td", { class: "num" }, cell(r.overall[name], r.n_cases))));
  const failures = Object.entries(r.capabilities).map(([cap, b]) => {
    const fails = (b.failures || {}).model || [];
    return el("details", {}, el("summary", {}, `${labelText(cap)}: ${fails.length} model failure${fails.length === 1 ? "" : "s"}`),
      fails.length === 0 ? el("p", { class: "empty" }, "None.")
        : el("div", { class: "table-wrap" }, el("table", { "aria-label": `Model failures: ${labelText(cap)}` },
          el("thead", {}, el("tr", {}, el("th", {}, "Test"), el("th", {}, "Text"), el("th", {}, "Expected"), el("th", {}, "Got"))),
          el("tbody", {}, ...fails.map((f) => el("tr", {}, el("td", { class: "small" }, `${f.id} ${f.type}`),
            el("td", {}, f.variant ? `${f.text} → ${f.variant}` : f.text),
            el("td", { class: "small" }, JSON.stringify(f.expected)), el("td", { class: "small" }, JSON.stringify(f.got))))))));
  });
  const facts = [
    `${r.n_cases ?? "?"} tests`, r.mode ? `mode ${r.mode}${r.precision && r.precision !== r.mode ? ` (${r.precision})` : ""}` : null,
    r.device ? `device ${r.device}` : null,
    `file ${found.file}`, `written ${new Date(found.modified * 1000).toLocaleString()}`,
  ].filter(Boolean);
  clear(box).append(
    el("p", { class: "small muted" }, facts.join(" · ")),
    el("div", { class: "table-wrap" }, el("table", { "aria-label": "Pass rate per capability" },
      el("thead", {}, head), el("tbody", {}, ...rows, overall))),
    el("h2", { style: "margin-top:1rem" }, "Model failures"),
    ...failures,
  );
}

async function loadFeedback() {
  const tbody = document.getElementById("feedback");
  try {
    const items = await api("/v1/feedback?limit=500");
    clear(tbody).append(...items.map((f) => el("tr", {},
      el("td", { class: "small" }, new Date(f.created_at).toLocaleString()),
      el("td", {}, f.call_id), el("td", {}, f.verdict), el("td", {}, f.procedure_id ?? "–"),
      el("td", { class: "num" }, f.step_index === null || f.step_index === undefined ? "–" : f.step_index + 1),
      el("td", {}, f.subject), el("td", {}, f.comment ?? ""))));
    document.getElementById("fb-count").textContent = `${items.length}`;
    document.getElementById("no-feedback").hidden = items.length > 0;
  } catch (e) {
    document.getElementById("fb-status").textContent = `Cannot load feedback: ${e.message}`;
  }
}

// A plain link cannot carry the Authorization header, so the export is fetched and saved as a blob.
document.getElementById("export").addEventListener("click", async () => {
  const status = document.getElementById("fb-status");
  try {
    const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
    const res = await fetch("/v1/feedback/export", { headers });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const text = await res.text();
    const rows = text.split("\n").filter(Boolean).length;
    const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" })), download: "feedback-redflags.jsonl" });
    document.body.append(a);
    a.click();
    a.remove();
    status.textContent = `Exported ${rows} labeled rows.`;
  } catch (e) {
    status.textContent = `Export failed: ${e.message}`;
  }
});

loadReport();
loadChecklist();
loadFeedback();
