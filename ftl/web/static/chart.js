// A price chart as inline SVG: a line, its area, min/max labels and an optional mark line.

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 240;
const PAD = { top: 14, right: 64, bottom: 22, left: 8 };

function el(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function label(cents) {
  return (cents / 100).toFixed(2);
}

/**
 * Draw `points` ([{t, v}] with v in cents, any order) into `svg`.
 * `mark` (cents, optional) is drawn as a dashed line: the current tradable price.
 */
export function drawChart(svg, points, { mark = null, title = "Price" } = {}) {
  const pts = [...points].sort((a, b) => a.t - b.t);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const titleEl = el("title", {});
  svg.append(titleEl);
  if (pts.length === 0) {
    titleEl.textContent = `${title}: no history yet`;
    const t = el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" });
    t.textContent = "No price history yet";
    svg.append(t);
    return;
  }
  const values = pts.map((p) => p.v);
  if (mark !== null) values.push(mark);
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi === lo) {
    hi += 50;
    lo = Math.max(0, lo - 50);
  }
  const span = hi - lo;
  lo -= span * 0.08;
  hi += span * 0.08;
  const t0 = pts[0].t;
  const t1 = pts.length > 1 ? pts[pts.length - 1].t : t0 + 1;
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0 || 1)) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - (v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);

  for (const v of [hi - (hi - lo) * 0.08, lo + (hi - lo) * 0.08]) {
    svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "chart-grid" }));
    const t = el("text", { x: W - PAD.right + 6, y: y(v) + 4, class: "chart-axis" });
    t.textContent = label(v);
    svg.append(t);
  }
  const line = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
  const base = H - PAD.bottom;
  const area = `${line}L${x(pts[pts.length - 1].t).toFixed(1)},${base}L${x(t0).toFixed(1)},${base}Z`;
  const rising = pts[pts.length - 1].v >= pts[0].v;
  svg.append(el("path", { d: area, class: `chart-area ${rising ? "up" : "down"}` }));
  svg.append(el("path", { d: line, class: `chart-line ${rising ? "up" : "down"}`, "vector-effect": "non-scaling-stroke" }));
  if (mark !== null) {
    svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(mark), y2: y(mark), class: "chart-mark", "vector-effect": "non-scaling-stroke" }));
    const t = el("text", { x: W - PAD.right + 6, y: y(mark) + 4, class: "chart-axis chart-mark-label" });
    t.textContent = label(mark);
    svg.append(t);
  }
  const last = pts[pts.length - 1];
  svg.append(el("circle", { cx: x(last.t), cy: y(last.v), r: 4, class: `chart-dot ${rising ? "up" : "down"}` }));
  titleEl.textContent =
    `${title}: ${pts.length} points, from ${label(pts[0].v)} to ${label(last.v)} credits` +
    (mark !== null ? `; tradable price now ${label(mark)}` : "");
}
