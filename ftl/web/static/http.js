// fetch() wrapped to speak the API's JSON: errors become ApiError with the server's code.

import { API_BASE } from "./config.js";
import { ApiError } from "./errors.js";

export async function fetchJson(method, path, { body, token, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(API_BASE + path, init);
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", String((e && e.message) || e));
  }
  if (resp.status === 204) return null;
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const err = data && data.error;
    const retry = resp.headers.get("Retry-After");
    if (err && typeof err.code === "string") {
      throw new ApiError(resp.status, err.code, err.message || "", {
        field: err.field || null,
        retryAfter: retry,
      });
    }
    throw new ApiError(resp.status, resp.status >= 500 ? "internal" : `http_${resp.status}`, text.slice(0, 200), {
      retryAfter: retry,
    });
  }
  if (data === null && text) throw new ApiError(resp.status, "bad_response", "not JSON");
  return data;
}
