"""The fan-out hub with in-memory clients: indexing, conflation, snapshots, slow clients."""

from __future__ import annotations

from ftl.realtime.hub import Client, Hub
from ftl.realtime.protocol import MAX_SUBSCRIPTIONS, Close, Invalid, Update


class Fake:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed_with: list[Close] = []
        self.buffered = 0
        self.client = Client(
            self.out.append, lambda: self.buffered, lambda code, _: self.closed_with.append(code)
        )


def upd(iid: int, seq: int) -> Update:
    return Update(iid, seq, 0, f"{iid}:{seq}".encode())


def test_updates_reach_only_subscribers() -> None:
    hub = Hub()
    a, b = Fake(), Fake()
    for f in (a, b):
        hub.add(f.client)
    assert hub.subscribe(a.client, [1, 2]) == (1, 2)
    assert hub.subscribe(b.client, [2]) == (2,)
    assert hub.publish(upd(1, 1)) == 1
    assert hub.publish(upd(2, 1)) == 2
    assert hub.publish(upd(3, 1)) == 0
    assert a.out == [b"1:1", b"2:1"]
    assert b.out == [b"2:1"]
    hub.unsubscribe(a.client, [2])
    hub.publish(upd(2, 2))
    assert a.out == [b"1:1", b"2:1"]
    hub.remove(b.client)
    assert 2 not in hub.index
    assert hub.subscriptions == 1


def test_subscription_cap_refuses_all() -> None:
    hub = Hub()
    a = Fake()
    hub.add(a.client)
    hub.subscribe(a.client, range(1, MAX_SUBSCRIPTIONS))
    result = hub.subscribe(a.client, [10_000, 10_001])
    assert isinstance(result, Invalid)
    assert result.code == "too_many_subscriptions"
    assert 10_000 not in a.client.subs


def test_paused_client_gets_latest_per_instrument_on_resume() -> None:
    hub = Hub()
    a, b = Fake(), Fake()
    for f in (a, b):
        hub.add(f.client)
        hub.subscribe(f.client, [1, 2])
    hub.pause(a.client)
    for seq in range(1, 50):
        hub.publish(upd(1, seq))
    hub.publish(upd(2, 1))
    assert a.out == []
    assert len(b.out) == 50  # the other client is not held back
    hub.resume(a.client)
    assert a.out == [b"1:49", b"2:1"]


def test_snapshot_dropped_once_an_update_arrived() -> None:
    hub = Hub()
    a = Fake()
    hub.add(a.client)
    hub.subscribe(a.client, [1, 2])
    hub.publish(upd(1, 5))
    assert not hub.snapshot(a.client, 1, b"snap1")
    assert hub.snapshot(a.client, 2, b"snap2")
    assert not hub.snapshot(a.client, 2, b"snap2-again")
    assert a.out == [b"1:5", b"snap2"]


def test_client_paused_too_long_is_closed_as_slow() -> None:
    hub = Hub(slow_after_s=5.0)
    a, b = Fake(), Fake()
    hub.add(a.client)
    hub.add(b.client)
    hub.pause(a.client)
    assert hub.sweep(a.client.paused_at + 1.0) == 0
    assert hub.sweep(a.client.paused_at + 6.0) == 1
    assert a.closed_with == [Close.SLOW_CONSUMER]
    assert b.closed_with == []


def test_control_reply_to_a_full_buffer_closes() -> None:
    hub = Hub(max_buffer=1000)
    a = Fake()
    hub.add(a.client)
    hub.pause(a.client)
    a.buffered = 2000
    hub.control(a.client, b"PONG")
    assert a.closed_with == [Close.SLOW_CONSUMER]


def test_resnapshot_all_marks_every_subscription_due() -> None:
    hub = Hub()
    a = Fake()
    hub.add(a.client)
    hub.subscribe(a.client, [1, 2])
    hub.publish(upd(1, 1))
    hub.publish(upd(2, 1))
    assert a.client.awaiting == set()
    due = hub.resnapshot_all()
    assert due == [(a.client, (1, 2))] or due == [(a.client, (2, 1))]
    assert a.client.awaiting == {1, 2}
