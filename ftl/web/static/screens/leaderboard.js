// Leaderboards, overall and for the user's district. Shows a placeholder while the server has none.

import { api } from "../api.js";
import { credits } from "../format.js";
import { describe } from "../errors.js";
import { h, clear } from "../dom.js";

let chosen = "overall";

export function mount(root, ctx) {
  let alive = true;
  const tabs = [
    { scope: "overall", label: "Overall" },
    { scope: "district", label: "My district" },
  ];
  const panel = h("div", { role: "tabpanel", id: "lb-panel", tabindex: "0" });
  const buttons = tabs.map((t) => h("button", {
    type: "button", role: "tab", id: `lb-tab-${t.scope}`, "aria-controls": "lb-panel",
    "data-scope": t.scope,
  }, t.label));
  const list = h("div", { role: "tablist", "aria-label": "Leaderboard scope" }, buttons);
  root.append(h("h1", {}, "Leaderboard"), list, h("section", { class: "panel" }, panel));

  function select(scope, focus = false) {
    chosen = scope;
    for (const b of buttons) {
      const on = b.dataset.scope === scope;
      b.setAttribute("aria-selected", String(on));
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    }
    panel.setAttribute("aria-labelledby", `lb-tab-${scope}`);
    load(scope);
  }

  list.addEventListener("click", (e) => {
    const b = e.target.closest("[role=tab]");
    if (b) select(b.dataset.scope);
  });
  list.addEventListener("keydown", (e) => {
    const i = tabs.findIndex((t) => t.scope === chosen);
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      select(next.scope, true);
    }
  });

  let loadSeq = 0;
  async function load(scope) {
    const mine = ++loadSeq;
    clear(panel).append(h("p", { class: "loading" }, "Loading…"));
    const me = ctx.me || (await ctx.refreshMe());
    if (!alive || mine !== loadSeq) return;
    const params = new URLSearchParams({ scope, limit: "50" });
    if (scope === "district") {
      const d = me && me.district_id;
      if (!d) {
        clear(panel).append(h("p", { id: "lb-empty" }, "You have no district yet: choose one when you sign in for the first time to compete with your neighbours."));
        return;
      }
      params.set("district_id", String(d));
    }
    try {
      const data = await api("GET", `/api/leaderboard?${params}`);
      if (!alive || mine !== loadSeq) return;
      render(scope, data, me);
    } catch (e) {
      if (!alive || mine !== loadSeq) return;
      if (e && e.status === 404) {
        clear(panel).append(h("p", { id: "lb-unavailable", role: "status" },
          "Leaderboards are not available on this server yet. They will appear here as soon as it supports them."));
        return;
      }
      clear(panel).append(h("p", { class: "inline-msg", "data-kind": "error", role: "alert" }, `Could not load the leaderboard: ${describe(e)}`));
    }
  }

  function render(scope, data, me) {
    const entries = (data && data.entries) || [];
    const parts = [];
    const mine = data && data.me;
    parts.push(h("p", { id: "lb-me" }, mine && mine.rank
      ? `Your rank: #${mine.rank} with ${credits(mine.equity)} credits.`
      : "You are not ranked yet: open a position to join."));
    if (!entries.length) {
      parts.push(h("p", { class: "muted" }, "Nobody is ranked yet."));
    } else {
      parts.push(h("div", { class: "table-wrap" }, h("table", { id: "leaderboard" },
        h("caption", { class: "visually-hidden" }, `${scope === "overall" ? "Overall" : "District"} ranking by equity in credits`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "Rank"), h("th", { scope: "col" }, "Player"), h("th", { scope: "col", class: "num" }, "Equity"))),
        h("tbody", {}, entries.map((e) => {
          const isMe = me && e.user_id === me.id;
          return h("tr", { class: isMe ? "me" : null, "aria-current": isMe ? "true" : null },
            h("td", { class: "num" }, `#${e.rank}`),
            h("td", {}, e.name || `Player ${e.user_id}`, isMe ? " (you)" : ""),
            h("td", { class: "num" }, credits(e.equity)));
        })))));
    }
    clear(panel).append(...parts);
  }

  select(chosen);
  return () => {
    alive = false;
  };
}
