// The signed-in session: tokens in localStorage (shared by tabs), refresh before expiry, and
// exactly one refresh at a time across tabs (a refresh token works once: docs/auth.md).

import { fetchJson } from "./http.js";
import { ApiError } from "./errors.js";

const KEY = "ftl.session.v1";
const listeners = new Set();
let current = read();
let timer = null;
let inflight = null;

function read() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || "null");
    return s && s.access_token && s.refresh_token ? s : null;
  } catch {
    return null;
  }
}

function write(s) {
  try {
    if (s) localStorage.setItem(KEY, JSON.stringify(s));
    else localStorage.removeItem(KEY);
  } catch {
    /* private mode: the session lives in this tab only */
  }
}

function emit(reason, detail) {
  for (const fn of listeners) fn(current, reason, detail);
}

function fromReply(reply) {
  const ttl = Math.max(1, Number(reply.expires_in) || 900) * 1000;
  return {
    access_token: reply.access_token,
    refresh_token: reply.refresh_token,
    expires_at: Date.now() + ttl,
    ttl_ms: ttl,
    user: reply.user,
  };
}

function schedule() {
  clearTimeout(timer);
  if (!current) return;
  // Refresh when 80 % of the lifetime has passed: at least 30 s before expiry, but never
  // before half of it (short lifetimes in tests).
  const lead = Math.min(Math.max(30_000, current.ttl_ms * 0.2), current.ttl_ms * 0.5);
  const due = current.expires_at - lead - Date.now();
  timer = setTimeout(() => refresh().catch(() => {}), Math.max(1000, due));
}

export function get() {
  return current;
}

export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Start a session from a sign-in (or refresh) reply. */
export function adopt(reply) {
  current = fromReply(reply);
  write(current);
  schedule();
  emit("signed_in");
}

/** Forget the session locally; `code` says why (shown on the sign-in screen). */
export function end(code) {
  clearTimeout(timer);
  const had = current;
  current = null;
  write(null);
  if (had) emit("signed_out", code);
}

/** Sign out on purpose: revoke this sign-in's refresh family, then forget it. */
export async function signOut() {
  const token = current && current.refresh_token;
  end("signed_out");
  if (token) {
    try {
      await fetchJson("POST", "/api/auth/logout", { body: { refresh_token: token } });
    } catch {
      /* the tokens are forgotten anyway; the access token lapses by itself */
    }
  }
}

/** A valid access token, refreshed first when it is about to lapse. */
export async function accessToken() {
  if (!current) throw new ApiError(401, "missing_token", "not signed in");
  if (current.expires_at - Date.now() < 15_000) await refresh();
  return current.access_token;
}

/** Exchange the refresh token for a new pair (one in flight per tab, one at a time per browser). */
export function refresh() {
  if (!inflight) {
    inflight = lockedRefresh().finally(() => {
      inflight = null;
    });
  }
  return inflight;
}

async function lockedRefresh() {
  const used = current && current.refresh_token;
  if (!used) throw new ApiError(401, "missing_token", "not signed in");
  const work = async () => {
    const stored = read();
    if (stored && stored.refresh_token !== used) {
      // Another tab refreshed while we waited for the lock: use its pair, never reuse ours.
      current = stored;
      schedule();
      emit("refreshed");
      return current;
    }
    try {
      const reply = await fetchJson("POST", "/api/auth/refresh", { body: { refresh_token: used } });
      current = fromReply(reply);
      write(current);
      schedule();
      emit("refreshed");
      return current;
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        end(e.code);
      } else {
        // Network or server trouble: keep the session and try again soon.
        clearTimeout(timer);
        timer = setTimeout(() => refresh().catch(() => {}), 5000);
      }
      throw e;
    }
  };
  if (navigator.locks && typeof navigator.locks.request === "function") {
    return navigator.locks.request("ftl-refresh", work);
  }
  return work();
}

// Another tab signed in, refreshed or signed out: follow it.
window.addEventListener("storage", (e) => {
  if (e.key !== KEY && e.key !== null) return;
  const s = read();
  if (!s) {
    if (current) {
      clearTimeout(timer);
      current = null;
      emit("signed_out", "signed_out_elsewhere");
    }
    return;
  }
  if (!current || s.refresh_token !== current.refresh_token) {
    const fresh = !current;
    current = s;
    schedule();
    emit(fresh ? "signed_in" : "refreshed");
  }
});

if (current) schedule();
