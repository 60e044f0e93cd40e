// Players list: search by name/team, filter by team and position, live prices with colouring.

import { instruments } from "../api.js";
import { prices } from "../prices.js";
import { credits, percent, direction } from "../format.js";
import { h, clear, debounce } from "../dom.js";

const SHOWN = 100; // rows rendered (and subscribed) at once; the ws allows 200 per socket
const filters = { text: "", team: "", position: "" }; // kept while navigating

export function mount(root, ctx) {
  const search = h("input", { id: "f-text", type: "search", autocomplete: "off", placeholder: "e.g. Lozano or Mexico", value: filters.text });
  const team = h("select", { id: "f-team" }, h("option", { value: "" }, "All teams"));
  const position = h("select", { id: "f-pos" }, h("option", { value: "" }, "All positions"));
  const count = h("p", { class: "muted", role: "status", "aria-live": "polite" }, "Loading players…");
  const tbody = h("tbody");
  const table = h("table", { class: "compact", id: "instruments" },
    h("caption", { class: "visually-hidden" }, "Players with their live prices in credits"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Player"), h("th", { scope: "col", class: "wide-only" }, "Team"),
      h("th", { scope: "col", class: "wide-only" }, "Position"),
      h("th", { scope: "col", class: "num" }, "Price"), h("th", { scope: "col", class: "num" }, "Change"))),
    tbody);
  root.append(
    h("h1", {}, "Players"),
    h("form", { class: "panel filters", role: "search", "aria-label": "Find players", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "f-text" }, "Search player or team"), search),
      h("div", { class: "field" }, h("label", { for: "f-team" }, "Team"), team),
      h("div", { class: "field" }, h("label", { for: "f-pos" }, "Position"), position)),
    count,
    h("div", { class: "table-wrap" }, table),
  );

  let all = [];
  const reference = new Map(); // id -> first price seen on this screen (the change is against it)
  const rows = new Map(); // id -> {price, change, tr}
  let alive = true;

  function render() {
    const text = filters.text.trim().toLowerCase();
    const matches = all.filter((it) =>
      (!filters.team || it.team === filters.team) &&
      (!filters.position || it.position === filters.position) &&
      (!text || it.name.toLowerCase().includes(text) || it.team.toLowerCase().includes(text)));
    const shown = matches.slice(0, SHOWN);
    clear(tbody);
    rows.clear();
    for (const it of shown) {
      const live = prices.get(it.id);
      const price = live ? live.price : it.price;
      if (!reference.has(it.id)) reference.set(it.id, price);
      const priceTd = h("td", { class: "num price", "data-label": "Price", "data-id": it.id });
      const changeTd = h("td", { class: "num change", "data-label": "Change" });
      const tr = h("tr", { "data-id": it.id },
        h("td", { "data-label": "Player" }, h("a", { href: `#/instrument/${it.id}` }, it.name),
          h("span", { class: "sub" }, `${it.team} · ${it.position}`)),
        h("td", { "data-label": "Team", class: "wide-only" }, it.team),
        h("td", { "data-label": "Position", class: "wide-only" }, it.position),
        priceTd, changeTd);
      rows.set(it.id, { priceTd, changeTd, tr });
      paint(it.id, price, null);
      tbody.append(tr);
    }
    count.textContent = matches.length > SHOWN
      ? `Showing ${SHOWN} of ${matches.length} players — narrow the search to see others.`
      : `${matches.length} player${matches.length === 1 ? "" : "s"}.`;
    prices.want("instruments", shown.map((it) => it.id));
  }

  function paint(id, price, prev) {
    const row = rows.get(id);
    if (!row) return;
    const ref = reference.get(id) ?? price;
    const dir = direction(price - ref);
    row.priceTd.textContent = credits(price);
    row.priceTd.dataset.price = String(price);
    row.changeTd.className = `num change ${dir}`;
    row.changeTd.dataset.dir = dir;
    const arrow = dir === "up" ? "▲" : dir === "down" ? "▼" : "•";
    const words = dir === "up" ? "up" : dir === "down" ? "down" : "unchanged";
    row.changeTd.replaceChildren(
      h("span", { "aria-hidden": "true" }, `${arrow} ${percent(ref, price) || "0.00%"}`),
      h("span", { class: "visually-hidden" }, `${words} ${percent(ref, price)} since you opened this list`));
    if (prev !== null && prev !== price) {
      row.tr.dataset.moved = "true";
      row.priceTd.classList.remove("flash-up", "flash-down", "up", "down");
      void row.priceTd.offsetWidth; // restart the animation
      row.priceTd.classList.add(price > prev ? "flash-up" : "flash-down", price > prev ? "up" : "down");
    }
  }

  const offPrice = prices.onPrice((u) => {
    const row = rows.get(u.id);
    if (row) paint(u.id, u.price, Number(row.priceTd.dataset.price));
  });

  const rerender = debounce(render, 150);
  search.addEventListener("input", () => {
    filters.text = search.value;
    rerender();
  });
  team.addEventListener("change", () => {
    filters.team = team.value;
    render();
  });
  position.addEventListener("change", () => {
    filters.position = position.value;
    render();
  });

  instruments()
    .then((items) => {
      if (!alive) return;
      all = items;
      for (const t of [...new Set(items.map((i) => i.team))].sort()) team.append(h("option", { value: t }, t));
      for (const p of [...new Set(items.map((i) => i.position))].sort()) position.append(h("option", { value: p }, p));
      team.value = filters.team;
      position.value = filters.position;
      render();
    })
    .catch((e) => {
      if (!alive) return;
      count.textContent = "Could not load the players.";
      ctx.error(e);
    });

  return () => {
    alive = false;
    offPrice();
    prices.drop("instruments");
  };
}
