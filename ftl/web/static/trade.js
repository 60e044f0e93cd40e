// Trading helpers shared by the instrument and portfolio screens.

import { api, idempotencyKey } from "./api.js";

export const TOLERANCES_BPS = [10, 50, 100, 200, 500];
const KEY = "ftl.slippage_bps";

export function toleranceBps() {
  const v = Number(localStorage.getItem(KEY));
  return TOLERANCES_BPS.includes(v) ? v : 100;
}

export function setToleranceBps(bps) {
  try {
    localStorage.setItem(KEY, String(bps));
  } catch {
    /* not persisted */
  }
}

export function toleranceLabel(bps) {
  return `${(bps / 100).toFixed(bps % 100 ? (bps % 10 ? 2 : 1) : 0)}%`;
}

/**
 * The worst fill price we accept (docs/trading.md: a buy needs F <= acceptable, a sell F >= it).
 * Buying = opening a long or closing a short.
 */
export function acceptablePrice(buying, price, bps) {
  if (buying) return Math.ceil((price * (10_000 + bps)) / 10_000);
  return Math.max(1, Math.floor((price * (10_000 - bps)) / 10_000));
}

export function quote(instrumentId, side, qty, leverage) {
  const q = new URLSearchParams({ side, qty: String(qty), leverage: String(leverage) });
  return api("GET", `/api/instruments/${instrumentId}/quote?${q}`);
}

export function openPosition(body, key = idempotencyKey()) {
  return api("POST", "/api/positions/open", { body, headers: { "Idempotency-Key": key } });
}

/** Close a whole position at the current price within the slippage tolerance. */
export async function closePosition(position, bps = toleranceBps()) {
  const opposite = position.side === "long" ? "short" : "long";
  const q = await quote(position.instrument_id, opposite, position.qty, 1);
  const buying = position.side === "short";
  const body = { acceptable_price: acceptablePrice(buying, q.price, bps) };
  return api("POST", `/api/positions/${position.id}/close`, {
    body,
    headers: { "Idempotency-Key": idempotencyKey() },
  });
}

/** Unrealised PnL at `mark` from the portfolio row (entry notional derived from its own PnL). */
export function entryNotional(pos) {
  return pos.side === "long"
    ? pos.qty * pos.mark_price - pos.unrealised_pnl
    : pos.unrealised_pnl + pos.qty * pos.mark_price;
}

export function unrealisedPnl(side, qty, entryNotionalCents, mark) {
  return side === "long" ? qty * mark - entryNotionalCents : entryNotionalCents - qty * mark;
}
