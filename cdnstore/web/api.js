// @ts-check
// The page's only way to the daemon: the public HTTP API (/api/v1), JSON in and out.
// The access token lives in this module's memory only: never in a URL, localStorage or sessionStorage.
// The session survives reloads and reaches other tabs through the refresh token, which the daemon keeps
// in an HttpOnly, SameSite=Strict cookie (Secure over https) scoped to /api/v1/auth/: script here never
// sees it. The page opts in with the X-Cdnstore-Session header on those calls, which a cross-site page
// cannot send without a CORS preflight (never granted); the daemon also checks Origin. Tabs take turns
// to refresh (navigator.locks), so two refreshing at once never present the same cookie twice, which
// the daemon would take for a stolen refresh token and end the session. Beside the refresh cookie the daemon
// sets a "cdnstore_session=1" cookie script can read (it holds nothing): a visit without it asks for no
// refresh, which could only be refused (a red 401 in the console of every visit to the sign-in page).

const BASE = "/api/v1";
const HINT = "cdnstore_session";

/** Whether this browser holds a session to resume (the daemon's hint beside its refresh cookie). */
function sessionHinted() {
  return document.cookie.split("; ").includes(`${HINT}=1`);
}

/** The session is over here: no refresh is asked for at the next visit. */
function forgetHint() {
  document.cookie = `${HINT}=; Max-Age=0; Path=/; SameSite=Strict`;
}

/** An error answer: `detail` from the problem+json body, `code` its stable code. */
export class ApiError extends Error {
  /** @param {number} status @param {any} problem the problem+json body, if any */
  constructor(status, problem) {
    const detail = (problem && (problem.detail || problem.title)) || `the server answered ${status}`;
    super(detail);
    this.status = status;
    this.code = (problem && problem.code) || "";
    this.problem = problem || {};
  }
}

/** A human sentence for any error thrown by the API or the network. @param {any} err @returns {string} */
export function describe(err) {
  if (err instanceof ApiError) return err.message;
  if (err instanceof TypeError) return "The server cannot be reached. Check your connection and try again.";
  return (err && err.message) || String(err);
}

/**
 * @typedef {object} SendOptions
 * @property {any} [json] the request's body
 * @property {string | null} [token] the access token
 * @property {Record<string, any>} [query]
 * @property {boolean} [cookie] a session call, which carries the refresh cookie
 * @property {boolean} [keepalive] the request outlives the page (a navigation or a closed tab)
 */

