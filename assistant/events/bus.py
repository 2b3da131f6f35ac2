"""The event bus: how call events and alerts reach every socket that watches them, on one worker or many.

``EventBus`` is the interface; ``InProcessBus`` (assistant.events.memory) is the embedded default and
``RedisBus`` (assistant.events.redis_bus) shares events between workers when ``ASSISTANT_REDIS_URL`` is set.
Topics: ``call:<call_id>`` (a call's events, numbered by ``eid``) and ``alerts`` (every alert). The bus also
keeps a bounded history per topic, so that a sidebar that (re)connects mid-call first replays what it missed.
Every published message also gets a ``cursor``: its position in the topic's log (``"<ms>-<n>"``, a Redis
stream id), increasing within a topic; a supervisor resumes the alerts feed from the last cursor it saw.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

ALERTS_TOPIC = "alerts"


def call_topic(call_id: str) -> str:
    return f"call:{call_id}"


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One published event: its topic, its JSON text, for call events its event number, and its cursor."""

    topic: str
    data: str
    eid: int = 0
    cursor: str = ""  # position in the topic's log; "" for a subscriber's local messages


def parse_cursor(cursor: str) -> tuple[int, int] | None:
    """``"<ms>-<n>"`` as a comparable pair, or None when it is not a cursor."""
    ms, sep, n = cursor.partition("-")
    if not sep or not ms.isdigit() or not n.isdigit() or len(cursor) > 41:
        return None
    return int(ms), int(n)


def after_cursor(messages: list[BusMessage], cursor: str) -> list[BusMessage]:
    """The messages whose cursor comes after ``cursor`` (all of them when it is not a cursor)."""
    pos = parse_cursor(cursor)
    if pos is None:
        return messages
    return [m for m in messages if (parse_cursor(m.cursor) or (0, 0)) > pos]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish: topic, JSON text, event number (call events)."""

    topic: str
    data: str
    eid: int = 0


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A topic's state snapshot (JSON text), replaced together with the messages it follows."""

    topic: str
    data: str


class Subscription:
    """A subscriber's bounded queue of messages for one topic.

    A subscriber that falls ``maxsize`` messages behind is marked ``overflowed`` and gets no more: its socket
    closes with SLOW_CONSUMER and the client reconnects with ``?after=<last eid>`` to catch up from history.
    """

    def __init__(self, topic: str, *, maxsize: int = 1000) -> None:
        self.topic = topic
        self.overflowed = False
        self._queue: asyncio.Queue[BusMessage | None] = asyncio.Queue(maxsize=maxsize + 1)
        self._maxsize = maxsize

    def deliver(self, msg: BusMessage) -> None:
        if self.overflowed:
            return
        if self._queue.qsize() >= self._maxsize:
            self.overflowed = True
            self._queue.put_nowait(None)  # wake the reader so it sees the overflow
            return
        self._queue.put_nowait(msg)

    def overflow(self) -> None:
        """Stop this subscriber as if it had fallen behind: its client reconnects and catches up."""
        if not self.overflowed:
            self.overflowed = True
            with _suppress_full():
                self._queue.put_nowait(None)

    @property
    def pending(self) -> int:
        """Messages queued and not yet read."""
        return self._queue.qsize()

    def put_local(self, data: str) -> None:
        """Queue a message for this subscriber only (acks and errors of its own connection)."""
        self.deliver(BusMessage(self.topic, data, 0))

    def close(self) -> None:
        with _suppress_full():
            self._queue.put_nowait(None)

    async def get(self) -> BusMessage | None:
        """The next message, or None once the subscription overflowed or was closed."""
        if self.overflowed:
            return None
        return await self._queue.get()


class _suppress_full:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is asyncio.QueueFull


class EventBus(Protocol):
    """Publish/subscribe with per-topic history. Implementations: InProcessBus, RedisBus."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topic: str, data: str, *, eid: int = 0) -> None: ...

    async def publish_many(self, messages: list[Outgoing], *, state: StateUpdate | None = None) -> None:
        """Publish ``messages`` in order and, with ``state``, replace a topic's state snapshot: all or none.

        A worker that dies half-way through a chunk's events leaves either every one of them (and the
        snapshot that matches them) or none, so the worker that resumes the call neither repeats nor misses
        one.
        """
        ...

    async def state(self, topic: str) -> str | None:
        """The latest state snapshot saved with ``publish_many`` for ``topic`` (None: none saved)."""
        ...

    def subscribe(self, topic: str, *, maxsize: int = 1000) -> Subscription: ...

    def unsubscribe(self, sub: Subscription) -> None: ...

    async def history(self, topic: str, *, after: int = 0) -> list[BusMessage]:
        """The kept messages of ``topic`` (oldest first); with ``after``, only those with a larger eid."""
        ...

    async def forget(self, topic: str) -> None: ...

    async def ping(self) -> None:
        """Raise when the bus cannot deliver (readiness); return quietly otherwise."""
        ...


class Fanout:
    """Local delivery to this process's subscribers (shared by both bus implementations)."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    def add(self, sub: Subscription) -> None:
        self._subs.setdefault(sub.topic, set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.topic]

    def deliver(self, msg: BusMessage) -> None:
        for sub in tuple(self._subs.get(msg.topic, ())):
            sub.deliver(msg)

    def all(self) -> Iterator[Subscription]:
        for subs in self._subs.values():
            yield from subs

    def count(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))
