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
    # Events (type, seq) that a previous worker published for chunks after its last snapshot, before it died:
    # analysed again here (the state follows), but not published twice (CallEvents.emit).
    published: set[tuple[str, int]] = field(default_factory=set)
    agent: str | None = None  # who handles the call (``?agent=`` when it was opened): who may read it
    owner: str | None = None  # the token subject of the source that opened it: only it may stream
    stored_seq: int = -1  # the durability watermark: accepted chunks up to here are committed
    reply: Callable[[str], None] | None = None  # the current source's socket (for ``stored`` events)

    @property
    def call_id(self) -> str:
        return self.session.call_id


class CallEvents:
    """Publishes a call's events in ``eid`` order on its topic.

    ``emit`` may publish the event on other topics too (an alert on the alerts topic) and replace the call's
    state snapshot, all in one group (all or none): a chunk's ``processed`` goes out with the state that a call
    resumes from, on any worker. A resumed call skips the events its previous worker already published.
    """

    def __init__(self, bus: EventBus, metrics: ServiceMetrics) -> None:
        self.bus = bus
        self.metrics = metrics

    async def emit(
        self,
        live: LiveCall,
        event: CallEvent,
        *,
        also: tuple[str, ...] = (),
        state: str | None = None,
    ) -> bool:
        """Publish ``event`` (on the call's topic and the ``also`` topics); False when it was already published
        by the worker this call was resumed from (nothing is sent then)."""
        key = _replay_key(event)
        if key is not None and key in live.published:
            live.published.discard(key)
            return False
        event.eid = live.session.next_eid()
        self.metrics.count(self.metrics.events, event.type)
        data = encode(event)
        topic = call_topic(live.session.call_id)
        messages = [Outgoing(topic, data, event.eid), *(Outgoing(t, data, event.eid) for t in also)]
        if len(messages) == 1 and state is None:
            await self.bus.publish(topic, data, eid=event.eid)
        else:
            snapshot = StateUpdate(topic, state) if state is not None else None
            await self.bus.publish_many(messages, state=snapshot)
        return True


def replay_key(data: dict[str, object]) -> tuple[str, int] | None:
    """How a published call event is recognised when its chunk is analysed again: (type, seq) of chunk events
    (final transcript lines only; a partial line may be followed by its final one)."""
    seq = data.get("seq")
    kind = data.get("type")
    if not isinstance(seq, int) or not isinstance(kind, str) or kind == "processed":
        return None
    if kind == "transcript" and data.get("is_final") is False:
        return None
    return kind, seq


def _replay_key(event: CallEvent) -> tuple[str, int] | None:
    return replay_key(
        {"type": event.type, "seq": getattr(event, "seq", None), "is_final": getattr(event, "is_final", True)}
    )
