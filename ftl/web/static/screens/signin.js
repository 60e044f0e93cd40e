// Sign in: Google Sign-In when the server has a client id, dev login when it allows it.

import * as session from "../session.js";
import { fetchJson } from "../http.js";
import { describe } from "../errors.js";
import { h, message, uid } from "../dom.js";

const GSI_SRC = "https://accounts.google.com/gsi/client";

function districtValue(input) {
  const raw = input.value.trim();
  if (!raw) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 1 ? n : NaN;
}

export function mount(root, ctx, { reason }) {
  const cfg = ctx.config || {};
  const status = h("p", { class: "inline-msg", role: "alert", hidden: true });
  const districtId = uid("district");
  const district = h("input", {
    id: districtId, name: "district", type: "number", inputmode: "numeric", min: "1", step: "1",
    "aria-describedby": `${districtId}-hint`,
  });
  const districtField = h("div", { class: "field" },
    h("label", { for: districtId }, "District ", h("span", { class: "hint" }, "(optional)")),
    district,
    h("p", { class: "hint", id: `${districtId}-hint` }, "Your district's leaderboard. Set once, at your first sign-in."),
  );

  async function signIn(path, body) {
    message(status, "");
    const d = districtValue(district);
    if (Number.isNaN(d)) {
      message(status, "The district must be a whole number of 1 or more.", "error");
      district.focus();
      return;
    }
    if (d !== undefined) body.district_id = d;
    try {
      const reply = await fetchJson("POST", path, { body });
      session.adopt(reply);
    } catch (e) {
      message(status, describe(e), "error");
    }
  }

  const parts = [h("h1", {}, "Sign in to FTL"),
    h("p", { class: "muted" }, "Trade World Cup 2026 players with play money: go long or short, watch prices move live with the match.")];
  if (reason && reason !== "signed_out_elsewhere") parts.push(h("p", { class: "inline-msg", "data-kind": "error", role: "alert" }, describe(reason)));
  if (reason === "signed_out_elsewhere") parts.push(h("p", { class: "inline-msg", "data-kind": "info", role: "status" }, "You signed out in another tab."));
  if (cfg.error) parts.push(h("p", { class: "inline-msg", "data-kind": "error", role: "alert" }, `Cannot load the sign-in options: ${describe(cfg.error)}`));
  parts.push(districtField);

  let gsiScript = null;
  if (cfg.google_client_id) {
    const slot = h("div", { class: "gsi", id: "gsi-button" });
    parts.push(h("section", { "aria-labelledby": "google-h" }, h("h2", { id: "google-h", class: "visually-hidden" }, "Sign in with Google"), slot));
    const init = () => {
      const g = window.google && window.google.accounts && window.google.accounts.id;
      if (!g) return;
      g.initialize({
        client_id: cfg.google_client_id,
        callback: (resp) => signIn("/api/auth/google", { id_token: resp.credential }),
      });
      g.renderButton(slot, { theme: "filled_blue", size: "large", text: "signin_with", shape: "pill" });
    };
    if (window.google && window.google.accounts) init();
    else {
      gsiScript = h("script", { src: GSI_SRC, async: true, defer: true });
      gsiScript.addEventListener("load", init);
      gsiScript.addEventListener("error", () => message(status, "Google Sign-In could not be loaded (offline or blocked).", "error"));
      document.head.append(gsiScript);
    }
  }

  if (cfg.dev_login) {
    if (cfg.google_client_id) parts.push(h("p", { class: "or" }, "or, for local development"));
    const email = h("input", { id: "dev-email", name: "email", type: "email", required: true, autocomplete: "email", value: "player@example.com" });
    const name = h("input", { id: "dev-name", name: "name", type: "text", autocomplete: "nickname", maxlength: "100", value: "Player" });
    const submit = h("button", { type: "submit" }, "Sign in (dev)");
    const form = h("form", { class: "panel", "aria-labelledby": "dev-h", novalidate: true },
      h("h2", { id: "dev-h" }, "Dev login"),
      h("div", { class: "field" }, h("label", { for: "dev-email" }, "Email"), email),
      h("div", { class: "field" }, h("label", { for: "dev-name" }, "Display name"), name),
      submit,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!email.value.trim() || !email.checkValidity()) {
        message(status, "Enter a valid email address.", "error");
        email.focus();
        return;
      }
      submit.disabled = true;
      const body = { email: email.value.trim() };
      if (name.value.trim()) body.name = name.value.trim();
      await signIn("/api/auth/dev", body);
      submit.disabled = false;
    });
    parts.push(form);
  }
  if (!cfg.google_client_id && !cfg.dev_login && !cfg.error) {
    parts.push(h("p", { class: "inline-msg", "data-kind": "error", role: "alert" }, "Sign-in is not configured on this server (no Google client id, and dev login is off)."));
  }
  parts.push(status);
  root.append(h("div", { class: "center" }, parts));
  return () => {};
}
