// Portfolio: wallet, open positions with live unrealised PnL, close buttons.

import { api, instrument } from "../api.js";
import { prices } from "../prices.js";
import { credits, signedCredits, direction } from "../format.js";
import { describe } from "../errors.js";
import { h, clear, message } from "../dom.js";
import * as trade from "../trade.js";

const RELOAD_MS = 30_000; // catches liquidations and trades from other tabs

export function mount(root, ctx) {
  let alive = true;
  let data = null; // {wallet, positions}
  const rows = new Map(); // position id -> {pos, entryN, markTd, pnlTd}
  const summary = {
    available: h("dd", { id: "w-available" }, "—"), locked: h("dd", { id: "w-locked" }, "—"),
    upnl: h("dd", { id: "w-upnl" }, "—"), equity: h("dd", { id: "w-equity" }, "—"),
  };
  const msg = h("p", { class: "inline-msg", id: "portfolio-msg", role: "status", hidden: true });
  const body = h("div", { id: "positions" }, h("p", { class: "loading" }, "Loading positions…"));
  root.append(
    h("h1", {}, "Portfolio"),
    h("dl", { class: "summary", "aria-label": "Wallet" },
      h("div", {}, h("dt", {}, "Available"), summary.available),
      h("div", {}, h("dt", {}, "Locked margin"), summary.locked),
      h("div", {}, h("dt", {}, "Unrealised PnL"), summary.upnl),
      h("div", {}, h("dt", {}, "Equity"), summary.equity)),
    msg,
    h("section", { class: "panel", "aria-labelledby": "pos-h" }, h("h2", { id: "pos-h" }, "Open positions"), body),
  );

  function paintTotals() {
    if (!data) return;
    let upnl = 0;
    for (const r of rows.values()) upnl += r.upnl;
    const w = data.wallet;
    summary.available.textContent = credits(w.available);
    summary.locked.textContent = credits(w.locked);
    summary.upnl.textContent = signedCredits(upnl);
    summary.upnl.className = direction(upnl);
    summary.equity.textContent = credits(w.available + w.locked + upnl);
  }

  function paintRow(r) {
    r.upnl = trade.unrealisedPnl(r.pos.side, r.pos.qty, r.entryN, r.mark);
    r.markTd.textContent = credits(r.mark);
    const dir = direction(r.upnl);
    r.pnlTd.className = `num pnl ${dir}`;
    r.pnlTd.dataset.pnl = String(r.upnl);
    r.pnlTd.textContent = `${dir === "up" ? "▲ " : dir === "down" ? "▼ " : ""}${signedCredits(r.upnl)}`;
  }

  async function close(r, button) {
    button.disabled = true;
    message(msg, `Closing position #${r.pos.id}…`, "info");
    try {
      const res = await trade.closePosition(r.pos);
      if (!alive) return;
      ctx.setWallet(res.wallet);
      const pnl = res.trade.realised_pnl ?? null;
      message(msg, `Closed ${r.pos.side} ${r.pos.qty} × ${r.name} at ${credits(res.trade.price)}` +
        (pnl !== null ? `: realised PnL ${signedCredits(pnl)}` : "") +
        (res.trade.payout !== undefined ? `, ${credits(res.trade.payout)} credits returned.` : "."), "ok");
    } catch (e) {
      if (!alive) return;
      message(msg, `Could not close position #${r.pos.id}: ${describe(e)}`, "error");
      button.disabled = false;
    }
    await load();
  }

  function render() {
    clear(body);
    rows.clear();
    if (!data.positions.length) {
      body.append(h("p", { id: "no-positions" }, "No open positions. ", h("a", { href: "#/instruments" }, "Pick a player to trade.")));
      prices.want("portfolio", []);
      paintTotals();
      return;
    }
    const tbody = h("tbody");
    for (const pos of data.positions) {
      const live = prices.get(pos.instrument_id);
      const r = {
        pos, entryN: trade.entryNotional(pos), mark: live ? live.price : pos.mark_price, upnl: 0,
        name: `#${pos.instrument_id}`,
        markTd: h("td", { class: "num", "data-label": "Price" }),
        pnlTd: h("td", { class: "num pnl", "data-label": "Unrealised PnL" }),
      };
      const closeBtn = h("button", { type: "button", class: "danger", "aria-label": `Close ${pos.side} position #${pos.id}` }, "Close");
      const nameLink = h("a", { href: `#/instrument/${pos.instrument_id}` }, r.name);
      instrument(pos.instrument_id).then((it) => {
        r.name = it.name;
        nameLink.textContent = it.name;
        closeBtn.setAttribute("aria-label", `Close ${pos.side} position in ${it.name}`);
      }).catch(() => {});
      closeBtn.addEventListener("click", () => close(r, closeBtn));
      tbody.append(h("tr", { "data-position": pos.id },
        h("td", { "data-label": "Player" }, nameLink),
        h("td", { "data-label": "Side" }, h("span", { class: `badge ${pos.side}` }, pos.side)),
        h("td", { class: "num", "data-label": "Qty" }, String(pos.qty)),
        h("td", { class: "num", "data-label": "Entry" }, credits(pos.entry_price)),
        r.markTd, r.pnlTd,
        h("td", { class: "num", "data-label": "Margin" }, `${credits(pos.margin)} (${pos.leverage}×)`),
        h("td", { class: "num", "data-label": "Liquidation" }, pos.liquidation_price ? credits(pos.liquidation_price) : "—"),
        h("td", { class: "actions" }, closeBtn)));
      rows.set(pos.id, r);
      paintRow(r);
    }
    body.append(h("div", { class: "table-wrap" }, h("table", { class: "cards", id: "positions-table" },
      h("caption", { class: "visually-hidden" }, "Open positions, live prices and unrealised profit or loss in credits"),
      h("thead", {}, h("tr", {}, ["Player", "Side", "Qty", "Entry", "Price", "Unrealised PnL", "Margin", "Liquidation"].map((t, i) =>
        h("th", { scope: "col", class: i >= 2 ? "num" : null }, t)), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      tbody)));
    prices.want("portfolio", data.positions.map((p) => p.instrument_id));
    paintTotals();
  }

  async function load() {
    try {
      const d = await api("GET", "/api/portfolio");
      if (!alive) return;
      data = d;
      ctx.setWallet(d.wallet);
      render();
    } catch (e) {
      if (!alive) return;
      if (!data) clear(body).append(h("p", {}, "Could not load your portfolio."));
      ctx.error(e);
    }
  }

  const offPrice = prices.onPrice((u) => {
    let touched = false;
    for (const r of rows.values()) {
      if (r.pos.instrument_id === u.id) {
        r.mark = u.price;
        paintRow(r);
        touched = true;
      }
    }
    if (touched) paintTotals();
  });
  const timer = setInterval(() => document.visibilityState === "visible" && load(), RELOAD_MS);
  load();

  return () => {
    alive = false;
    clearInterval(timer);
    offPrice();
    prices.drop("portfolio");
  };
}
