// Money is integer cents everywhere; people see credits with two decimals.

const grouping = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** 123456 -> "1,234.56" (exact: no floating point on the cents). */
export function credits(cents) {
  if (cents === null || cents === undefined || Number.isNaN(Number(cents))) return "—";
  const n = Math.trunc(Number(cents));
  const abs = Math.abs(n);
  const whole = grouping.format(Math.trunc(abs / 100));
  const frac = String(abs % 100).padStart(2, "0");
  return `${n < 0 ? "−" : ""}${whole}.${frac}`;
}

/** Signed: "+12.00", "−3.40", "0.00". */
export function signedCredits(cents) {
  const n = Math.trunc(Number(cents) || 0);
  return n > 0 ? `+${credits(n)}` : credits(n);
}

export function percent(from, to) {
  if (!from) return "";
  const p = ((to - from) / from) * 100;
  const s = Math.abs(p) < 0.005 ? "0.00" : p.toFixed(2);
  return `${p > 0 ? "+" : p < 0 ? "−" : ""}${s.replace("-", "")}%`;
}

export function direction(n) {
  return n > 0 ? "up" : n < 0 ? "down" : "flat";
}

export function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
