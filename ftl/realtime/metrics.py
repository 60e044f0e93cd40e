"""Prometheus metrics of the ws role (one set per worker process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SOCKETS = Gauge("ftl_ws_sockets", "Open WebSocket connections of this worker")
AUTHENTICATED = Gauge("ftl_ws_authenticated_sockets", "Authenticated WebSocket connections of this worker")
SUBSCRIPTIONS = Gauge("ftl_ws_subscriptions", "Socket-instrument subscriptions of this worker")
UPDATES = Counter("ftl_ws_updates_total", "PRICE_UPDATE messages received from Redis")
BAD_UPDATES = Counter("ftl_ws_bad_updates_total", "Messages on price:* that were not a valid PRICE_UPDATE")
DELIVERIES = Counter(
    "ftl_ws_deliveries_total", "PRICE_UPDATE frames written to sockets (rate = deliveries/s)"
)
CONFLATED = Counter(
    "ftl_ws_conflated_total", "Updates held back for a paused socket (a newer one replaces an older one)"
)
SNAPSHOTS = Counter("ftl_ws_snapshots_total", "Snapshot frames sent on subscribe or after a Redis reconnect")
SLOW_CLOSES = Counter("ftl_ws_slow_closes_total", "Sockets closed with 4008 because they stopped reading")
CLOSES = Counter("ftl_ws_closes_total", "Sockets closed by the server, by close code", ["code"])
CLIENT_ERRORS = Counter("ftl_ws_client_errors_total", "ERROR replies to bad client messages", ["code"])
REDIS_RECONNECTS = Counter("ftl_ws_redis_reconnects_total", "Re-subscriptions to price:* after a loss")
LAG = Histogram(
    "ftl_ws_publish_to_send_seconds",
    "From the update's ts (publish time) to the last write of its fan-out",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FANOUT = Histogram(
    "ftl_ws_fanout_seconds",
    "Time to write one update to all of its subscribers",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
