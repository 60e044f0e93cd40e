"""Faults with real processes: Redis, PostgreSQL, the api and the flusher killed under load.

Every test checks invariant 5 (a trade the client saw confirmed survives) and ends with
``ftl audit`` (balances and skews equal a replay from PostgreSQL, money is conserved).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from ftl.audit import embedded_urls
from ftl.persistence.migrations import migrate_sync
from tests.helpers import FAULT_HOOKS, ROOT, FtlProcess, await_for, ftl_process, http_status, make_data_dir

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------------------------------------
# Clients that trade over HTTP and remember every trade they saw confirmed


@dataclass
class Client:
    user_id: int
    token: str
    open_positions: dict[int, str] = field(default_factory=dict)  # position id -> side


@dataclass
class Load:
    """Clients trading in a loop; ``confirmed`` holds every 2xx trade as the client saw it."""

    http: httpx.AsyncClient
    base: str
    instruments: list[int]
    confirmed: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    pending: list[tuple[Client, str, str, dict[str, Any]]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def count(self, *codes: str) -> int:
        return sum(n for k, n in self.statuses.items() if k in codes)

    async def login(self, email: str) -> Client:
        resp = await self.http.post(f"{self.base}/api/auth/dev", json={"email": email})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        return Client(int(body["user"]["id"]), body["access_token"])

    async def send(self, client: Client, path: str, key: str, body: dict[str, Any]) -> str:
        headers = {"Authorization": f"Bearer {client.token}", "Idempotency-Key": key}
        try:
            resp = await self.http.post(f"{self.base}{path}", json=body, headers=headers)
        except httpx.TransportError:
            self.statuses["transport_error"] += 1
            return "transport_error"
        if resp.status_code in (200, 201):
            reply = resp.json()
            trade = reply["trade"]
            self.confirmed[int(trade["id"])] = {**trade, "user_id": client.user_id, "key": key}
            pid = int(reply["position"]["id"])
            if trade["kind"] == "open":
                client.open_positions[pid] = trade["side"]
            elif reply["position"]["status"] != "open":
                client.open_positions.pop(pid, None)
            self.statuses[str(resp.status_code)] += 1
            return "ok"
        code = str(resp.json().get("error", {}).get("code", "")) if resp.content else ""
        self.statuses[f"{resp.status_code}:{code}"] += 1
        if code == "persist_pending":  # done in Redis, not yet in PostgreSQL: confirm it later
            self.pending.append((client, path, key, body))
        return code

    async def step(self, client: Client) -> None:
        key = secrets.token_hex(8)
        if client.open_positions and self.rng.random() < 0.3:
            pid = self.rng.choice(sorted(client.open_positions))
            price = 1 if client.open_positions[pid] == "long" else 10**9
            await self.send(client, f"/api/positions/{pid}/close", key, {"acceptable_price": price})
            return
        side = self.rng.choice(("long", "short"))
        body = {
            "instrument_id": self.rng.choice(self.instruments),
            "side": side,
            "qty": self.rng.randint(1, 5),
            "leverage": self.rng.randint(1, 5),
            "acceptable_price": 10**9 if side == "long" else 1,
        }
        await self.send(client, "/api/positions/open", key, body)

    async def run(self, client: Client, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step(client)
            await asyncio.sleep(0)

    async def confirm_pending(self, timeout: float = 30.0) -> None:
        """Retry every persist_pending trade with its Idempotency-Key until it is confirmed."""

        async def all_confirmed() -> bool:
            left = []
            for client, path, key, body in self.pending:
                if await self.send(client, path, key, body) != "ok":
                    left.append((client, path, key, body))
            self.pending = left
            return not left

        await await_for(all_confirmed, timeout, "persist_pending trades to be confirmed")


async def _instruments(http: httpx.AsyncClient, base: str, client: Client, n: int = 3) -> list[int]:
    resp = await http.get(
        f"{base}/api/instruments?limit=50", headers={"Authorization": f"Bearer {client.token}"}
    )
    assert resp.status_code == 200, resp.text
    return [int(i["id"]) for i in resp.json()["items"] if i["status"] == "open"][:n]


# ---------------------------------------------------------------------------------------------
# Checks against PostgreSQL (the source of truth) and the running api


async def _verify(database_url: str, load: Load, clients: list[Client]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # every trade a client saw confirmed is in PostgreSQL, exactly as confirmed
        cur = await conn.execute(
            "SELECT id, user_id, kind, qty, price, fee, margin, idempotency_key FROM trades "
            "WHERE id = ANY(%s)",
            (list(load.confirmed),),
        )
        rows = {r[0]: r for r in await cur.fetchall()}
        missing = sorted(set(load.confirmed) - set(rows))
        assert not missing, f"confirmed trades missing from PostgreSQL: {missing[:20]}"
        for tid, seen in load.confirmed.items():
            row = rows[tid]
            assert row[1:] == (
                seen["user_id"], seen["kind"], seen["qty"], seen["price"], seen["fee"], seen["margin"],
                seen["key"],
            ), (row, seen)  # fmt: skip
        # balances equal a replay of PostgreSQL's trades; the api answers the same
        for client in clients:
            cur = await conn.execute(
                "SELECT w.granted + coalesce(sum(CASE WHEN t.kind = 'open' THEN -(t.margin + t.fee) "
                "ELSE t.payout END), 0), "
                "coalesce(sum(CASE WHEN t.kind = 'open' THEN t.margin ELSE -t.margin END), 0) "
                "FROM wallets w LEFT JOIN trades t ON t.user_id = w.user_id "
                "WHERE w.user_id = %s GROUP BY w.granted",
                (client.user_id,),
            )
            replay = await cur.fetchone()
            resp = await load.http.get(
                f"{load.base}/api/me", headers={"Authorization": f"Bearer {client.token}"}
            )
            wallet = resp.json()["wallet"]
            assert replay is not None and (wallet["available"], wallet["locked"]) == tuple(replay)
        # skews equal Σ open long - Σ open short
        for iid in load.instruments:
            cur = await conn.execute(
                "SELECT coalesce(sum(CASE WHEN side = 'long' THEN qty ELSE -qty END), 0) "
                "FROM cfd_positions WHERE instrument_id = %s AND status = 'open'",
                (iid,),
            )
            row = await cur.fetchone()
            resp = await load.http.get(
                f"{load.base}/api/instruments/{iid}",
                headers={"Authorization": f"Bearer {clients[0].token}"},
            )
            assert row is not None and resp.json()["skew"] == row[0]

        # money is conserved (once the flusher folded the house's share of every trade)
        async def folded() -> bool:
            c = await conn.execute("SELECT count(*) FROM ledger_pending")
            row = await c.fetchone()
            return bool(row and row[0] == 0)

        await await_for(folded, 10, "the flusher to fold every trade")
        cur = await conn.execute("SELECT sum(available + locked), sum(granted) FROM wallets")
        total = await cur.fetchone()
        assert total is not None and total[0] == total[1]


def _audit(env: dict[str, str]) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FTL_")}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-m", "ftl", "audit", "--wait", "20"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RESULT: OK" in out.stdout
    return out.stdout


def _servers(ftl: FtlProcess, name: str) -> list[psutil.Process]:
    try:
        children = psutil.Process(ftl.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if c.name() == name and c.status() != psutil.STATUS_ZOMBIE]


async def _ready(ftl: FtlProcess, role: str, timeout: float = 40.0) -> None:
    async def ready() -> bool:
        assert ftl.proc.poll() is None, ftl.log()
        return await asyncio.to_thread(http_status, ftl.url(role, "/readyz")) == 200

    await await_for(ready, timeout, f"{role} ready")


async def _start_load(ftl: FtlProcess, http: httpx.AsyncClient, n: int = 4) -> tuple[Load, list[Client]]:
    base = ftl.url("api", "")
    load = Load(http, base, [])
    clients = [await load.login(f"c{i}-{secrets.token_hex(3)}@x.test") for i in range(n)]
    load.instruments = await _instruments(http, base, clients[0])
    assert load.instruments
    return load, clients


# ---------------------------------------------------------------------------------------------
# (a) Redis killed under load


async def test_redis_killed_under_load_loses_no_confirmed_trade() -> None:
    data_dir = make_data_dir()
    with ftl_process(["dev"], data_dir=data_dir) as ftl:
        await _ready(ftl, "api")
        async with httpx.AsyncClient(timeout=10) as http:
            load, clients = await _start_load(ftl, http)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(load.run(c, stop)) for c in clients]
            await await_for(lambda: _true(len(load.confirmed) >= 60), 20, "trades before the fault")

            redis = _servers(ftl, "redis-server")[0]
            redis.kill()  # kill -9
            before = len(load.confirmed)
            await await_for(
                lambda: _true(load.count("503:recovering", "503:cache_unavailable") > 0),
                15,
                "503 while Redis is gone or rebuilt",
            )
            await await_for(
                lambda: _true(len(load.confirmed) >= before + 60), 30, "trading again after the rebuild"
            )
            stop.set()
            await asyncio.gather(*tasks)
            await load.confirm_pending()
            new = _servers(ftl, "redis-server")
            assert new and new[0].pid != redis.pid
            assert "hot state rebuilt" in ftl.log()
            assert not [s for s in load.statuses if s.startswith("500")], load.statuses
            unclear = {s for s in load.statuses if s.startswith("503")} - {
                "503:database_unavailable", "503:outcome_unknown", "503:recovering", "503:cache_unavailable",
            }  # fmt: skip
            assert not unclear, load.statuses
            urls = embedded_urls(data_dir)
            assert urls is not None
            await _verify(urls[1], load, clients)
            print(f"confirmed {len(load.confirmed)} trades; replies {dict(load.statuses)}")
        report = _audit({"FTL_DATA_DIR": str(data_dir)})  # finds the running dev's servers
        assert "snapshot quiet" in report


async def _true(value: bool) -> bool:
    return value


# ---------------------------------------------------------------------------------------------
# (b) and (c): api and flusher as separate `ftl run` processes on the test session's servers


@pytest.fixture
def fresh_db(pg_server_url: str) -> Iterator[str]:
    """A migrated database of this test alone (the audit compares all of PostgreSQL with Redis)."""
    name = f"ftl_fault_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{pg_server_url.rpartition('/')[0]}/{name}"
    migrate_sync(url)
    try:
        yield url
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _role_env(redis_url: str, database_url: str) -> dict[str, str]:
    return {
        "FTL_REDIS_URL": redis_url,
        "FTL_DATABASE_URL": database_url,
        "FTL_REDIS_PREFIX": f"f{secrets.token_hex(4)}:",
        "FTL_SEED_DEMO": "0",
        "FTL_JWT_KEYS": f"k1:{secrets.token_urlsafe(32)}",  # tokens survive an api restart
    }


def _seed_instruments(database_url: str, ids: list[int]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for iid in ids:
            conn.execute(
                "INSERT INTO instruments (id, player_id, name, team, position, index_price, depth, "
                "skew_cap) VALUES (%s, %s, 'P', 'T', 'FW', 1000, 50000, 25000)",
                (iid, iid),
            )


async def _redis_exists(redis_url: str, key: str) -> bool:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        return bool(await client.exists(key))
    finally:
        await client.aclose()


async def test_api_killed_between_lua_and_postgres_flusher_persists(redis_url: str, fresh_db: str) -> None:
    _seed_instruments(fresh_db, [11])
    env = _role_env(redis_url, fresh_db)
    prefix = env["FTL_REDIS_PREFIX"]
    with ftl_process(["run", "--role=flusher"], env=env) as flusher:
        await _ready(flusher, "flusher")
        await await_for(lambda: _redis_exists(redis_url, f"{prefix}boot"), 20, "hot state built")
        with ftl_process(["run", "--role=api"], env={**env, **FAULT_HOOKS}) as api:
            await _ready(api, "api")
            async with httpx.AsyncClient(timeout=10) as http:
                load = Load(http, api.url("api", ""), [11])
                client = await load.login("victim@x.test")
                body = {
                    "instrument_id": 11,
                    "side": "long",
                    "qty": 7,
                    "leverage": 2,
                    "acceptable_price": 10**9,
                }
                assert await load.send(client, "/api/positions/open", "k-1", body) == "transport_error"
            await await_for(lambda: _true(api.proc.poll() is not None), 10, "the api to die")
            assert api.proc.returncode == -signal.SIGKILL

        async def persisted() -> bool:
            async with await psycopg.AsyncConnection.connect(fresh_db) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FROM trades WHERE user_id = %s AND idempotency_key = 'k-1'",
                    (client.user_id,),
                )
                row = await cur.fetchone()
                return bool(row and row[0] == 1)

        await await_for(persisted, 10, "the flusher to persist the outbox entry")

        # the client retries with the same key on a healthy api: the first answer, one trade
        with ftl_process(["run", "--role=api"], env=env) as api2:
            await _ready(api2, "api")
            async with httpx.AsyncClient(timeout=10) as http:
                load = Load(http, api2.url("api", ""), [11])
                assert await load.send(client, "/api/positions/open", "k-1", body) == "ok"
                (tid, trade), *_ = load.confirmed.items()
                assert trade["qty"] == 7
                assert await load.send(client, "/api/positions/open", "k-2", body) == "ok"
                await _verify(fresh_db, load, [client])
            async with await psycopg.AsyncConnection.connect(fresh_db) as conn:
                cur = await conn.execute(
                    "SELECT id FROM trades WHERE user_id = %s ORDER BY id", (client.user_id,)
                )
                assert [r[0] for r in await cur.fetchall()] == [tid, tid + 1]
            _audit(env)


async def test_flusher_killed_mid_batch_loses_and_doubles_nothing(redis_url: str, fresh_db: str) -> None:
    from ftl.config import Settings
    from ftl.persistence.recovery import rebuild
    from ftl.persistence.stores import Stores
    from ftl.persistence.trade_replies import CloseResult, OpenResult
    from ftl.persistence.trade_scripts import TradingScripts
    from ftl.worker.flusher import GROUP
    from tests.persistence.support import load_used_keys

    instruments = [21, 22, 23, 24]
    _seed_instruments(fresh_db, instruments)
    with psycopg.connect(fresh_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (email, name) SELECT 'u' || g || '@x.test', 'u' FROM generate_series(1, 40) g"
        )
        cur.execute(
            "INSERT INTO wallets (user_id, available, granted) "
            "SELECT id, 10000000, 10000000 FROM users WHERE id > 0"
        )
        cur.execute("SELECT id FROM users WHERE id > 0")
        users = [r[0] for r in cur.fetchall()]
    env = _role_env(redis_url, fresh_db)
    settings = Settings(env="test", redis_prefix=env["FTL_REDIS_PREFIX"])
    stores = await Stores.open(settings, redis_url, fresh_db)
    try:
        await rebuild(stores)  # hot state from PostgreSQL, boot marker set
        await load_used_keys(stores, *users)
        # A backlog only the flusher can write: trades straight through the Lua scripts.
        t = TradingScripts(stores.scripts, stores.keys)
        rng = random.Random(3)
        made: list[int] = []
        opened: dict[int, list[tuple[int, str]]] = {u: [] for u in users}

        async def trade(i: int) -> None:
            user = users[i % len(users)]
            if opened[user] and rng.random() < 0.3:
                pid, was = opened[user].pop()
                res: Any = await t.close(
                    user_id=user,
                    position_id=pid,
                    acceptable_price=1 if was == "long" else 10**9,
                    idempotency_key=f"c{i}",
                )
                assert isinstance(res, CloseResult)
            else:
                side = "long" if i % 2 else "short"
                res = await t.open(
                    user_id=user,
                    instrument_id=instruments[i % 4],
                    side=side,
                    qty=1 + i % 3,
                    leverage=2,
                    acceptable_price=10**9 if side == "long" else 1,
                    idempotency_key=f"o{i}",
                )
                assert isinstance(res, OpenResult), res
                opened[user].append((res.position_id, side))
            made.append(res.trade_id)

        for start in range(0, 8000, 40):  # users are distinct within a chunk
            await asyncio.gather(*(trade(i) for i in range(start, start + 40)))
        assert len(made) == 8000 == len(set(made))
        outbox = stores.keys.outbox
        assert await stores.redis.xlen(outbox) == 8000

        async def pg_trades() -> int:
            async with stores.pg.connection() as conn:
                cur = await conn.execute("SELECT count(*) FROM trades")
                row = await cur.fetchone()
                return int(row[0]) if row else 0

        async def pending() -> int:
            try:
                info = await stores.redis.xpending(outbox, GROUP)
            except Exception:  # the group does not exist yet
                return 0
            return int(info["pending"])

        with ftl_process(["run", "--role=flusher"], env=env) as flusher:

            async def second_batch_in_flight() -> bool:  # one batch committed, the next one read
                return await pg_trades() >= 2000 and await pending() > 0

            await await_for(second_batch_in_flight, 30, "a batch in flight")
            flusher.proc.kill()  # kill -9 while a batch is read and not yet acknowledged
            flusher.proc.wait(10)
            assert flusher.proc.returncode == -signal.SIGKILL
        left_pending, written = await pending(), await pg_trades()
        print(f"flusher killed with {left_pending} entries pending, {written} of 8000 trades written")
        assert left_pending > 0 and 2000 <= written < 8000, (left_pending, written)

        with ftl_process(["run", "--role=flusher"], env=env):

            async def drained() -> bool:
                return await stores.redis.xlen(outbox) == 0 and await pg_trades() == 8000

            await await_for(drained, 30, "the restarted flusher to drain the outbox")
            async with stores.pg.connection() as conn:
                cur = await conn.execute("SELECT id FROM trades ORDER BY id")
                assert [r[0] for r in await cur.fetchall()] == sorted(made)  # nothing lost or doubled
            assert await pending() == 0
            _audit(env)
    finally:
        await stores.close()


# ---------------------------------------------------------------------------------------------
# (d) PostgreSQL killed and restarted under load


async def test_postgres_restarted_under_load_loses_no_confirmed_trade() -> None:
    data_dir = make_data_dir()
    with ftl_process(["dev"], data_dir=data_dir) as ftl:
        await _ready(ftl, "api")
        async with httpx.AsyncClient(timeout=10) as http:
            load, clients = await _start_load(ftl, http)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(load.run(c, stop)) for c in clients]
            await await_for(lambda: _true(len(load.confirmed) >= 60), 20, "trades before the fault")

            postmaster = next(p for p in _servers(ftl, "postgres") if p.ppid() == ftl.proc.pid)
            os.killpg(postmaster.pid, signal.SIGKILL)  # the server and every backend, at once
            before = len(load.confirmed)
            # While it is down a trade gets a 503 that says what is known (database_unavailable:
            # nothing traded; outcome_unknown: retry with the same key), or waits for it: the api
            # retries a lost connection, and ftl restarts PostgreSQL within a second or two.
            await await_for(
                lambda: _true("embedded server exited, restarting" in ftl.log()), 15, "PostgreSQL restarted"
            )
            await await_for(
                lambda: _true(len(load.confirmed) >= before + 60), 40, "trading again after the restart"
            )
            stop.set()
            await asyncio.gather(*tasks)
            await load.confirm_pending()
            assert "embedded server exited, restarting" in ftl.log()
            assert not [s for s in load.statuses if s.startswith("500")], load.statuses
            urls = embedded_urls(data_dir)
            assert urls is not None
            await _verify(urls[1], load, clients)
            print(f"confirmed {len(load.confirmed)} trades; replies {dict(load.statuses)}")
        _audit({"FTL_DATA_DIR": str(data_dir)})


def test_the_product_has_no_fault_hook() -> None:
    """The hook lives in tests/hooks (on PYTHONPATH for the tests that want it): nothing in
    ftl/ reads its variable, so no configuration of the product can enable it."""
    for path in (ROOT / "ftl").rglob("*.py"):
        assert "FAULT_AFTER_LUA" not in path.read_text(), path
    assert (ROOT / "tests" / "hooks" / "sitecustomize.py").is_file()
