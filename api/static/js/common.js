// Shared helpers of every page: the token, fetch, a reconnecting WebSocket, and DOM building.
// Plain ES modules, no dependencies: the pages are served by the FastAPI app and fetch nothing else.

// ---- token -------------------------------------------------------------------------------------------------
// With ASSISTANT_AUTH_SECRET set on the server, a page is opened with ?token=...; we keep it for this tab
// (sessionStorage) so that links between the pages keep working, and pass it on to fetches and sockets.
const TOKEN_KEY = "assistant.token";

export function token() {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) {
    try { sessionStorage.setItem(TOKEN_KEY, fromUrl); } catch { /* storage disabled: URL only */ }
    return fromUrl;
  }
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}

/** A same-origin page URL carrying the token (when there is one). */
export function pageUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) url.searchParams.set(k, v);
  const t = token();
  if (t) url.searchParams.set("token", t);
  return url.pathname + url.search;
}

/** Rewrite every <a data-keep-token> on the page so that navigation keeps the token. */
export function keepTokenOnLinks(root = document) {
  for (const a of root.querySelectorAll("a[data-keep-token]")) {
    const url = new URL(a.getAttribute("href"), location.origin);
    a.setAttribute("href", pageUrl(url.pathname, Object.fromEntries(url.searchParams)));
  }
}

export class HttpError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

/** fetch() with the token and JSON in and out; raises HttpError with the server's `detail`. */
export async function api(path, { method = "GET", body, accept = "application/json" } = {}) {
  const headers = { Accept: accept };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new HttpError(res.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  if (accept.startsWith("application/json")) return res.json();
  return res.text();
}

// ---- reconnecting socket -------------------------------------------------------------------------------------
// Close codes after which reconnecting cannot help (docs/protocol.md): bad id, auth, forbidden.
const FATAL_CLOSE = new Set([4400, 4401, 4403]);

/**
 * A WebSocket that reconnects by itself with exponential backoff (0.5 s doubling to 10 s, with jitter).
 * `url()` is called before every attempt, so a call-events socket can resume with ?after=<last eid>.
 * Callbacks: onMessage(obj), onState("connecting"|"live"|"reconnecting"|"closed", detail).
 */
export class ReconnectingSocket {
  constructor(url, { onMessage, onState = () => {}, pingMs = 20000 } = {}) {
    this.url = url;
    this.onMessage = onMessage;
    this.onState = onState;
    this.pingMs = pingMs;
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.onState(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.onState("live");
      // A ping now and then keeps idle proxies from dropping the socket.
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: "ping" }), this.pingMs);
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      this.onMessage(msg);
    };
    ws.onclose = (e) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      if (this.stopped || FATAL_CLOSE.has(e.code)) {
        this.onState("closed", e);
        return;
      }
      this.attempt += 1;
      const base = Math.min(10000, 500 * 2 ** (this.attempt - 1));
      const delay = base / 2 + Math.random() * base / 2;
      this.onState("reconnecting", e);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  get open() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
  }
}

/** ws:// or wss:// URL of a path on this server, with the token and extra query parameters. */
export function wsUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) url.searchParams.set(k, v);
  const t = token();
  if (t) url.searchParams.set("token", t);
  return url.toString();
}

// ---- DOM -------------------------------------------------------------------------------------------------
/**
 * el("li", {class: "x", "aria-label": "..."}, child, "text", ...): build an element.
 * Text is always added as text nodes, never as HTML, so transcript text cannot inject markup.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export const LEVELS = ["none", "low", "medium", "high", "critical"];

export function labelText(label) {
  return String(label).replace(/_/g, " ");
}

export function clock(ts) {
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Copy text to the clipboard; falls back to a hidden textarea where the async API is not allowed. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = el("textarea", { "aria-hidden": "true", style: "position:fixed;left:-9999px;top:0" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}
