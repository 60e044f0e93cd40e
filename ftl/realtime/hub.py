"""Fan-out: subscribers indexed by instrument, one frame per update, conflation for slow sockets."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ftl.realtime import metrics
from ftl.realtime.protocol import MAX_SUBSCRIPTIONS, Close, Invalid, Update


class Client:
    """What the hub knows of one socket: how to write to it and what it waits for."""

    __slots__ = (
        "__weakref__",
        "awaiting",
        "buffer_size",
        "closed",
        "kill",
        "paused",
        "paused_at",
        "pending",
        "subs",
        "write",
    )

    def __init__(
        self,
        write: Callable[[bytes], object],
        buffer_size: Callable[[], int],
        kill: Callable[[Close, str], None],
    ) -> None:
        self.write = write
        self.buffer_size = buffer_size
        self.kill = kill
        self.subs: set[int] = set()
        self.awaiting: set[int] = set()  # subscribed ids whose snapshot is still due
        self.pending: dict[int, bytes] = {}  # latest frame per instrument while paused
        self.paused = False
        self.paused_at = 0.0
        self.closed = False


class Hub:
    """Per-process fan-out; every method runs on the event loop thread and never blocks."""

    def __init__(self, *, slow_after_s: float = 5.0, max_buffer: int = 256 * 1024) -> None:
        self.slow_after_s = slow_after_s
        self.max_buffer = max_buffer
        self.index: dict[int, set[Client]] = {}
        self.clients: set[Client] = set()
        self.paused: set[Client] = set()
        self.subscriptions = 0
        self.last_fanout = (0, 0.0)  # (sockets written, seconds) of the latest update

    # --- membership -----------------------------------------------------------------------

    def add(self, client: Client) -> None:
        self.clients.add(client)

    def remove(self, client: Client) -> None:
        client.closed = True
        self.clients.discard(client)
        self.paused.discard(client)
        self._drop(client, tuple(client.subs))
        client.pending.clear()

    def subscribe(self, client: Client, ids: Iterable[int]) -> tuple[int, ...] | Invalid:
        """Add ``ids``; return the ones that are new (their snapshot is due), or refuse all."""
        new = tuple(i for i in ids if i not in client.subs)
        if len(client.subs) + len(new) > MAX_SUBSCRIPTIONS:
            return Invalid("too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS} instruments per socket")
        for iid in new:
            client.subs.add(iid)
            client.awaiting.add(iid)
            subscribers = self.index.get(iid)
            if subscribers is None:
                subscribers = self.index[iid] = set()
            subscribers.add(client)
        self.subscriptions += len(new)
        metrics.SUBSCRIPTIONS.set(self.subscriptions)
        return new

    def unsubscribe(self, client: Client, ids: Iterable[int]) -> None:
        self._drop(client, tuple(i for i in ids if i in client.subs))

    def _drop(self, client: Client, ids: tuple[int, ...]) -> None:
        for iid in ids:
            client.subs.discard(iid)
            client.awaiting.discard(iid)
            client.pending.pop(iid, None)
            subscribers = self.index.get(iid)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self.index[iid]
        self.subscriptions -= len(ids)
        metrics.SUBSCRIPTIONS.set(self.subscriptions)

    # --- delivery -------------------------------------------------------------------------

    def publish(self, update: Update) -> int:
        """Write ``update.frame`` to every subscriber of its instrument; return how many got it."""
        subscribers = self.index.get(update.instrument_id)
        if not subscribers:
            return 0
        iid, data = update.instrument_id, update.frame
        sent = held = 0
        start = time.perf_counter()
        for c in tuple(subscribers):  # a copy: a write may end in a close that edits the set
            if c.awaiting:
                c.awaiting.discard(iid)  # this update is at least as new as the snapshot due
            if c.paused:
                c.pending[iid] = data
                held += 1
            else:
                c.write(data)
                sent += 1
        if sent:
            metrics.DELIVERIES.inc(sent)
            self.last_fanout = (sent, time.perf_counter() - start)
        if held:
            metrics.CONFLATED.inc(held)
        return sent

    def snapshot(self, client: Client, iid: int, data: bytes) -> bool:
        """Send a snapshot frame unless an update for ``iid`` reached the client since it was due."""
        if client.closed or iid not in client.awaiting:
            return False
        client.awaiting.discard(iid)
        if client.paused:
            client.pending[iid] = data
        else:
            client.write(data)
        metrics.SNAPSHOTS.inc()
        return True

    def control(self, client: Client, data: bytes) -> None:
        """Write a reply (PONG, ERROR, AUTH_OK); close a client whose buffer is hopelessly full."""
        if client.closed:
            return
        client.write(data)
        if client.paused and client.buffer_size() > self.max_buffer:
            self._slow(client)

    # --- flow control ---------------------------------------------------------------------

    def pause(self, client: Client) -> None:
        if not client.paused:
            client.paused = True
            client.paused_at = time.monotonic()
            self.paused.add(client)

    def resume(self, client: Client) -> None:
        if not client.paused:
            return
        client.paused = False
        self.paused.discard(client)
        pending = client.pending
        while pending and not client.paused and not client.closed:
            iid = next(iter(pending))
            client.write(pending.pop(iid))
            metrics.DELIVERIES.inc()

    def sweep(self, now: float) -> int:
        """Close every client paused for longer than ``slow_after_s``; return how many."""
        late = [c for c in self.paused if now - c.paused_at > self.slow_after_s]
        for c in late:
            self._slow(c)
        return len(late)

    def _slow(self, client: Client) -> None:
        self.paused.discard(client)
        metrics.SLOW_CLOSES.inc()
        client.kill(Close.SLOW_CONSUMER, "slow consumer")

    def resnapshot_all(self) -> list[tuple[Client, tuple[int, ...]]]:
        """After a Redis reconnect: every subscription is due a fresh snapshot."""
        due: list[tuple[Client, tuple[int, ...]]] = []
        for c in self.clients:
            if c.subs and not c.closed:
                c.awaiting.update(c.subs)
                due.append((c, tuple(c.subs)))
        return due
