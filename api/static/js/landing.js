// Landing page: links to the three pages and the "Start demo call" button (POST /v1/demo/calls).
import { api, el, keepTokenOnLinks, pageUrl, clear } from "./common.js";

const select = document.getElementById("transcript");
const status = document.getElementById("demo-status");
const links = document.getElementById("demo-links");
const start = document.getElementById("start");
keepTokenOnLinks();

async function loadTranscripts() {
  try {
    const items = await api("/v1/demo/transcripts");
    for (const t of items) {
      const minutes = Math.max(1, Math.round(t.duration_s / 60));
      select.append(el("option", { value: t.name, selected: t.name === "billing-dispute-abusive" },
        `${t.name.replace(/-/g, " ")} (${t.chunks} lines, ~${minutes} min)`));
    }
    if (!items.length) {
      status.textContent = "No demo transcripts on this server (eval/transcripts/*.jsonl).";
      start.disabled = true;
    }
  } catch (e) {
    status.textContent = `Cannot list demo calls: ${e.message}`;
    status.classList.add("error");
    start.disabled = true;
  }
}

document.getElementById("demo").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  start.disabled = true;
  status.classList.remove("error");
  status.textContent = "Starting…";
  try {
    const call = await api("/v1/demo/calls", {
      method: "POST",
      body: { transcript: select.value, speed: Number(document.getElementById("speed").value) },
    });
    const agent = pageUrl("/agent", { call: call.call_id });
    const sup = pageUrl("/supervisor", { call: call.call_id });
    status.textContent = `Demo call ${call.call_id} is live.`;
    clear(links).append(
      el("a", { class: "btn", href: agent, target: "sidebar" }, "Open agent sidebar"),
      el("a", { class: "btn", href: sup, target: "supervisor" }, "Open supervisor dashboard"),
    );
    links.hidden = false;
    // A narrow window, like the sidebar beside a CRM; where pop-ups are blocked, open it in this tab.
    const win = window.open(agent, "sidebar", "popup,width=380,height=860");
    if (!win) location.href = agent;
  } catch (e) {
    status.textContent = `Could not start the demo: ${e.message}`;
    status.classList.add("error");
  } finally {
    start.disabled = false;
  }
});

loadTranscripts();
