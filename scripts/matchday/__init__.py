"""Match day: the whole system as production runs it, under load and faults, checked from the outside.

    .venv/bin/python -m scripts.matchday [--users 200] [--ws-clients 400] [--duration 120]
        [--speed 10] [--seed 1] [--no-faults]

1. Starts one Redis and one PostgreSQL (embedded, in a temp dir; or --redis-url/--database-url),
   runs `ftl migrate` and `ftl seed`, then the production shape as separate processes:
   api x2 (two ports), ws x1 (FTL_WS_WORKERS=2), flusher x1, FTL_ENV=production, the bundled
   match replayed (FTL_FEED=replay:bundled) at --speed, and a fake Google (JWKS on loopback).
2. Simulated users sign in with Google ID tokens, each from its own loopback address (the auth
   rate limit is per client IP), and trade with a strategy: random, momentum, contrarian, or
   informed (reads the replay file --informed-lead seconds ahead of the api's replay clock).
   WebSocket clients (in --ws-procs worker processes) hold subscriptions and reconnect on close.
3. Faults on a schedule (--no-faults turns them off): kill -9 Redis and restart it, kill -9 an
   api and restart it, kill -9 the flusher and restart it, a burst of slow ws clients that
   subscribe to everything and never read.
4. At the end: the flusher drains, `ftl audit` runs, and DESIGN section 8's invariants are checked
   from the outside (every confirmed trade in PostgreSQL exactly once, money conserved, no
   negative balance, skews equal open positions, one trade per idempotency key, fills within the
   acceptable price, no 500).
5. Prints one report; exits 1 on any broken invariant.
"""

from scripts.matchday.cli import main, parse_args
from scripts.matchday.day import MatchDay
from scripts.matchday.ws_clients import ws_worker

__all__ = ["MatchDay", "main", "parse_args", "ws_worker"]
