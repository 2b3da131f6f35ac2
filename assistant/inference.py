"""Cross-call micro-batching: utterances from many calls that arrive together are scored in one batch.

Callers ``await batcher.predict(utterance)``; one collector task takes the first waiting utterance, then keeps
taking more until ``max_batch`` are waiting or ``max_wait_ms`` have passed, and runs
``analyzer.predict(batch)`` in a dedicated worker thread, so model work never blocks the event loop. While a
batch runs, new utterances queue up and form the next batch, so batches grow with load by themselves. The
bounded wait applies only under load (the previous batch held more than one item), so a lone call pays none.

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
from typing import Any, Generic, Protocol, TypeVar

from assistant.errors import AssistantError
from assistant.types import Utterance  # noqa: F401  (the doctest above uses it)

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)


class BatcherStopped(AssistantError):
    """predict() was called on a batcher that is not running; start it in the app lifespan."""


class BatchPredictor(Protocol[In, Out]):
    """Anything scored a batch at a time: the red-flag classifier, or a query encoder (``QueryEncoder``)."""

    def predict(self, items: list[In], /) -> list[Out]: ...


@dataclass(slots=True)
class _Job(Generic[In, Out]):
    utterance: In
    future: asyncio.Future[Out]


class MicroBatcher(Generic[In, Out]):
    """Scores items in batches of at most ``max_batch``, waiting at most ``max_wait_ms`` to fill one.

    Generic over what it scores: ``MicroBatcher(classifier)`` takes ``Utterance`` and gives ``RedFlagResult``;
    ``MicroBatcher(QueryEncoder(advisor))`` takes texts and gives query vectors. Each batcher owns one worker
    thread, so two batchers (classifier and query encoder) run their model passes side by side.
    """

    def __init__(
        self,
        analyzer: BatchPredictor[In, Out],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
        name: str = "redflag-batch",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.analyzer = analyzer
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self._on_batch = on_batch
        self._name = name
        self._last_size = 0
        self._queue: asyncio.Queue[_Job[In, Out]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        self._task = asyncio.create_task(
            self._run(self._queue, self._executor), name=f"micro-batcher-{self._name}"
        )

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

    async def predict(self, utterance: In) -> Out:
        if self._queue is None or self._task is None:
            raise BatcherStopped("MicroBatcher.predict() before start(); start it in the app lifespan")
        fut: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(utterance, fut))
        return await fut

    async def _collect(self, queue: asyncio.Queue[_Job[In, Out]]) -> list[_Job[In, Out]]:
        batch = [await queue.get()]
        # Wait for company only under load (the last batch had more than one item): a lone call would pay
        # the whole wait for nothing, and under load the queue fills while a batch runs anyway.
        wait_s = self.max_wait_s if self._last_size > 1 else 0.0
        deadline = time.perf_counter() + wait_s
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

    async def _run(self, queue: asyncio.Queue[_Job[In, Out]], executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
            batch = [job for job in batch if not job.future.cancelled()]
            self._last_size = len(batch)
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
                log.exception("batch failed", extra={"batcher": self._name, "batch_size": len(batch)})
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
            if self._on_batch is not None:
                self._on_batch(len(batch), time.perf_counter() - started)


class QueryEncoder:
    """Adapts an advisor with ``encode_queries(texts)`` to ``BatchPredictor[str, vector]`` for a MicroBatcher.

    The advisor's per-chunk query embedding is a second encoder pass; batching it across calls is what lets
    one CPU keep up with hundreds of calls (see docs/protocol.md, "Storage and scale").
    """

    def __init__(self, advisor: Any) -> None:
        if not callable(getattr(advisor, "encode_queries", None)):
            raise TypeError(f"{type(advisor).__name__} has no encode_queries(texts); it cannot be batched")
        self._advisor = advisor

    def predict(self, items: list[str], /) -> list[Any]:
        return list(self._advisor.encode_queries(items))
