"""Outgoing alert webhook: a JSON POST per alert, with retries, backoff and a timeout, never blocking a call.

``AlertWebhook.send`` only queues the alert; a background task posts it to ``ASSISTANT_ALERT_WEBHOOK_URL``,
retrying on network errors and 5xx/429 answers with exponential backoff (0.5 s, 1 s, 2 s, ...). When the queue
is full (the receiver is down for long), new alerts are dropped with a warning rather than slowing calls.

Example:
    >>> hook = AlertWebhook("https://hooks.example.com/alerts", timeout_s=5, retries=3)  # cheap
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)


class AlertWebhook:
    """Posts alerts as JSON to one URL from a background task."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        queue_size: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._transport = transport
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0
        self.failed = 0

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport)
        self._task = asyncio.create_task(self._run(), name="alert-webhook")

    async def close(self, *, drain_s: float = 2.0) -> None:
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def send(self, alert: dict[str, Any]) -> None:
        """Queue an alert for delivery; returns at once."""
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.failed += 1
            log.warning("alert webhook queue full; alert dropped", extra={"alert_id": alert.get("id")})

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: dict[str, Any]) -> None:
        if self._client is None:
            return
        for attempt in range(self.retries + 1):
            try:
                resp = await self._client.post(self.url, json=alert)
                if resp.status_code < 400:
                    self.delivered += 1
                    return
                if resp.status_code not in (408, 429) and resp.status_code < 500:
                    log.warning(
                        "alert webhook refused the alert; not retrying",
                        extra={"alert_id": alert.get("id"), "status": resp.status_code},
                    )
                    self.failed += 1
                    return
                problem = f"HTTP {resp.status_code}"
            except httpx.HTTPError as e:
                problem = type(e).__name__
            if attempt < self.retries:
                await asyncio.sleep(self.backoff_s * 2**attempt)
            else:
                log.warning(
                    "alert webhook failed after retries",
                    extra={"alert_id": alert.get("id"), "attempts": attempt + 1, "problem": problem},
                )
        self.failed += 1
