// The agent's sidebar page: /agent?call=CALL_ID (or /agent/CALL_ID, which redirects here).
import { CallView } from "./callview.js";
import { keepTokenOnLinks } from "./common.js";

const callId = new URLSearchParams(location.search).get("call");
const root = document.getElementById("view");
keepTokenOnLinks();
if (callId) {
  document.title = `${callId} · Agent sidebar`;
  window.callView = new CallView(root, callId); // exposed for debugging from the console
} else {
  // No call yet: ask for one (the form submits ?call=..., keeping the token when there is one).
  const form = document.getElementById("pick");
  form.hidden = false;
  const token = new URLSearchParams(location.search).get("token");
  if (token) form.append(Object.assign(document.createElement("input"), { type: "hidden", name: "token", value: token }));
}
