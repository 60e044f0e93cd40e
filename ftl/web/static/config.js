// Where the API and the WebSocket live. Defaults: the API on this page's origin, the ws role on
// this page's host at port 8081 (docs/web.md). A deployment overrides them with
//   <meta name="ftl-api-base" content="https://api.example.com">
//   <meta name="ftl-ws-url" content="wss://ws.example.com/ws">
// and anyone can pick another ws *port on the same host* with ?ws_port=NNNN (used by `ftl dev`
// on non-default ports and by the browser test). A full ws URL is deliberately not accepted from
// the query string: the access token is sent to it, so a link must not be able to redirect it.

const params = new URLSearchParams(location.search);

function meta(name) {
  const el = document.querySelector(`meta[name="${name}"]`);
  return el ? el.content.trim() : "";
}

export const API_BASE = meta("ftl-api-base").replace(/\/+$/, "");

export function wsUrl() {
  const configured = meta("ftl-ws-url");
  if (configured) return configured;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const host = location.hostname || "127.0.0.1";
  const wanted = params.get("ws_port") || "";
  const port = /^\d{1,5}$/.test(wanted) && Number(wanted) > 0 && Number(wanted) < 65536 ? wanted : "8081";
  return `${proto}//${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}/ws`;
}
