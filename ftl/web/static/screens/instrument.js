// One player: live price, price chart (ticks + live updates) and the trade form with its quote.

import { api, idempotencyKey } from "../api.js";
import { prices } from "../prices.js";
import { drawChart } from "../chart.js";
import { credits, percent, direction, time } from "../format.js";
import { describe } from "../errors.js";
import { h, message, debounce } from "../dom.js";
import * as trade from "../trade.js";

const MAX_POINTS = 600;

export function mount(root, ctx, { id }) {
  let alive = true;
  let inst = null;
  let mark = null;
  let openRef = null;
  const points = []; // {t, v}: index price history
  const title = h("h1", {}, "Player");
  const sub = h("p", { class: "muted" }, "Loading…");
  const priceEl = h("p", { class: "big-price", id: "mark-price", "aria-live": "off" }, "—");
  const changeEl = h("span", { class: "change" });
  const indexEl = h("dd", {}, "—");
  const skewEl = h("dd", {}, "—");
  const updatedEl = h("dd", {}, "—");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Price chart");
  svg.id = "price-chart";

  // ---- trade form -----------------------------------------------------------------------
  const sideLong = h("input", { type: "radio", name: "side", value: "long", checked: true });
  const sideShort = h("input", { type: "radio", name: "side", value: "short" });
  const qty = h("input", { id: "t-qty", name: "qty", type: "number", min: "1", max: "100000", step: "1", value: "10", inputmode: "numeric", required: true, "aria-describedby": "t-qty-hint" });
  const leverage = h("select", { id: "t-lev", name: "leverage" }, [1, 2, 3, 4, 5].map((n) => h("option", { value: n }, `${n}×`)));
  const slippage = h("select", { id: "t-slip", name: "slippage", "aria-describedby": "t-slip-hint" },
    trade.TOLERANCES_BPS.map((b) => h("option", { value: b, selected: b === trade.toleranceBps() }, trade.toleranceLabel(b))));
  const q = {
    price: h("dd", { id: "q-price" }, "—"), notional: h("dd", { id: "q-notional" }, "—"),
    fee: h("dd", { id: "q-fee" }, "—"), margin: h("dd", { id: "q-margin" }, "—"),
    total: h("dd", { id: "q-total", class: "total" }, "—"), acceptable: h("dd", { id: "q-acceptable" }, "—"),
  };
  const quoteDl = h("dl", { class: "quote", id: "quote", "aria-live": "polite", "aria-atomic": "true", "aria-label": "Quote" },
    h("dt", {}, "Fill price"), q.price, h("dt", {}, "Notional"), q.notional,
    h("dt", {}, "Fee"), q.fee, h("dt", {}, "Margin"), q.margin,
    h("dt", { class: "total" }, "Total cost"), q.total,
    h("dt", {}, "Worst accepted price"), q.acceptable);
  const submit = h("button", { type: "submit", id: "t-submit" }, "Open long");
  const formMsg = h("p", { class: "inline-msg", id: "trade-msg", role: "status", hidden: true });
  const form = h("form", { class: "panel", id: "trade-form", "aria-labelledby": "trade-h", novalidate: true },
    h("h2", { id: "trade-h" }, "Trade"),
    h("fieldset", {}, h("legend", {}, "Direction"),
      h("div", { class: "segmented" },
        h("label", {}, sideLong, "Long ", h("span", { class: "hint" }, "(price up)")),
        h("label", {}, sideShort, "Short ", h("span", { class: "hint" }, "(price down)")))),
    h("div", { class: "field" }, h("label", { for: "t-qty" }, "Quantity (units)"), qty,
      h("p", { class: "hint", id: "t-qty-hint" }, "1 to 100,000 units.")),
    h("div", { class: "field" }, h("label", { for: "t-lev" }, "Leverage"), leverage),
    h("div", { class: "field" }, h("label", { for: "t-slip" }, "Slippage tolerance"), slippage,
      h("p", { class: "hint", id: "t-slip-hint" }, "The trade is refused if the fill price is worse than the quote by more than this.")),
    quoteDl, submit, formMsg);

  root.append(
    h("p", {}, h("a", { href: "#/instruments" }, "← All players")),
    title, sub,
    h("div", { class: "grid-2" },
      h("section", { class: "panel", "aria-labelledby": "price-h" },
        h("h2", { id: "price-h", class: "visually-hidden" }, "Price"),
        priceEl, h("p", { class: "muted", style: "margin:.2rem 0 0" }, changeEl),
        h("dl", { class: "stats" },
          h("div", {}, h("dt", {}, "Index"), indexEl),
          h("div", {}, h("dt", {}, "Net skew"), skewEl),
          h("div", {}, h("dt", {}, "Updated"), updatedEl)),
        h("figure", { style: "margin:1rem 0 0" }, svg,
          h("figcaption", {}, "Index price history (from the player's match rating); the dashed line is the current tradable price."))),
      form),
  );

  function side() {
    return sideShort.checked ? "short" : "long";
  }

  function showPrice(p, ts, index, skew) {
    const prev = mark;
    mark = p;
    if (openRef === null) openRef = p;
    priceEl.textContent = `${credits(p)} credits`;
    priceEl.dataset.price = String(p);
    const dir = direction(p - openRef);
    changeEl.className = `change ${dir}`;
    changeEl.textContent = `${dir === "up" ? "▲" : dir === "down" ? "▼" : "•"} ${percent(openRef, p) || "0.00%"} since you opened this page`;
    if (prev !== null && prev !== p) {
      priceEl.classList.remove("flash-up", "flash-down");
      void priceEl.offsetWidth;
      priceEl.classList.add(p > prev ? "flash-up" : "flash-down");
    }
    if (index !== undefined) indexEl.textContent = credits(index);
    if (skew !== undefined) skewEl.textContent = String(skew);
    if (ts) updatedEl.textContent = time(ts);
  }

  function redraw() {
    drawChart(svg, points, { mark, title: `${inst ? inst.name : "Player"} index price` });
  }

  // ---- quote ----------------------------------------------------------------------------
  let quoteSeq = 0;
  let lastQuote = null;
  let status = "open";
  let sending = false;
  let statusTimer = null;

  function updateSubmit() {
    const v = formValues();
    if (status !== "open") {
      submit.disabled = true;
      submit.textContent = status === "halted" ? "Trading paused (match event)" : `Market ${status}`;
    } else if (sending) {
      submit.disabled = true;
      submit.textContent = "Sending…";
    } else if (!v || !lastQuote) {
      submit.disabled = true;
      submit.textContent = `Open ${side()}`;
    } else {
      submit.disabled = false;
      submit.textContent = `Open ${lastQuote.side} ${lastQuote.qty} × ${credits(lastQuote.price)}`;
    }
  }
  let pending = null; // {key, body}: retry the same trade with the same Idempotency-Key

  function formValues() {
    const n = Number(qty.value);
    if (!Number.isSafeInteger(n) || n < 1 || n > 100000) return null;
    return { side: side(), qty: n, leverage: Number(leverage.value), bps: Number(slippage.value) };
  }

  async function refreshQuote() {
    const v = formValues();
    if (!v) {
      lastQuote = null;
      for (const dd of Object.values(q)) dd.textContent = "—";
      qty.setAttribute("aria-invalid", "true");
      updateSubmit();
      return;
    }
    qty.removeAttribute("aria-invalid");
    const mine = ++quoteSeq;
    try {
      const r = await trade.quote(id, v.side, v.qty, v.leverage);
      if (!alive || mine !== quoteSeq) return;
      lastQuote = { ...r, ...v };
      q.price.textContent = credits(r.price);
      q.notional.textContent = credits(r.notional);
      q.fee.textContent = credits(r.fee);
      q.margin.textContent = credits(r.margin);
      q.total.textContent = credits(r.margin + r.fee);
      q.acceptable.textContent = credits(trade.acceptablePrice(v.side === "long", r.price, v.bps));
      updateSubmit();
      if (formMsg.dataset.quoteError) {
        delete formMsg.dataset.quoteError;
        message(formMsg, "");
      }
    } catch (e) {
      if (!alive || mine !== quoteSeq) return;
      lastQuote = null;
      updateSubmit();
      message(formMsg, `Quote unavailable: ${describe(e)}`, "error");
      formMsg.dataset.quoteError = "1";
    }
  }
  const quoteSoon = debounce(refreshQuote, 200);
  const quoteOnTick = debounce(refreshQuote, 800);
  for (const el of [sideLong, sideShort, leverage]) el.addEventListener("change", quoteSoon);
  qty.addEventListener("input", quoteSoon);
  slippage.addEventListener("change", () => {
    trade.setToleranceBps(Number(slippage.value));
    quoteSoon();
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let v = formValues();
    if (v && (!lastQuote || lastQuote.side !== v.side || lastQuote.qty !== v.qty || lastQuote.leverage !== v.leverage)) {
      await refreshQuote(); // the form changed since the last quote: price the order shown
      v = formValues();
    }
    if (!v || !lastQuote) {
      message(formMsg, "Enter a quantity between 1 and 100,000.", "error");
      qty.focus();
      return;
    }
    const body = {
      instrument_id: id, side: v.side, qty: v.qty, leverage: v.leverage,
      acceptable_price: trade.acceptablePrice(v.side === "long", lastQuote.price, v.bps),
    };
    const same = pending && JSON.stringify(pending.body) === JSON.stringify(body);
    const key = same ? pending.key : idempotencyKey();
    pending = { key, body };
    sending = true;
    updateSubmit();
    delete formMsg.dataset.quoteError;
    message(formMsg, "Sending order…", "info");
    try {
      const r = await trade.openPosition(body, key);
      pending = null;
      if (!alive) return;
      ctx.setWallet(r.wallet);
      message(formMsg, "", "info");
      formMsg.replaceChildren(
        `Opened ${r.position.side} ${r.position.qty} × ${inst ? inst.name : "player"} at ${credits(r.trade.price)} (fee ${credits(r.trade.fee)}, margin ${credits(r.position.margin)}). `,
        h("a", { href: "#/portfolio" }, "See it in your portfolio"));
      formMsg.dataset.kind = "ok";
      formMsg.hidden = false;
    } catch (e) {
      // Retry the same order with the same key after a lost answer or a pending persist.
      if (!(e && (e.code === "network" || e.code === "persist_pending"))) pending = null; // a definitive answer: the next submit is a new trade
      if (!alive) return;
      message(formMsg, describe(e), "error");
      if (e && ["halted", "instrument_closed", "stale_index"].includes(e.code)) loadStatus();
    } finally {
      sending = false;
      if (alive) refreshQuote();
    }
  });

  // ---- data -----------------------------------------------------------------------------
  function showInfo(item) {
    inst = item;
    title.textContent = item.name;
    document.title = `${item.name} — FTL`;
    sub.textContent = `${item.team} · ${item.position}${item.status !== "open" ? ` · ${item.status}` : ""}`;
    status = item.status;
    clearTimeout(statusTimer);
    // A halt lasts seconds (goal, red card, penalty): look again until trading resumes.
    if (status === "halted") statusTimer = setTimeout(loadStatus, 2000);
    updateSubmit();
  }

  async function loadStatus() {
    try {
      const item = await api("GET", `/api/instruments/${id}`);
      if (alive) showInfo(item);
    } catch {
      /* the status line keeps its last value */
    }
  }

  const offPrice = prices.onPrice((u) => {
    if (u.id !== id) return;
    showPrice(u.price, u.ts, u.index, u.skew);
    if (u.hasIndex && u.index !== undefined && !u.snap) {
      points.push({ t: u.ts, v: u.index });
      if (points.length > MAX_POINTS) points.splice(0, points.length - MAX_POINTS);
    }
    redraw();
    quoteOnTick();
  });
  prices.want("instrument", [id]);

  (async () => {
    try {
      const [item, ticks] = await Promise.all([
        api("GET", `/api/instruments/${id}`),
        api("GET", `/api/instruments/${id}/ticks?limit=300`),
      ]);
      if (!alive) return;
      showInfo(item);
      for (const t of ticks.items) points.push({ t: t.ts, v: t.index_price });
      const live = prices.get(id);
      if (live) showPrice(live.price, live.ts, live.index, live.skew);
      else showPrice(item.price, null, item.index_price, item.skew);
      redraw();
      refreshQuote();
    } catch (e) {
      if (!alive) return;
      sub.textContent = "";
      if (e && (e.code === "unknown_instrument" || e.code === "not_found")) {
        title.textContent = "Player not found";
        form.hidden = true;
      }
      ctx.error(e);
    }
  })();

  return () => {
    alive = false;
    clearTimeout(statusTimer);
    offPrice();
    prices.drop("instrument");
  };
}
