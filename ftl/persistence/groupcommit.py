"""Group commit: concurrent callers share one PostgreSQL transaction and one round trip.

An item that finds no batch in flight goes at once (no added latency when idle). Otherwise a
batch closes when it holds ``max_size`` items or ``max_wait_s`` after its first item, and while
``concurrency`` batches are in flight the next one keeps filling (the classic group commit: the
busier the database, the larger the batches). Each caller gets its own result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs ``run(items) -> results`` (same order and length) on batches of submitted items."""

    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_size: int = 64,
        max_wait_s: float = 0.001,
        concurrency: int = 4,
    ) -> None:
        if max_size < 1 or concurrency < 1 or max_wait_s < 0:
            raise ValueError("max_size and concurrency must be >= 1, max_wait_s >= 0")
        self._run = run
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.concurrency = concurrency
        self._items: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._items.append((item, fut))
        if len(self._items) >= self.max_size or self._running == 0:
            self._dispatch()  # full, or nothing in flight to wait behind: no added latency
        elif self._timer is None and self._running < self.concurrency:
            self._timer = asyncio.get_running_loop().call_later(self.max_wait_s, self._dispatch)
        return await fut

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._items and self._running < self.concurrency:
            batch, self._items = self._items[: self.max_size], self._items[self.max_size :]
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._one(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Items left wait for a batch to finish (they are dispatched then, at once).

    async def _one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} got {len(results)} results")
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        finally:
            self._running -= 1
            if self._items:
                self._dispatch()

    async def aclose(self) -> None:
        """Wait for the batches in flight."""
        if self._items:
            self._dispatch()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
