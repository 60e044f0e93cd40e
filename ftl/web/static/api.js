// Authenticated API calls: bearer token, one refresh-and-retry on token_expired.

import * as session from "./session.js";
import { fetchJson } from "./http.js";
import { ApiError, SESSION_ENDING } from "./errors.js";

export async function api(method, path, opts = {}) {
  const token = await session.accessToken();
  try {
    return await fetchJson(method, path, { ...opts, token });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    if (e.code === "token_expired") {
      await session.refresh();
      try {
        return await fetchJson(method, path, { ...opts, token: session.get().access_token });
      } catch (again) {
        if (again instanceof ApiError && again.status === 401) session.end(again.code);
        throw again;
      }
    }
    if (SESSION_ENDING.has(e.code)) session.end(e.code);
    throw e;
  }
}

/** A key for one intended trade; reused only to retry that same trade. */
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const instrumentCache = new Map();

/** One instrument (cached: name, team, position do not change). */
export async function instrument(id) {
  if (!instrumentCache.has(id)) {
    const p = api("GET", `/api/instruments/${id}`).catch((e) => {
      instrumentCache.delete(id);
      throw e;
    });
    instrumentCache.set(id, p);
  }
  return instrumentCache.get(id);
}

export function rememberInstruments(items) {
  for (const it of items) if (!instrumentCache.has(it.id)) instrumentCache.set(it.id, Promise.resolve(it));
}

let allInstruments = null;

/** Every instrument, paged through once (the list screen filters them in the browser). */
export function instruments({ reload = false } = {}) {
  if (!allInstruments || reload) {
    allInstruments = (async () => {
      const items = [];
      let cursor = null;
      for (let page = 0; page < 100; page++) {
        const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
        const data = await api("GET", `/api/instruments?limit=200${q}`);
        items.push(...data.items);
        cursor = data.next_cursor;
        if (!cursor) break;
      }
      rememberInstruments(items);
      return items;
    })().catch((e) => {
      allInstruments = null;
      throw e;
    });
  }
  return allInstruments;
}
