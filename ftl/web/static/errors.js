// A clear, human message for every error code the API and the ws role answer with.

const MESSAGES = {
  // transport
  network: "Cannot reach the FTL server. Check your connection; we will keep trying.",
  bad_response: "The server sent an answer we could not read. Please try again.",
  // request shape (a bug in this page if you ever see them)
  malformed_json: "The request was not valid JSON.",
  body_too_large: "The request was too large.",
  unsupported_media_type: "The request was sent in the wrong format.",
  duplicate_key: "The request named the same field twice.",
  missing_field: "A required field is missing.",
  unknown_field: "The request contained a field the server does not accept.",
  invalid_field: "One of the values is not valid.",
  out_of_range: "One of the values is out of the allowed range.",
  missing_idempotency_key: "The trade request had no Idempotency-Key.",
  invalid_idempotency_key: "The trade request had an invalid Idempotency-Key.",
  idempotency_conflict: "This trade was already submitted with different details. Please submit it again.",
  bad_request: "The server could not understand the request.",
  method_not_allowed: "This action is not allowed here.",
  // sign-in and tokens
  missing_token: "You are not signed in.",
  malformed_token: "Your session is not valid. Please sign in again.",
  token_too_large: "Your session is not valid. Please sign in again.",
  unsupported_alg: "Your session is not valid. Please sign in again.",
  unknown_key: "Your session was signed with a key the server no longer knows. Please sign in again.",
  bad_signature: "Your session is not valid. Please sign in again.",
  token_expired: "Your session expired. Please sign in again.",
  token_not_yet_valid: "Your device clock seems to be wrong; check it and sign in again.",
  wrong_issuer: "This sign-in was issued by someone else. Please sign in again.",
  wrong_audience: "This Google sign-in is meant for another application.",
  email_not_verified: "Your Google account's email address is not verified.",
  invalid_claims: "Your sign-in is missing information. Please sign in again.",
  wrong_token_type: "Your session is not valid. Please sign in again.",
  unknown_token: "Your session is unknown to the server. Please sign in again.",
  token_reused: "Your session was used twice (another tab or device?) and was ended for safety. Please sign in again.",
  token_revoked: "Your session was ended (signed out elsewhere). Please sign in again.",
  unknown_user: "Your account no longer exists.",
  forbidden_account: "This account cannot sign in.",
  email_in_use: "Another Google account already uses this email address.",
  rate_limited: "Too many sign-in attempts. Please wait a moment and try again.",
  google_unavailable: "Google sign-in is unavailable right now. Please try again shortly.",
  google_not_configured: "Google sign-in is not configured on this server.",
  // trading
  not_found: "Not found.",
  unknown_instrument: "This player is not available for trading.",
  halted: "Trading on this player is paused for a moment (match event). Try again shortly.",
  instrument_closed: "This player's market is closed.",
  stale_index: "This player's price feed is stale. Try again shortly.",
  stale_tick: "This player's price feed is stale. Try again shortly.",
  skew_cap: "This trade would take the market past its position limit. Try a smaller quantity.",
  slippage: "The price moved beyond your slippage tolerance. Check the new quote and try again, or raise the tolerance.",
  insufficient_funds: "Not enough available credits for the margin and fee. Try a smaller quantity or higher leverage.",
  not_open: "This position is already closed.",
  not_owner: "This position is not yours.",
  no_wallet: "Your wallet is not ready yet. Please try again.",
  district_mismatch: "Your district changed; please reload the page.",
  recovering: "The trading engine is restarting. Try again in a few seconds.",
  conflict: "This trade was already submitted with different details.",
  bad_user: "The trade was rejected (bad user).",
  bad_side: "Choose long or short.",
  bad_qty: "The quantity is not valid.",
  qty_exceeds_position: "That is more than this position holds.",
  no_district: "You are in no district yet: pick one to see a district leaderboard.",
  bad_leverage: "Leverage must be between 1 and 5.",
  bad_price: "The acceptable price is not valid.",
  bad_args: "The trade request was not valid.",
  bad_status: "This player cannot be traded right now.",
  instrument_bounds: "This trade is outside the market's limits.",
  wrong_instrument: "This position belongs to another player.",
  not_liquidatable: "This position cannot be liquidated.",
  // server
  client_disconnected: "The request did not arrive whole. Please try again.",
  internal: "Something went wrong on our side. It has been logged; please try again.",
  database_unavailable: "The database is not answering. Please try again in a moment.",
  cache_unavailable: "The trading engine is not answering. Please try again in a moment.",
  outcome_unknown: "We could not confirm your trade in time. Press the button again to learn whether it went through (it will not trade twice).",
  not_confirmed: "Your trade did not go through (the market was briefly interrupted). Nothing changed; please try again.",
  // ws role
  unauthorized: "The live price connection was refused. Signing in again may help.",
  bad_message: "The live price connection rejected a message.",
  unknown_op: "The live price connection rejected a message.",
  bad_ids: "Could not subscribe to live prices.",
  too_many_ids: "Too many players to follow at once.",
  too_many_subscriptions: "Too many players to follow at once.",
  bad_token: "The live price connection could not renew your session.",
  user_mismatch: "The live price connection belongs to another user.",
};

// Codes after which the session is gone for good: the user must sign in again.
export const SESSION_ENDING = new Set([
  "missing_token", "malformed_token", "token_too_large", "unsupported_alg", "unknown_key",
  "bad_signature", "token_not_yet_valid", "wrong_issuer", "invalid_claims", "wrong_token_type",
  "unknown_token", "token_reused", "token_revoked", "unknown_user", "forbidden_account",
  "token_expired",
]);

export class ApiError extends Error {
  constructor(status, code, message, { field = null, retryAfter = null } = {}) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.serverMessage = message || "";
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

/** The sentence to show a person for an error (an ApiError, a ws ERROR code, or anything). */
export function describe(err) {
  if (!err) return "Unknown error.";
  const code = typeof err === "string" ? err : err.code;
  let text = MESSAGES[code];
  if (!text) {
    if (err instanceof ApiError && err.status >= 500) text = MESSAGES.internal;
    else text = (err && err.serverMessage) || (err && err.message) || `Error: ${code}`;
  }
  if (err instanceof ApiError) {
    if (err.field && ["missing_field", "unknown_field", "invalid_field", "out_of_range", "duplicate_key"].includes(code)) {
      text += ` (${err.field}${err.serverMessage ? `: ${err.serverMessage.replace(/^[a-z_]+: /, "")}` : ""})`;
    }
    if (err.retryAfter) text += ` Retry in ${err.retryAfter} s.`;
  }
  return text;
}

export function knownCodes() {
  return Object.keys(MESSAGES);
}
