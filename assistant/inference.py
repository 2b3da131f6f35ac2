"""Cross-call micro-batching: utterances from many calls that arrive together are scored in one batch.

Callers ``await batcher.predict(utterance)``. Each batcher owns one worker thread that takes the first waiting
item, then keeps taking more until ``max_batch`` are waiting or ``max_wait_ms`` have passed, runs
``analyzer.predict(batch)`` and hands the results back to the event loop in one callback. While a batch runs,
new items queue up and form the next batch, so batches grow with load by themselves. The bounded wait
applies only under load (the previous batch held more than one item), so a lone call pays none.

Why the batch forms in the worker thread, not in an event-loop task: at 500 calls the loop is busy with a
thousand sockets, and a loop-side collector made every batch wait for the loop twice (to collect, then to
dispatch) while the model thread sat idle; stage timings showed chunks waiting ~150 ms for a ~40 ms batch.

Example:
    >>> import asyncio
    >>> from assistant.testing import KeywordAnalyzer
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
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from assistant.errors import AssistantError
from assistant.types import Utterance  # noqa: F401  (the doctest above uses it)

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)


class BatcherStopped(AssistantError):
    """predict() was called on a batcher that is not running; start it in the app lifespan."""


class BatchPredictor(Protocol[In, Out]):
    """Anything scored a batch at a time: the red-flag classifier, or an advisor's ``query_encoder()``."""

    def predict(self, items: list[In], /) -> list[Out]: ...


@dataclass(slots=True)
class _Job(Generic[In, Out]):
    utterance: In
    future: asyncio.Future[Out]
    queued: float = 0.0  # perf_counter() when predict() queued it


@dataclass(frozen=True, slots=True)
class BatchStats:
    """One batch as the metrics see it: its size, the model pass, and how long its oldest item waited."""

    size: int
    seconds: float
    waited_s: float


_STOP = None  # the sentinel that ends a worker thread


class MicroBatcher(Generic[In, Out]):
    """Scores items in batches of at most ``max_batch``, waiting at most ``max_wait_ms`` to fill one.

    Generic over what it scores: ``MicroBatcher(classifier)`` takes ``Utterance`` and gives ``RedFlagResult``;
    ``MicroBatcher(advisor.query_encoder())`` takes texts and gives query vectors. Each batcher owns one worker
    thread, so two batchers (classifier and query encoder) run their model passes side by side.
    """

    def __init__(
        self,
        analyzer: BatchPredictor[In, Out],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        name: str = "redflag-batch",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.analyzer = analyzer
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self._on_batch = on_batch
        self._name = name
        self._jobs: queue.SimpleQueue[_Job[In, Out] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._work,
            args=(self._jobs, asyncio.get_running_loop()),
            name=f"{self._name}_0",
            daemon=True,
        )
        self._thread.start()

    async def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(_STOP)
        # The batch in flight finishes (a model pass cannot be interrupted); wait for it off the loop.
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 30.0)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP and not job.future.done():
                job.future.set_exception(BatcherStopped("the service is shutting down"))

    async def predict(self, utterance: In) -> Out:
        if self._thread is None:
            raise BatcherStopped("MicroBatcher.predict() before start(); start it in the app lifespan")
        fut: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Job(utterance, fut, time.perf_counter()))
        return await fut

    # ---- the worker thread ----------------------------------------------------------------------------
    def _collect(
        self, jobs: queue.SimpleQueue[_Job[In, Out] | None], last_size: int
    ) -> list[_Job[In, Out]] | None:
        """The next batch (blocking for its first item), or None once stop() was called."""
        first = jobs.get()
        if first is _STOP:
            return None
        batch = [first]
        # Wait for company only under load (the last batch had more than one item): a lone call would pay
        # the whole wait for nothing, and under load the queue fills while a batch runs anyway.
        deadline = time.perf_counter() + (self.max_wait_s if last_size > 1 else 0.0)
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                job = jobs.get(timeout=remaining) if remaining > 0 else jobs.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                jobs.put(_STOP)  # stop after this batch
                break
            batch.append(job)
        return batch

    def _work(self, jobs: queue.SimpleQueue[_Job[In, Out] | None], loop: asyncio.AbstractEventLoop) -> None:
        last_size = 0
        while True:
            batch = self._collect(jobs, last_size)
            if batch is None:
                return
            batch = [job for job in batch if not job.future.cancelled()]
            last_size = len(batch)
            if not batch:
                continue
            started = time.perf_counter()
            outcome: list[Out] | BaseException
            try:
                outcome = self.analyzer.predict([job.utterance for job in batch])
                if len(outcome) != len(batch):
                    raise AssistantError(f"analyzer returned {len(outcome)} results for {len(batch)} inputs")
            except Exception as e:  # one bad batch must not stop the service
                log.exception("batch failed", extra={"batcher": self._name, "batch_size": len(batch)})
                outcome = e
            try:
                stats = BatchStats(len(batch), time.perf_counter() - started, started - batch[0].queued)
                loop.call_soon_threadsafe(self._deliver, batch, outcome, stats)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _deliver(
        self, batch: list[_Job[In, Out]], outcome: list[Out] | BaseException, stats: BatchStats
    ) -> None:
        """On the event loop: resolve the batch's futures (one callback per batch, not per item)."""
        for i, job in enumerate(batch):
            if job.future.done():
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome[i])
        if self._on_batch is not None and not isinstance(outcome, BaseException):
            self._on_batch(stats)
