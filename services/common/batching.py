"""Grouping concurrent requests into one call: GPU batches, and group commits of writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Groups concurrent submissions into one call of ``run`` (a list in, results out).

    A batch takes everything already waiting, then waits up to ``window_s`` for more (0: no
    waiting at all — requests that queued while the previous call ran still go together,
    which is a group commit without added latency).
    """

    def __init__(
        self, run: Callable[[Sequence[T]], Sequence[R]], window_s: float, max_batch: int = 32
    ) -> None:
        self._run_batch = run
        self._window = window_s
        self._max = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches: list[int] = []  # sizes of recent batches (observability, tests)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            deadline = loop.time() + self._window
            while len(batch) < self._max:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            self.batches = [*self.batches[-99:], len(batch)]
            try:
                results = await run_in_threadpool(self._run_batch, [item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
