"""Write-behind queue: the hot path queues store operations and moves on; one task writes them in batches.

Operations are written in the order they were queued, up to ``max_batch`` per transaction. ``flush()`` waits
until everything queued before it is committed (reads that must see the latest state call it first);
``notify(callback)`` calls back once everything queued before it is committed (the ``stored`` watermark).

Failures are contained and loud:

* **A bad row** (a value no database column can hold: an integer beyond 64 bits, a NaN, a NUL or a lone
  surrogate in a string) is refused before it joins a batch, and logged with its call id. A batch that still
  fails with a data error is split in halves until the failing operation is alone: only it is dropped; the
  other calls' rows in the batch are written.
* **The database is unavailable** (SQLite's folder removed or its file replaced, a read-only or locked file,
  PostgreSQL down): nothing is dropped. The writer keeps the batch and everything queued behind it, retries
  every ``retry_s`` and reports ``healthy = False`` (``/healthz`` answers 503, the metric
  ``assistant_store_healthy`` is 0, an error log names the calls waiting). The queue is bounded by
  ``buffer_max`` operations; past that, new operations are dropped and counted (``dropped``), loudly. When the
  database is back the buffer is written in order and the writer is healthy again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc as sa_exc

from assistant.store.repository import Insert, Op, Store, Update, Upsert, call_id_of

log = logging.getLogger(__name__)

_INT64 = (-(2**63), 2**63 - 1)
_LOG_EVERY_S = 30.0  # while the store is down, repeat the error log this often (not on every retry)


@dataclass(slots=True)
class _Barrier:
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Marker:
    callback: Callable[[], None]


class StoreUnavailable(Exception):
    """The database cannot take writes now (not the data's fault): keep the batch and retry."""


@dataclass(slots=True)
class StoreHealth:
    """What ``/healthz`` and the metrics report about the writer."""

    healthy: bool = True
    failing_since: float | None = None  # Unix time of the first failure of the current outage
    last_error: str = ""
    written: int = 0
    dropped: int = 0  # operations lost: bad rows, or the buffer was full during an outage
    rejected: int = 0  # of those, bad rows refused or isolated
    failures: int = 0  # failed write attempts
    waiting_calls: list[str] = field(default_factory=list)  # calls with operations held by an outage

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "failing_since": self.failing_since,
            "last_error": self.last_error,
            "written": self.written,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "failures": self.failures,
            "waiting_calls": self.waiting_calls[:20],
        }


def op_call_id(op: Op) -> str:
    """The call an operation belongs to (for logs), or ``?``."""
    return call_id_of(op)


def _bad_value(value: Any, path: str, depth: int = 0) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if _INT64[0] <= value <= _INT64[1] else f"{path}: integer beyond 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a finite number"
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path}: NUL character in text"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path}: text that is not valid Unicode"
        return None
    if depth > 16:
        return f"{path}: nested too deeply"
    if isinstance(value, dict):
        for k, v in value.items():
            problem = _bad_value(str(k), f"{path}.<key>", depth + 1) or _bad_value(
                v, f"{path}.{k}", depth + 1
            )
            if problem:
                return problem
        return None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            problem = _bad_value(v, f"{path}[{i}]", depth + 1)
            if problem:
                return problem
        return None
    return None  # datetimes and other driver types: the driver knows them


def validate_op(op: Op) -> str | None:
    """Why ``op`` can never be written (a value no column can hold), or None."""
    parts: list[dict[str, Any]] = [{"key": op.key}, op.values] if isinstance(op, Update) else [op.values]
    for values in parts:
        for column, value in values.items():
            problem = _bad_value(value, f"{op.table.name}.{column}")
            if problem:
                return problem
    return None


def is_unavailable(error: BaseException) -> bool:
    """True when a write failed because of the database, not the data: keep the rows and retry."""
    if isinstance(error, StoreUnavailable | OSError | TimeoutError | ConnectionError):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError)


