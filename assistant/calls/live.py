"""A live call's runtime state, and the one way its events reach the bus (with their ``eid``).

``LiveCall`` holds what a call needs while it runs in this process: the pure session state machine, the
queue of chunks waiting for analysis, the worker task and the source connection. ``CallEvents`` stamps each
call event with the call's next ``eid`` and publishes it on the call's topic, so every part (pipeline, alerts,
lifecycle) numbers events the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from assistant.calls.metrics import ServiceMetrics
from assistant.calls.session import CallSession, ChunkData
from assistant.events.bus import EventBus, call_topic
from assistant.events.messages import CallEvent, CloseCode, encode


@dataclass(slots=True)
class Outcome:
    """What the transport sends back on the source's own socket, and whether to close it."""

    reply: Callable[[str], None]  # sends at once (acks go out before the chunk's events)
    close: CloseCode | None = None
    error: bool = False

    def send(self, message: str) -> None:
        self.reply(message)


@dataclass(slots=True)
class LiveCall:
    session: CallSession
    queue: asyncio.Queue[ChunkData | None]
    started: float  # monotonic, for calls whose chunks carry no ts
    worker: asyncio.Task[None] | None = None
    source: object | None = None  # the connection currently streaming
    kick: Callable[[], Awaitable[None]] | None = None  # closes that connection (SOURCE_REPLACED)
    gap_timer: asyncio.TimerHandle | None = None
    detached_at: float | None = None
    ended_at: float | None = None
    alert_updates: dict[str, int] = field(default_factory=dict)  # alert id -> updates sent so far
    agent: str | None = None  # who handles the call (``?agent=`` when it was opened): who may read it
    owner: str | None = None  # the token subject of the source that opened it: only it may stream
    stored_seq: int = -1  # the durability watermark: accepted chunks up to here are committed
    reply: Callable[[str], None] | None = None  # the current source's socket (for ``stored`` events)

    @property
    def call_id(self) -> str:
        return self.session.call_id


class CallEvents:
    """Publishes a call's events in ``eid`` order on its topic."""

    def __init__(self, bus: EventBus, metrics: ServiceMetrics) -> None:
        self.bus = bus
        self.metrics = metrics

    async def emit(self, live: LiveCall, event: CallEvent) -> None:
        event.eid = live.session.next_eid()
        self.metrics.count(self.metrics.events, event.type)
        await self.bus.publish(call_topic(live.session.call_id), encode(event), eid=event.eid)
