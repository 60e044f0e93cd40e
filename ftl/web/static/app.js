// FTL web client entry: routing, header, notices, session wiring. Plain ES modules, no build.

import * as session from "./session.js";
import { api } from "./api.js";
import { fetchJson } from "./http.js";
import { describe } from "./errors.js";
import { prices } from "./prices.js";
import { credits } from "./format.js";
import { h, clear } from "./dom.js";
import * as signin from "./screens/signin.js";
import * as instruments from "./screens/instruments.js";
import * as instrument from "./screens/instrument.js";
import * as portfolio from "./screens/portfolio.js";
import * as leaderboard from "./screens/leaderboard.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const account = document.getElementById("account");
const walletEl = document.getElementById("wallet");
const connEl = document.getElementById("conn");
const errorBox = document.getElementById("notice-error");
const infoBox = document.getElementById("notice-info");

let unmount = null;
let config = null;
let signOutReason = null;
let infoTimer = null;

const ctx = {
  me: null,
  get config() {
    return config;
  },
  error(err) {
    errorBox.querySelector(".notice-text").textContent = typeof err === "string" ? err : describe(err);
    errorBox.hidden = false;
  },
  clearError() {
    errorBox.hidden = true;
  },
  info(text) {
    infoBox.querySelector(".notice-text").textContent = text;
    infoBox.hidden = !text;
    clearTimeout(infoTimer);
    if (text) infoTimer = setTimeout(() => (infoBox.hidden = true), 6000);
  },
  setWallet(wallet) {
    if (!wallet) return;
    if (ctx.me) ctx.me.wallet = wallet;
    walletEl.replaceChildren(
      h("span", { class: "wallet-amount" }, credits(wallet.available)),
      h("span", { class: "wallet-unit" }, " credits available"),
    );
    walletEl.setAttribute("aria-label", `${credits(wallet.available)} credits available`);
  },
  async refreshMe() {
    try {
      ctx.me = await api("GET", "/api/me");
      ctx.setWallet(ctx.me.wallet);
    } catch (e) {
      if (session.get()) ctx.error(e);
    }
    return ctx.me;
  },
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

errorBox.querySelector(".notice-close").addEventListener("click", () => ctx.clearError());
document.getElementById("signout").addEventListener("click", () => session.signOut());

prices.onStatus((state, why) => {
  connEl.dataset.state = state;
  const text = { live: "Live", connecting: "Connecting…", waiting: "Reconnecting…", offline: "Offline" }[state];
  connEl.querySelector(".conn-text").textContent = text;
  connEl.title = why || `Live prices: ${text}`;
  connEl.setAttribute("aria-label", `Live prices: ${why || text}`);
});

session.onChange((s, reason, detail) => {
  if (reason === "signed_out") {
    signOutReason = detail && detail !== "signed_out" ? detail : null;
    ctx.me = null;
    route();
  } else if (reason === "signed_in") {
    signOutReason = null;
    onSignedIn();
  }
});

async function onSignedIn() {
  ctx.clearError();
  prices.start();
  await ctx.refreshMe();
  if (!location.hash || location.hash === "#/signin") location.hash = "#/instruments";
  else route();
}

function parseRoute() {
  const hash = location.hash || "#/instruments";
  const m = hash.match(/^#\/instrument\/(\d{1,16})$/);
  if (m) return { screen: instrument, name: "instruments", params: { id: Number(m[1]) } };
  if (hash === "#/portfolio") return { screen: portfolio, name: "portfolio", params: {} };
  if (hash === "#/leaderboard") return { screen: leaderboard, name: "leaderboard", params: {} };
  return { screen: instruments, name: "instruments", params: {} };
}

function route() {
  if (unmount) {
    try {
      unmount();
    } catch {
      /* a screen that failed to clean up must not block navigation */
    }
    unmount = null;
  }
  clear(main);
  const signedIn = Boolean(session.get());
  nav.hidden = !signedIn;
  account.hidden = !signedIn;
  if (!signedIn) {
    document.title = "Sign in — FTL";
    unmount = signin.mount(main, ctx, { reason: signOutReason });
    return;
  }
  const r = parseRoute();
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.route === r.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  unmount = r.screen.mount(main, ctx, r.params);
  // Move focus to the new screen's heading so screen readers announce it.
  const heading = main.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
    document.title = `${heading.textContent} — FTL`;
  }
}

window.addEventListener("hashchange", () => {
  ctx.clearError();
  route();
});

async function boot() {
  try {
    config = await fetchJson("GET", "/api/config");
  } catch (e) {
    config = { google_client_id: null, dev_login: false, error: e };
  }
  if (session.get()) {
    prices.start();
    ctx.refreshMe();
  }
  route();
}

// For debugging from the console (and the browser test): the live price stream and session.
window.ftl = { prices, session };

boot().catch((e) => {
  clear(main).append(h("p", { role: "alert" }, `FTL could not start: ${describe(e)}`));
});
