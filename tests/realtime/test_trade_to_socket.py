"""End to end: a trade through the api app moves the price that a subscribed socket receives."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from ftl.health import Health
from ftl.persistence.stores import Stores
from ftl.realtime.server import WsServer
from tests.helpers import await_for
from tests.persistence.support import make_instrument, make_trader
from tests.realtime.conftest import TEST_OPTIONS, recv, send


async def test_a_trade_through_the_api_reaches_a_subscribed_socket(
    api: httpx.AsyncClient, api_app: Starlette, stores: Stores
) -> None:
    tokens = api_app.state.tokens
    server = WsServer(
        stores.redis, stores.keys, tokens.verify_access, Health(), "127.0.0.1", 0, options=TEST_OPTIONS
    )
    await server.start()
    try:

        async def subscribed() -> bool:
            return server.feed.subscribed.is_set()

        await await_for(subscribed, 10, "the ws price feed")
        user, iid = await make_trader(stores), await make_instrument(stores, index=1000)
        from websockets.asyncio.client import connect

        async with connect(
            f"ws://127.0.0.1:{server.port}/ws",
            compression=None,
            additional_headers={"Authorization": f"Bearer {tokens.issue_access(user)}"},
        ) as ws:
            assert (await recv(ws))["type"] == "AUTH_OK"
            await send(ws, {"op": "subscribe", "ids": [iid]})
            snap = await recv(ws)
            while snap.get("type") != "PRICE_UPDATE":
                snap = await recv(ws)
            assert snap["id"] == iid and snap["price"] == 1000
            r = await api.post(
                "/api/positions/open",
                json={
                    "instrument_id": iid,
                    "side": "long",
                    "qty": 500,
                    "leverage": 1,
                    "acceptable_price": 2000,
                },
                headers={"Authorization": f"Bearer {tokens.issue_access(user)}", "Idempotency-Key": "e2e"},
            )
            assert r.status_code == 201, r.text
            update = await recv(ws)
            while update.get("type") != "PRICE_UPDATE" or update.get("snap"):
                update = await recv(ws)
            assert update["id"] == iid and update["price"] > 1000  # the long moved the mark up
            assert update["seq"] > snap["seq"]
    finally:
        await server.stop()
