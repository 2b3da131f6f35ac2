"""The in-process event bus: the embedded default (one worker).

Example:
    >>> import asyncio
    >>> async def demo() -> str | None:
    ...     bus = InProcessBus()
    ...     sub = bus.subscribe("call:c1")
    ...     await bus.publish("call:c1", '{"type": "x"}', eid=1)
    ...     msg = await sub.get()
    ...     return msg.data if msg else None
    >>> asyncio.run(demo())
    '{"type": "x"}'
"""

from __future__ import annotations

from collections import deque

from assistant.events.bus import BusMessage, Fanout, Subscription


class InProcessBus:
    """Delivers to subscribers of this process; keeps the last ``history`` messages per topic."""

    def __init__(self, *, history: int = 2000) -> None:
        self._history_size = history
        self._fanout = Fanout()
        self._history: dict[str, deque[BusMessage]] = {}
        self._published = 0  # cursors are "0-<n>": one counter for the process, increasing in every topic

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for sub in list(self._fanout.all()):
            sub.close()

    async def publish(self, topic: str, data: str, *, eid: int = 0) -> None:
        self._published += 1
        msg = BusMessage(topic, data, eid, f"0-{self._published}")
        hist = self._history.get(topic)
        if hist is None:
            hist = self._history[topic] = deque(maxlen=self._history_size)
        hist.append(msg)
        self._fanout.deliver(msg)

    def subscribe(self, topic: str, *, maxsize: int = 1000) -> Subscription:
        sub = Subscription(topic, maxsize=maxsize)
        self._fanout.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._fanout.remove(sub)

    async def history(self, topic: str, *, after: int = 0) -> list[BusMessage]:
        return [m for m in self._history.get(topic, ()) if m.eid > after or (after == 0 and m.eid == 0)]

    async def forget(self, topic: str) -> None:
        self._history.pop(topic, None)

    async def ping(self) -> None:
        return None
