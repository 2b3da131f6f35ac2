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

from assistant.events.bus import BusMessage, Fanout, Outgoing, StateUpdate, Subscription


class InProcessBus:
    """Delivers to subscribers of this process; keeps the last ``history`` messages per topic."""

    def __init__(self, *, history: int = 2000) -> None:
        self._history_size = history
        self._fanout = Fanout()
        # Plain (data, eid, cursor) tuples, not BusMessages: the collector stops tracking a tuple of strings and
        # ints, so a full collection does not walk every kept event of every call (docs/benchmarks.md, session 24).
        self._history: dict[str, deque[tuple[str, int, str]]] = {}
        self._states: dict[str, str] = {}
        self._published = 0  # cursors are "0-<n>": one counter for the process, increasing in every topic

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for sub in list(self._fanout.all()):
            sub.close()

    async def publish(self, topic: str, data: str, *, eid: int = 0) -> None:
        self._publish_now(topic, data, eid)

    def _publish_now(self, topic: str, data: str, eid: int) -> None:
        self._published += 1
        cursor = f"0-{self._published}"
        hist = self._history.get(topic)
        if hist is None:
            hist = self._history[topic] = deque(maxlen=self._history_size)
        hist.append((data, eid, cursor))
        self._fanout.deliver(BusMessage(topic, data, eid, cursor))

    async def publish_many(self, messages: list[Outgoing], *, state: StateUpdate | None = None) -> None:
        for m in messages:  # no await in between: nothing else runs, so all or none
            self._publish_now(m.topic, m.data, m.eid)
        if state is not None:
            self._states[state.topic] = state.data

    async def state(self, topic: str) -> str | None:
        return self._states.get(topic)

    def subscribe(self, topic: str, *, maxsize: int = 1000) -> Subscription:
        sub = Subscription(topic, maxsize=maxsize)
        self._fanout.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._fanout.remove(sub)

    async def history(self, topic: str, *, after: int = 0) -> list[BusMessage]:
        return [
            BusMessage(topic, data, eid, cursor)
            for data, eid, cursor in self._history.get(topic, ())
            if eid > after or (after == 0 and eid == 0)
        ]

    async def forget(self, topic: str) -> None:
        self._history.pop(topic, None)
        self._states.pop(topic, None)

    async def ping(self) -> None:
        return None
