// The console's only way to the server: same-origin fetches with the key in an Authorization header.
// The key is kept in this tab's sessionStorage (gone when the tab closes), never in a URL.
const STORAGE = "modelhost.console.key";

export const session = {
  get key() { return sessionStorage.getItem(STORAGE); },
  set(key) { sessionStorage.setItem(STORAGE, key); },
  clear() { sessionStorage.removeItem(STORAGE); },
};

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra = {}) {
  const h = { ...extra };
  if (session.key) h.Authorization = `Bearer ${session.key}`;
  return h;
}

async function failure(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    const err = body.error ?? body.detail;
    message = typeof err === "string" ? err : err?.message ?? JSON.stringify(body);
  } catch { /* not JSON: keep the status line */ }
  if (resp.status === 401) window.dispatchEvent(new CustomEvent("console:unauthorized", { detail: message }));
  return new ApiError(resp.status, message);
}

/** JSON in, JSON out. `body` may be a plain object (sent as JSON), FormData or a Blob. */
export async function api(path, { method = "GET", body, headers: extra } = {}) {
  const init = { method, headers: headers(extra), cache: "no-store", credentials: "omit" };
  if (body instanceof FormData || body instanceof Blob || body instanceof ArrayBuffer) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, init);
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") ?? "";
  return type.includes("json") ? resp.json() : resp.text();
}

/** POST a JSON body and yield each server-sent event's JSON until `data: [DONE]`. */
export async function* sse(path, body, signal) {
  const resp = await fetch(path, {
    method: "POST", signal, cache: "no-store", credentials: "omit",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
  });
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}
