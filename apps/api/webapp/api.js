// Calling the API like any app does, the API key, and small DOM helpers.
// The key comes from the form or from the page's fragment (#key=..., which the browser never
// sends to a server); it is kept in sessionStorage (gone when the tab closes), never in a URL.

const KEY = "musicrec.apiKey";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

/** Take a key from the fragment (#key=...), then drop the fragment from the address bar. */
export function keyFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = params.get("key");
  if (key) {
    setApiKey(key.trim());
    history.replaceState(null, "", location.pathname + location.search);
  }
}

/** JSON from a route of the API, or an ApiError with a message a person can act on. */
export async function api(path, { method = "GET", body, query, needsKey = true } = {}) {
  const key = apiKey();
  if (needsKey && !key) {
    throw new ApiError("An API key is needed: enter one above (musicrec api-keys create NAME).", 401);
  }
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(query || {})) url.searchParams.set(name, value);
  const headers = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let reply;
  try {
    reply = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(`Network error: the API did not answer (${method} ${url.pathname}).`, 0);
  }
  let data = null;
  try {
    data = await reply.json();
  } catch {
    data = null;
  }
  if (!reply.ok) throw new ApiError(problem(reply, data), reply.status);
  return { data, headers: reply.headers, status: reply.status };
}

function problem(reply, data) {
  let detail = data && data.detail;
  if (Array.isArray(detail)) {
    detail = detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  detail = detail || reply.statusText || "no details";
  const hints = {
    401: " Check the API key above.",
    429: ` Retry in ${reply.headers.get("Retry-After") || "a few"} s.`,
    503: " The service is degraded: retry shortly.",
  };
  return `${reply.status}: ${detail}.${hints[reply.status] || ""}`.replace("..", ".");
}

/** An element with attributes and children (strings become text: never parsed as HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

/** A message in a panel's message area (role=alert) and, for status, the live region. */
export function showMessage(id, text, kind = "error") {
  const box = $(id);
  box.textContent = text || "";
  box.className = text ? `message ${kind}` : "message";
}

export function status(text) {
  $("status").textContent = text;
}

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

export function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

export function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const when = new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  return seconds < 0 ? when : `${when} (${duration(seconds)} ago)`;
}

export function duration(seconds) {
  seconds = Math.round(seconds);
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}