class StoreWriter:
    """Queues ``Op`` s and writes them from one background task."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 500,
        linger_ms: float = 0.0,
        retry_delay_s: float = 0.5,
        retry_s: float = 1.0,
        buffer_max: int = 200_000,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        # Wait this long for company before writing a batch (never when a flush() is waiting): under load,
        # one transaction of many rows instead of many transactions of one row each.
        self.linger_s = max(0.0, linger_ms) / 1000.0
        self.retry_delay_s = retry_delay_s  # before the one quick retry of a failed batch
        self.retry_s = retry_s  # between attempts while the database is unavailable
        self.buffer_max = buffer_max
        self._queue: asyncio.Queue[Op | _Barrier | _Marker] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._held: list[Op] = []  # the batch being written (kept through an outage)
        self.health = StoreHealth()
        self._last_error_log = 0.0
        self._last_drop_log = 0.0

    # Counters kept as attributes for callers that read them directly.
    @property
    def written(self) -> int:
        return self.health.written

    @property
    def dropped(self) -> int:
        return self.health.dropped

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._held)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def close(self, *, timeout_s: float = 10.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(timeout_s=None), timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self.backlog:
            calls = self._calls_waiting()
            log.error(
                "store writer closed with operations not written (database unavailable)",
                extra={"ops": self.backlog, "calls": calls[:20]},
            )

    def put(self, *ops: Op) -> None:
        for op in ops:
            problem = validate_op(op)
            if problem is not None:
                self._drop(op, f"bad row: {problem}", rejected=True)
                continue
            if self.backlog >= self.buffer_max:
                self._drop(
                    op, f"store buffer full ({self.buffer_max} operations; ASSISTANT_STORE_BUFFER_MAX)"
                )
                continue
            self._queue.put_nowait(op)

    def notify(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) once everything queued before now is written or dropped."""
        self._queue.put_nowait(_Marker(callback))

    async def flush(self, *, timeout_s: float | None = 5.0) -> None:
        """Wait until everything queued before it is written; while the database is unavailable, wait at most
        ``timeout_s`` (reads then see what is stored: they must not hang on an outage)."""
        if self._task is None or self._task.done():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Barrier(fut))
        if timeout_s is None:
            await fut
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)

    # ---- the writing task ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            items = await self._collect()
            self._held = [i for i in items if not isinstance(i, _Barrier | _Marker)]
            await self._write_until_done()
            self._held = []
            for i in items:
                if isinstance(i, _Barrier) and not i.done.done():
                    i.done.set_result(None)
                elif isinstance(i, _Marker):
                    try:
                        i.callback()
                    except Exception:  # a watermark callback must never stop the writer
                        log.exception("store notify callback failed")

    async def _collect(self) -> list[Op | _Barrier | _Marker]:
        items: list[Op | _Barrier | _Marker] = [await self._queue.get()]
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

    async def _write_until_done(self) -> None:
        """Write the held batch: isolate bad rows; through an outage, keep retrying (nothing is dropped)."""
        quick_retry = True
        while self._held:
            try:
                await self._attempt(self._held)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.health.failures += 1
                if is_unavailable(e):
                    self._unavailable(e)
                    await asyncio.sleep(self.retry_s)
                    continue
                if quick_retry:  # a data error may be a race (a parent row in flight): one retry, whole
                    quick_retry = False
                    log.warning(
                        "store write failed; retrying",
                        extra={"ops": len(self._held), "error": type(e).__name__},
                    )
                    await asyncio.sleep(self.retry_delay_s)
                    continue
                self._held = await self._isolate(self._held)
                continue
            self.health.written += len(self._held)
            self._held = []
            self._recovered()

    async def _attempt(self, ops: list[Op]) -> None:
        self._check_sqlite_file()
        await self.store.write(ops)

    async def _isolate(self, ops: list[Op]) -> list[Op]:
        """Write ``ops`` in halves until each failing operation is alone; drop those (data errors) and return
        what could not be written because the database went away meanwhile (to retry)."""
        if len(ops) == 1:
            try:
                await self._attempt(ops)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if is_unavailable(e):
                    self._unavailable(e)
                    return ops
                self._drop(ops[0], f"bad row: {type(e).__name__}: {str(e)[:200]}", rejected=True)
                return []
            self.health.written += 1
            return []
        mid = len(ops) // 2
        for i, half in enumerate((ops[:mid], ops[mid:])):
            try:
                await self._attempt(half)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if is_unavailable(e):
                    self._unavailable(e)
                    return half + (ops[mid:] if i == 0 else [])
                left = await self._isolate(half)
                if left:
                    return left + (ops[mid:] if i == 0 else [])
                continue
            self.health.written += len(half)
        return []

    def _check_sqlite_file(self) -> None:
        """A SQLite file that was removed or replaced under the open connection: writes would go to the
        deleted file and be lost without an error. Refuse them until the same file is back."""
        path = getattr(self.store, "sqlite_path", None)
        if path is None:
            return
        try:
            st = os.stat(path)
        except OSError as e:
            raise StoreUnavailable(f"the SQLite file {path} is gone ({e.strerror})") from e
        ident = (st.st_dev, st.st_ino)
        if self.store.sqlite_identity is None:
            self.store.sqlite_identity = ident
        elif ident != self.store.sqlite_identity:
            raise StoreUnavailable(f"the SQLite file {path} was replaced by another file")

    # ---- reporting -------------------------------------------------------------------------------------
    def _calls_waiting(self) -> list[str]:
        seen: dict[str, None] = {}
        for op in self._held:
            seen.setdefault(op_call_id(op), None)
        for item in list(self._queue._queue)[:5000]:  # type: ignore[attr-defined]
            if not isinstance(item, _Barrier | _Marker):
                seen.setdefault(op_call_id(item), None)
        return list(seen)

    def _unavailable(self, error: BaseException) -> None:
        h = self.health
        now = time.time()
        first = h.healthy
        h.healthy = False
        h.failing_since = h.failing_since or now
        h.last_error = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        h.waiting_calls = self._calls_waiting()
        reset = getattr(self.store, "reset_connections", None)
        if reset is not None:
            reset()
        if first or now - self._last_error_log >= _LOG_EVERY_S:
            self._last_error_log = now
            log.error(
                "store unavailable; writes held in memory and retried",
                extra={
                    "error": h.last_error,
                    "ops_waiting": self.backlog,
                    "calls": h.waiting_calls[:20],
                    "since": h.failing_since,
                },
            )

    def _recovered(self) -> None:
        h = self.health
        if h.healthy:
            return
        log.warning(
            "store available again; held writes are being written",
            extra={
                "down_s": round(time.time() - (h.failing_since or time.time()), 1),
                "ops_waiting": self.backlog,
            },
        )
        h.healthy, h.failing_since, h.waiting_calls = True, None, []

    def _drop(self, op: Op, why: str, *, rejected: bool = False) -> None:
        self.health.dropped += 1
        if rejected:
            self.health.rejected += 1
            log.error(
                "store row refused", extra={"call_id": op_call_id(op), "table": op.table.name, "why": why}
            )
            return
        now = time.time()
        if now - self._last_drop_log >= 1.0:  # a full buffer drops many ops; one line a second is enough
            self._last_drop_log = now
            log.error(
                "store operation dropped",
                extra={
                    "call_id": op_call_id(op),
                    "table": op.table,
                    "why": why,
                    "dropped": self.health.dropped,
                },
            )


__all__ = [
    "Insert",
    "StoreHealth",
    "StoreUnavailable",
    "StoreWriter",
    "Update",
    "Upsert",
    "is_unavailable",
    "op_call_id",
    "validate_op",
]
