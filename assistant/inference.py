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
from typing import Any, Generic, Protocol, TypeVar

from assistant.errors import AssistantError
from assistant.types import Utterance  # noqa: F401  (the doctest above uses it)

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)


class BatcherStopped(AssistantError):
    """predict() was called on a batcher that is not running; start it in the app lifespan."""


class Shed(AssistantError):
    """The item was not scored: its batcher was full, or its deadline passed while it queued (overload)."""


class BatchPredictor(Protocol[In, Out]):
    """Anything scored a batch at a time: the red-flag classifier, or an advisor's ``query_encoder()``."""

    def predict(self, items: list[In], /) -> list[Out]: ...


@dataclass(slots=True)
class _Job(Generic[In, Out]):
    utterance: In
    future: asyncio.Future[Out]
    queued: float = 0.0  # perf_counter() when predict() queued it
    deadline: float | None = None  # perf_counter() after which the result is useless: shed, not scored


@dataclass(frozen=True, slots=True)
class BatchStats:
    """One batch as the metrics see it: its size, the model pass, and how long its oldest item waited."""

    size: int
    seconds: float
    waited_s: float
    cpu_s: float = 0.0  # the model thread's CPU time for the pass (less than seconds when it had to wait)


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
        max_queued: int | None = None,
        yield_to: MicroBatcher[Any, Any] | None = None,
        yield_backlog: int | None = None,
        workers: int = 1,
        helper_backlog: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if helper_backlog is not None and helper_backlog < 1:
            raise ValueError(f"helper_backlog must be >= 1 or None, got {helper_backlog}")
        if max_queued is not None and max_queued < 1:
            raise ValueError(f"max_queued must be >= 1 or None, got {max_queued}")
        self.analyzer = analyzer
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.max_queued = max_queued
        # Priority: while the batcher we yield to holds a full batch or more, this one runs no pass (the red
        # flags' classifier goes first; on 2 cores the two model threads would otherwise split the CPU).
        self._yield_to = yield_to
        if yield_backlog is not None and yield_backlog < 1:
            raise ValueError(f"yield_backlog must be >= 1 or None, got {yield_backlog}")
        self._yield_backlog = yield_backlog  # None: a full batch of the batcher yielded to
        self._on_batch = on_batch
        self._name = name
        self._jobs: queue.SimpleQueue[_Job[In, Out] | None] = queue.SimpleQueue()
        # Several workers take batches from the one queue side by side (each pass on one core): the red flags'
        # classifier can then use both cores of a 2-core machine while the query encoder yields to it. Workers
        # after the first only help while a full batch waits behind the pass in flight: splitting a light load
        # into smaller batches would cost more CPU per item (fp32 on AVX2: ~20 ms per utterance alone, ~6 in 32).
        self.workers = workers
        # How many items must wait behind the pass in flight before a worker after the first starts a pass of its
        # own (None: a full batch). Lower puts the second core on red flags sooner when a burst queues them.
        self.helper_backlog = max_batch if helper_backlog is None else helper_backlog
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._queued = 0  # items waiting or in the pass (event-loop thread reads; worker decrements)
        self._queued_lock = threading.Lock()
        # Wall seconds per item of the recent passes (a moving average; None before the first pass). Items with a
        # deadline are admitted, batched and kept only while this says they can still make it: a pass of 64
        # queries takes half a second on AVX2, so checking deadlines only when a pass begins let most of an
        # overloaded encoder's work finish too late to be used (docs/benchmarks.md, session 11).
        self._item_s: float | None = None

    @property
    def backlog(self) -> int:
        """Items queued or in the model pass now."""
        return self._queued

    async def start(self) -> None:
        if self._threads:
            return
        self._jobs = queue.SimpleQueue()
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._threads = [
            threading.Thread(
                target=self._work, args=(self._jobs, loop, i > 0), name=f"{self._name}_{i}", daemon=True
            )
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        threads, self._threads = self._threads, []
        if not threads:
            return
        self._stopping = True
        for _ in threads:
            self._jobs.put(_STOP)  # one each; a worker that meets it mid-batch puts it back
        # The batches in flight finish (a model pass cannot be interrupted); wait for them off the loop.
        loop = asyncio.get_running_loop()
        for thread in threads:
            await loop.run_in_executor(None, thread.join, 30.0)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP and not job.future.done():
                job.future.set_exception(BatcherStopped("the service is shutting down"))
        self._queued = 0

    @property
    def running(self) -> bool:
        """Whether the model threads are up (readiness)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    async def predict(self, utterance: In, *, deadline: float | None = None) -> Out:
        """The item's result; raises ``Shed`` when the batcher is full (``max_queued``) or when ``deadline``
        (a ``time.perf_counter()`` value) passes before its model pass begins."""
        if not self._threads:
            raise BatcherStopped("MicroBatcher.predict() before start(); start it in the app lifespan")
        if self.max_queued is not None and self._queued >= self.max_queued:
            raise Shed(f"{self._name}: {self._queued} items queued (the limit)")
        if deadline is not None and not self.can_meet(deadline):
            raise Shed(f"{self._name}: the {self._queued} items queued would take it past its deadline")
        fut: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        with self._queued_lock:
            self._queued += 1
        self._jobs.put(_Job(utterance, fut, time.perf_counter(), deadline))
        return await fut

    def can_meet(self, deadline: float) -> bool:
        """Whether an item queued now would be scored by ``deadline`` (a ``time.perf_counter()`` value), by the
        recent cost per item; True while there is no estimate yet."""
        cost = self._item_s
        if cost is None:
            return True
        return time.perf_counter() + (self._queued + 1) * cost / self.workers <= deadline

    def _fit(
        self, jobs: list[_Job[In, Out]], now: float
    ) -> tuple[list[_Job[In, Out]], list[_Job[In, Out]], list[_Job[In, Out]]]:
        """Split a batch into (this pass, hopeless, back to the queue) by the items' deadlines.

        Hopeless: not even a pass of one would end by the deadline. This pass: the longest prefix whose pass
        (items x cost per item) ends by every deadline in it; the rest waits for the next pass.
        """
        cost = self._item_s
        if cost is None or all(j.deadline is None for j in jobs):
            return jobs, [], []
        hopeless = [j for j in jobs if j.deadline is not None and j.deadline < now + cost]
        viable = [j for j in jobs if j.deadline is None or j.deadline >= now + cost]
        # A prefix of n fits while its earliest deadline is after now + n x cost: once it fails, longer ones do too.
        n, earliest = 0, float("inf")
        for j in viable:
            if j.deadline is not None:
                earliest = min(earliest, j.deadline)
            if earliest < now + (n + 1) * cost:
                break
            n += 1
        return viable[:n], hopeless, viable[n:]

    # ---- the worker thread ----------------------------------------------------------------------------
    def _collect(
        self, jobs: queue.SimpleQueue[_Job[In, Out] | None], last_size: int, *, helper: bool = False
    ) -> list[_Job[In, Out]] | None:
        """The next batch (blocking for its first item), or None once stop() was called.

        A helper worker waits until ``helper_backlog`` items are queued, then takes what is there (up to a batch)
        without waiting more.
        """
        if helper:
            while jobs.qsize() < self.helper_backlog:
                if self._stopping:
                    return None
                time.sleep(0.005)
            try:
                first = jobs.get_nowait()
            except queue.Empty:  # another worker took them
                return []
        else:
            first = jobs.get()
        if first is _STOP:
            return None
        batch = [first]
        # Wait for company only under load (the last batch had more than one item): a lone call would pay
        # the whole wait for nothing, and under load the queue fills while a batch runs anyway.
        deadline = time.perf_counter() + (self.max_wait_s if last_size > 1 and not helper else 0.0)
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

    def _done(self, n: int) -> None:
        with self._queued_lock:
            self._queued = max(0, self._queued - n)

    def _wait_for_priority(self) -> None:
        """Hold this worker while the batcher it yields to has ``yield_backlog`` items or more waiting (default:
        a full batch), at most 1 s."""
        high = self._yield_to
        if high is None:
            return
        limit = self._yield_backlog if self._yield_backlog is not None else high.max_batch
        waited = 0.0
        while high.backlog >= limit and waited < 1.0:
            time.sleep(0.002)
            waited += 0.002

    def _work(
        self,
        jobs: queue.SimpleQueue[_Job[In, Out] | None],
        loop: asyncio.AbstractEventLoop,
        helper: bool = False,
    ) -> None:
        name_native_thread(threading.current_thread().name)
        last_size = 0
        while True:
            batch = self._collect(jobs, last_size, helper=helper)
            if batch is None:
                return
            if not batch:
                continue
            self._wait_for_priority()
            now = time.perf_counter()
            live = [
                j for j in batch if not j.future.cancelled() and (j.deadline is None or j.deadline >= now)
            ]
            late = [
                j for j in batch if not j.future.cancelled() and j.deadline is not None and j.deadline < now
            ]
            self._done(len(batch) - len(live))
            if late:
                try:
                    loop.call_soon_threadsafe(self._shed, late)
                except RuntimeError:
                    return
            batch, hopeless, rest = self._fit(live, now)
            for job in rest:
                jobs.put(job)  # still counted in the backlog; the next pass takes it
            if hopeless:
                self._done(len(hopeless))
                try:
                    loop.call_soon_threadsafe(self._shed, hopeless)
                except RuntimeError:
                    return
            last_size = len(batch)
            if not batch:
                continue
            started = time.perf_counter()
            cpu_started = time.thread_time()
            outcome: list[Out] | BaseException
            try:
                outcome = self.analyzer.predict([job.utterance for job in batch])
                if len(outcome) != len(batch):
                    raise AssistantError(f"analyzer returned {len(outcome)} results for {len(batch)} inputs")
            except Exception as e:  # one bad batch must not stop the service
                log.exception("batch failed", extra={"batcher": self._name, "batch_size": len(batch)})
                outcome = e
            self._done(len(batch))
            per_item = (time.perf_counter() - started) / len(batch)
            self._item_s = per_item if self._item_s is None else 0.8 * self._item_s + 0.2 * per_item
            try:
                stats = BatchStats(
                    len(batch),
                    time.perf_counter() - started,
                    started - batch[0].queued,
                    time.thread_time() - cpu_started,
                )
                loop.call_soon_threadsafe(self._deliver, batch, outcome, stats)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _shed(self, jobs: list[_Job[In, Out]]) -> None:
        """On the event loop: fail the jobs whose deadline passed before their pass with ``Shed``."""
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(Shed(f"{self._name}: the item could not be scored by its deadline"))

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


def name_native_thread(name: str) -> None:
    """Give the calling thread ``name`` in the OS too (Linux: ``/proc/PID/task/TID/comm``, ``top -H``).

    Why: Python's thread names stay inside Python, so per-thread CPU (how the README's "where the CPU goes"
    figures are measured) could not tell the model threads apart. At most 15 bytes are kept.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: the name is cosmetic
        pass
