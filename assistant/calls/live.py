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
from assistant.events.bus import EventBus, Outgoing, StateUpdate, call_topic
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
    # A chunk's events while it is analysed, published together with the call's snapshot (CallEvents.commit).
    outbox: list[Outgoing] | None = None
    # Seqs whose transcript event a previous worker already published but which it did not finish (resume).
    shown: set[int] = field(default_factory=set)

    @property
    def call_id(self) -> str:
        return self.session.call_id


class CallEvents:
    """Publishes a call's events in ``eid`` order on its topic.

    While a chunk is analysed (``begin`` .. ``commit``), the call's events are held and then published in one
    group with the call's snapshot: all or none, so that a worker which dies mid-chunk leaves a history and a
    snapshot that agree, and the worker that resumes the call repeats nothing and misses nothing.
    """

    def __init__(self, bus: EventBus, metrics: ServiceMetrics) -> None:
        self.bus = bus
        self.metrics = metrics

    async def emit(self, live: LiveCall, event: CallEvent) -> None:
        event.eid = live.session.next_eid()
        self.metrics.count(self.metrics.events, event.type)
        await self.send(live, call_topic(live.session.call_id), encode(event), eid=event.eid)

    async def send(self, live: LiveCall, topic: str, data: str, *, eid: int = 0) -> None:
        """Publish on ``topic`` now, or with the chunk's group when one is open (the alerts topic too)."""
        if live.outbox is not None:
            live.outbox.append(Outgoing(topic, data, eid))
        else:
            await self.bus.publish(topic, data, eid=eid)

    def begin(self, live: LiveCall) -> None:
        live.outbox = []

    async def commit(self, live: LiveCall, *, snapshot: str | None) -> None:
        """Publish the held events, and the snapshot that follows them, as one group."""
        held, live.outbox = live.outbox or [], None
        state = StateUpdate(call_topic(live.call_id), snapshot) if snapshot is not None else None
        await self.bus.publish_many(held, state=state)