/** @param {string} method @param {string} path @param {SendOptions} [options] @returns {Promise<any>} */
async function send(method, path, { json, token, query, cookie = false, keepalive = false } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (cookie) headers["X-Cdnstore-Session"] = "cookie";
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let url = BASE + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  // Only the session calls carry the cookie (its Path limits it to them anyway).
  const credentials = cookie ? "same-origin" : "omit";
  const resp = await fetch(url, { method, headers, body, credentials, cache: "no-store", keepalive });
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json().catch(() => null) : null;
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/**
 * What makes an upload's calls (multipart.js, uploads.js): a signed-in Session, or `anonymous`.
 * @typedef {object} Caller
 * @property {(path: string, query?: Record<string, any>) => Promise<any>} get
 * @property {(path: string, json?: any) => Promise<any>} post
 * @property {(path: string) => Promise<any>} del
 */

/** @type {Caller} calls without a login: a sender's, through an upload request (upload-page.js) */
export const anonymous = {
  get: (path, query) => send("GET", path, { query }),
  post: (path, json) => send("POST", path, { json: json === undefined ? {} : json }),
  del: (path) => send("DELETE", path),
};

/** Calls that need no login (the public share page, how to sign in). */
export const publicApi = {
  methods: () => send("GET", "/auth/methods"),
  /** @param {string} token */
  link: (token) => send("GET", `/public/links/${encodeURIComponent(token)}`),
  /**
   * A presigned GET of one file of the link (`fileId`; the only one when left out); with `inline`, a
   * preview's (shown in the page, not saved).
   * @param {string} token @param {string} [password] @param {string} [fileId] @param {boolean} [inline]
   */
  download: (token, password, fileId, inline = false) =>
    send("POST", `/public/links/${encodeURIComponent(token)}/download`, {
      json: { ...(password ? { password } : {}), ...(fileId ? { file_id: fileId } : {}) },
      query: inline ? { inline: "true" } : undefined,
    }),
  /** Where the page's form posts for every file of the link as one ZIP (a download, not a JSON answer).
   * @param {string} token */
  archiveUrl: (token) => `${BASE}/public/links/${encodeURIComponent(token)}/archive`,
};

/** Run `task` while holding the page's refresh lock, shared by every tab of this origin.
 * @template T @param {() => Promise<T>} task @returns {Promise<T>} */
function inTurn(task) {
  if (!navigator.locks) return task(); // not a secure context: tabs may then race (see docs/security.md)
  return navigator.locks.request("cdnstore-refresh", task);
}

/** A signed-in user: the access token is renewed before it expires, and once more on a 401. */
export class Session {
  /** @param {(message: string) => void} onEnd */
  constructor(onEnd) {
    this.onEnd = onEnd;
    /** @type {string | null} */
    this.access = null;
    /** @type {any} the signed-in user (UserOut), null when signed out */
    this.user = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    /** @type {Promise<void> | null} */
    this.refreshing = null;
  }

  get signedIn() { return this.access !== null; }

  /** @param {string} permission */
  can(permission) {
    return !!this.user && (this.user.is_admin || this.user.permissions.includes(permission));
  }

  /** @param {string} username @param {string} password */
  async login(username, password) {
    this.adopt(await send("POST", "/auth/login", { json: { username, password }, cookie: true }));
  }

  /** After a reload or in a new tab: resume the session of the cookie, if there is one. */
  async restore() {
    if (!sessionHinted()) return false;
    try {
      this.adopt(await inTurn(() => send("POST", "/auth/refresh", { json: {}, cookie: true })));
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) forgetHint(); // ended meanwhile, or expired
      return false;
    }
  }

  /** @param {any} tokens the answer of login or refresh */
  adopt(tokens) {
    this.access = tokens.access_token;
    this.user = tokens.user;
    clearTimeout(this.timer);
    // Renew at 80% of the lifetime, well before the access token expires.
    const lifetime = Number(tokens.expires_in) || 900;
    const wait = Math.max(1, lifetime * 0.8);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), wait * 1000);
  }

  refresh() {
    if (!this.refreshing) {
      this.refreshing = inTurn(() => send("POST", "/auth/refresh", { json: {}, cookie: true }))
        .then((tokens) => { this.adopt(tokens); })
        .catch((err) => {
          if (err instanceof ApiError && err.status === 401) this.end("Your session has ended. Please sign in again.");
          throw err;
        })
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  /** @param {string} method @param {string} path @param {SendOptions} [options] @returns {Promise<any>} */
  async call(method, path, options = {}) {
    if (!this.signedIn) throw new ApiError(401, { detail: "You are signed out.", code: "unauthorized" });
    try {
      return await send(method, path, { ...options, token: this.access });
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      await this.refresh();
      return send(method, path, { ...options, token: this.access });
    }
  }

  /** @param {string} path @param {Record<string, any>} [query] */
  get(path, query) { return this.call("GET", path, { query }); }
  /** @param {string} path @param {any} [json] */
  post(path, json) { return this.call("POST", path, { json: json === undefined ? {} : json }); }
  /** @param {string} path @param {any} json */
  patch(path, json) { return this.call("PATCH", path, { json }); }
  /** @param {string} path */
  del(path) { return this.call("DELETE", path); }

  async logout() {
    this.clear();
    forgetHint(); // (the daemon clears it too; this tab's next visit must not ask even if that call is lost)
    // Not in turn with other tabs' refreshes: any refresh token of the session, used or not, ends it,
    // so there is nothing to wait for; and waiting let a navigation right after "Sign out" cancel the
    // call, leaving the session alive. keepalive: the call outlives a closed tab or a navigation.
    await send("POST", "/auth/logout", { json: {}, cookie: true, keepalive: true }).catch(() => {});
    this.onEnd("");
  }

  /** @param {string} message */
  end(message) {
    this.clear();
    forgetHint();
    this.onEnd(message);
  }

  clear() {
    clearTimeout(this.timer);
    this.access = this.user = null;
  }
}

/** The service's readiness (GET /readyz, public; 200 or 503, the same body): each check and what it found. */
export async function readiness() {
  const resp = await fetch("/readyz", { headers: { Accept: "application/json" }, credentials: "omit", cache: "no-store" });
  return resp.json();
}
