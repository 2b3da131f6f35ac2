"""Write-behind queue: the hot path queues store operations and moves on; one task writes them in batches.

Operations are written in the order they were queued, up to ``max_batch`` per transaction. ``flush()`` waits
until everything queued before it is committed (reads that must see the latest state call it first).
A failing batch is retried once, then dropped with an error log that names the calls (never their text).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from assistant.store.repository import Op, Store, call_id_of

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Barrier:
    done: asyncio.Future[None]


class StoreWriter:
    """Queues ``Op`` s and writes them from one background task."""

    def __init__(
        self, store: Store, *, max_batch: int = 500, linger_ms: float = 0.0, retry_delay_s: float = 0.5
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        # Wait this long for company before writing a batch (never when a flush() is waiting): under load,
        # one transaction of many rows instead of many transactions of one row each.
        self.linger_s = max(0.0, linger_ms) / 1000.0
        self.retry_delay_s = retry_delay_s
        self._queue: asyncio.Queue[Op | _Barrier] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def close(self, *, timeout_s: float = 10.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def put(self, *ops: Op) -> None:
        for op in ops:
            self._queue.put_nowait(op)

    async def flush(self) -> None:
        if self._task is None or self._task.done():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Barrier(fut))
        await fut

    async def _run(self) -> None:
        while True:
            items = await self._collect()
            ops = [i for i in items if not isinstance(i, _Barrier)]
            await self._write(ops)
            for i in items:
                if isinstance(i, _Barrier) and not i.done.done():
                    i.done.set_result(None)

    async def _collect(self) -> list[Op | _Barrier]:
        items: list[Op | _Barrier] = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        flush_waiting = isinstance(items[0], _Barrier)
        while len(items) < self.max_batch:
            if not self._queue.empty():
                items.append(self._queue.get_nowait())
            else:
                remaining = deadline - loop.time()
                if remaining <= 0 or flush_waiting:
                    break
                try:
                    items.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            flush_waiting = flush_waiting or isinstance(items[-1], _Barrier)
        return items

    async def _write(self, ops: list[Op]) -> None:
        if not ops:
            return
        for attempt in (1, 2):
            try:
                await self.store.write(ops)
                self.written += len(ops)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if attempt == 1:
                    log.warning(
                        "store write failed; retrying", extra={"ops": len(ops), "error": type(e).__name__}
                    )
                    await asyncio.sleep(self.retry_delay_s)
                else:
                    calls = sorted({call_id_of(op) for op in ops})
                    log.error(
                        "store write failed twice; batch dropped",
                        extra={"ops": len(ops), "calls": calls[:20], "error": repr(e)[:300]},
                    )
                    self.dropped += len(ops)
