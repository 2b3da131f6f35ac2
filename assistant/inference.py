"""Cross-call micro-batching: utterances from many calls that arrive together are scored in one batch.

Callers ``await batcher.predict(utterance)``; one collector task takes the first waiting utterance, then keeps
taking more until ``max_batch`` are waiting or ``max_wait_ms`` have passed, and runs
``analyzer.predict(batch)`` in a dedicated worker thread, so model work never blocks the event loop. While a
batch runs, new utterances queue up and form the next batch, so batches grow with load by themselves.

Example:
    >>> import asyncio
    >>> from assistant.calls.fakes import KeywordAnalyzer
    >>> async def demo() -> list[str]:
    ...     b = MicroBatcher(KeywordAnalyzer(), max_batch=8, max_wait_ms=2)
    ...     await b.start()
    ...     try:
    ...         return (await b.predict(Utterance("you idiot"))).flagged
    ...     finally:
    ...         await b.stop()
    >>> asyncio.run(demo())
    ['insult']
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from assistant.errors import AssistantError
from assistant.types import RedFlagAnalyzer, RedFlagResult, Utterance

log = logging.getLogger(__name__)


class BatcherStopped(AssistantError):
    """predict() was called on a batcher that is not running; start it in the app lifespan."""


@dataclass(slots=True)
class _Job:
    utterance: Utterance
    future: asyncio.Future[RedFlagResult]


class MicroBatcher:
    """Scores utterances in batches of at most ``max_batch``, waiting at most ``max_wait_ms`` to fill one."""

    def __init__(
        self,
        analyzer: RedFlagAnalyzer,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.analyzer = analyzer
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redflag-batch")
        self._task = asyncio.create_task(self._run(self._queue, self._executor), name="micro-batcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(BatcherStopped("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def predict(self, utterance: Utterance) -> RedFlagResult:
        if self._queue is None or self._task is None:
            raise BatcherStopped("MicroBatcher.predict() before start(); start it in the app lifespan")
        fut: asyncio.Future[RedFlagResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(utterance, fut))
        return await fut

    async def _collect(self, queue: asyncio.Queue[_Job]) -> list[_Job]:
        batch = [await queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            remaining = deadline - time.perf_counter()
            if len(batch) >= self.max_batch or remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self, queue: asyncio.Queue[_Job], executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
            batch = [job for job in batch if not job.future.cancelled()]
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(
                    executor, self.analyzer.predict, [job.utterance for job in batch]
                )
                if len(results) != len(batch):
                    raise AssistantError(f"analyzer returned {len(results)} results for {len(batch)} inputs")
            except Exception as e:  # one bad batch must not stop the service
                log.exception("red-flag batch failed", extra={"batch_size": len(batch)})
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
            if self._on_batch is not None:
                self._on_batch(len(batch), time.perf_counter() - started)
