// Live prices from the ws role: binary MessagePack frames, auth as the first message,
// subscriptions kept across reconnects, reconnect with exponential backoff (docs/protocol.md).

import { decode, encode } from "./vendor/msgpack/index.mjs";
import { wsUrl } from "./config.js";
import * as session from "./session.js";

const MAX_SUBSCRIPTIONS = 200; // per socket (server limit)
const MAX_IDS_PER_MESSAGE = 200;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const PING_EVERY_MS = 20_000;
const DEAD_AFTER_MS = 45_000; // nothing heard for this long: the socket is gone

class PriceStream {
  constructor() {
    this.ws = null;
    this.state = "offline"; // offline | connecting | live | waiting
    this.interests = new Map(); // owner -> ids (array, in priority order)
    this.subscribed = new Set(); // what the server has for this socket
    this.latest = new Map(); // id -> {price, seq, ts, index, skew}
    this.priceListeners = new Set();
    this.statusListeners = new Set();
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.lastError = "";
    this.wantOpen = false;
    session.onChange((s, reason) => this.onSession(s, reason));
    window.addEventListener("online", () => this.reconnectNow());
  }

  // ---- consumers ------------------------------------------------------------------------

  onPrice(fn) {
    this.priceListeners.add(fn);
    return () => this.priceListeners.delete(fn);
  }

  onStatus(fn) {
    this.statusListeners.add(fn);
    fn(this.state, this.lastError);
    return () => this.statusListeners.delete(fn);
  }

  /** Declare the ids `owner` wants live prices for (replaces its previous list). */
  want(owner, ids) {
    this.interests.set(owner, ids.map(Number).filter((n) => Number.isSafeInteger(n) && n > 0));
    this.sync();
  }

  drop(owner) {
    this.interests.delete(owner);
    this.sync();
  }

  get(id) {
    return this.latest.get(Number(id));
  }

  // ---- connection -----------------------------------------------------------------------

  start() {
    this.wantOpen = true;
    if (!this.ws && session.get()) this.connect();
  }

  stop() {
    this.wantOpen = false;
    clearTimeout(this.retryTimer);
    this.closeSocket(1000);
    this.setState("offline");
  }

  reconnectNow() {
    if (!this.wantOpen || !session.get()) return;
    this.attempt = 0;
    if (!this.ws) {
      clearTimeout(this.retryTimer);
      this.connect();
    }
  }

  setState(state, error = "") {
    this.state = state;
    this.lastError = error;
    for (const fn of this.statusListeners) fn(state, error);
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (!this.wantOpen || !session.get()) return;
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      this.scheduleReconnect(`Cannot open the live price connection: ${e.message}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.subscribed = new Set();
    ws.onopen = async () => {
      try {
        const token = await session.accessToken();
        this.send({ op: "auth", token });
      } catch {
        this.closeSocket(1000);
      }
    };
    ws.onmessage = (ev) => this.onFrame(ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev);
    ws.onerror = () => {
      /* onclose follows with the details */
    };
  }

  closeSocket(code) {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.pingTimer);
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      try {
        ws.close(code);
      } catch {
        /* already closed */
      }
    }
  }

  async onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    this.subscribed = new Set();
    if (!this.wantOpen || !session.get()) {
      this.setState("offline");
      return;
    }
    const code = ev.code;
    if (code === 4001 || code === 4002) {
      // Our token was refused or lapsed: refresh it first (ends the session if that fails).
      try {
        await session.refresh();
      } catch {
        this.setState("offline", "Signed out");
        return;
      }
    }
    const why = {
      1001: "The server restarted; reconnecting…",
      1008: "The live price connection rejected our messages; reconnecting…",
      1009: "The live price connection rejected a message as too large; reconnecting…",
      4001: "Live prices: session refused, reconnecting…",
      4002: "Live prices: session expired, reconnecting…",
      4003: "Live prices: connection timed out, reconnecting…",
      4008: "Live prices: connection was too slow, reconnecting…",
    }[code] || "Live prices disconnected; reconnecting…";
    this.scheduleReconnect(why);
  }

  scheduleReconnect(why) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    this.attempt = Math.min(this.attempt + 1, 16);
    this.setState("waiting", why);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(encode(msg));
  }

  onFrame(data) {
    this.lastHeard = Date.now();
    if (!(data instanceof ArrayBuffer)) return; // the protocol is binary only
    let msg;
    try {
      msg = decode(new Uint8Array(data));
    } catch {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "PRICE_UPDATE":
        this.onPriceUpdate(msg);
        break;
      case "AUTH_OK":
        if (this.state !== "live") {
          this.attempt = 0;
          this.setState("live");
          this.subscribed = new Set();
          this.sync();
          clearInterval(this.pingTimer);
          this.pingTimer = setInterval(() => this.keepAlive(), PING_EVERY_MS);
        }
        break;
      case "ERROR":
        if (msg.code === "unknown_instrument" && Array.isArray(msg.ids)) {
          for (const id of msg.ids) this.subscribed.delete(Number(id));
        }
        break;
      default:
        break; // PONG and anything new
    }
  }

  keepAlive() {
    if (Date.now() - this.lastHeard > DEAD_AFTER_MS) {
      this.closeSocket(4000);
      this.subscribed = new Set();
      this.scheduleReconnect("Live prices: connection timed out, reconnecting…");
      return;
    }
    this.send({ op: "ping" });
  }

  onPriceUpdate(msg) {
    const id = Number(msg.id);
    const prev = this.latest.get(id);
    if (prev && !msg.snap && msg.seq <= prev.seq) return; // old or repeated
    const next = {
      id,
      price: msg.price,
      seq: msg.seq,
      ts: msg.ts,
      index: msg.index ?? (prev ? prev.index : undefined),
      skew: msg.skew ?? (prev ? prev.skew : undefined),
      snap: Boolean(msg.snap),
      hasIndex: msg.index !== undefined,
    };
    this.latest.set(id, next);
    for (const fn of this.priceListeners) fn(next, prev);
  }

  // ---- subscriptions --------------------------------------------------------------------

  wantedIds() {
    const out = [];
    const seen = new Set();
    for (const ids of this.interests.values()) {
      for (const id of ids) {
        if (!seen.has(id) && out.length < MAX_SUBSCRIPTIONS) {
          seen.add(id);
          out.push(id);
        }
      }
    }
    return out;
  }

  sync() {
    if (this.state !== "live") return;
    const wanted = this.wantedIds();
    const wantedSet = new Set(wanted);
    const gone = [...this.subscribed].filter((id) => !wantedSet.has(id));
    const added = wanted.filter((id) => !this.subscribed.has(id));
    for (let i = 0; i < gone.length; i += MAX_IDS_PER_MESSAGE) {
      this.send({ op: "unsubscribe", ids: gone.slice(i, i + MAX_IDS_PER_MESSAGE) });
    }
    for (const id of gone) this.subscribed.delete(id);
    for (let i = 0; i < added.length; i += MAX_IDS_PER_MESSAGE) {
      this.send({ op: "subscribe", ids: added.slice(i, i + MAX_IDS_PER_MESSAGE) });
    }
    for (const id of added) this.subscribed.add(id);
  }

  onSession(s, reason) {
    if (!s) {
      this.stop();
      this.latest.clear();
      return;
    }
    if (reason === "refreshed" && this.state === "live") {
      // Same socket, fresh token (docs/protocol.md: re-auth before expires_at).
      this.send({ op: "auth", token: s.access_token });
    }
  }
}

export const prices = new PriceStream();
