"""The Redis event bus: several service workers share call events and alerts (``ASSISTANT_REDIS_URL``).

Every worker pattern-subscribes once to ``<prefix>:ev:*`` and fans messages out to its local subscribers;
``publish`` sends through Redis only (the publisher's own worker receives it back like any other), so every
subscriber sees one copy in publish order. History per topic is a capped Redis list, so a sidebar connected
to any worker can replay a call's events.

Example:
    >>> bus = RedisBus("redis://127.0.0.1:6379/0")  # cheap; connects in start()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis

from assistant.errors import ConfigurationError
from assistant.events.bus import BusMessage, Fanout, Subscription

log = logging.getLogger(__name__)

_HISTORY_TTL_S = 24 * 3600


def _pack(eid: int, data: str) -> str:
    return f"{eid}|{data}"


def _unpack(topic: str, raw: str) -> BusMessage:
    eid, _, data = raw.partition("|")
    return BusMessage(topic, data, int(eid))


class RedisBus:
    """Pub/sub through Redis with a capped history list per topic."""

    def __init__(self, url: str, *, history: int = 2000, prefix: str = "assistant") -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(f"ASSISTANT_REDIS_URL must start with redis://, got {url!r}")
        self.url = url
        self.prefix = prefix
        self._history_size = history
        self._fanout = Fanout()
        self._redis: aioredis.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._publish_lock = asyncio.Lock()  # one publish at a time: subscribers see eids in order

    def _channel(self, topic: str) -> str:
        return f"{self.prefix}:ev:{topic}"

    def _history_key(self, topic: str) -> str:
        return f"{self.prefix}:hist:{topic}"

    async def start(self) -> None:
        self._redis = aioredis.from_url(self.url, decode_responses=True)
        try:
            await self._redis.ping()
        except Exception as e:
            raise ConfigurationError(f"cannot reach Redis at ASSISTANT_REDIS_URL={self.url}: {e}") from e
        self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for sub in list(self._fanout.all()):
            sub.close()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _read(self) -> None:
        delay = 0.1
        pattern = f"{self.prefix}:ev:*"
        skip = len(self.prefix) + len(":ev:")
        while True:
            if self._redis is None:
                return
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                self._ready.set()
                delay = 0.1
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    topic = str(message["channel"])[skip:]
                    self._fanout.deliver(_unpack(topic, str(message["data"])))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("redis bus reader lost its connection; retrying", extra={"delay_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise ConfigurationError("RedisBus used before start(); start it in the app lifespan")
        return self._redis

    async def publish(self, topic: str, data: str, *, eid: int = 0) -> None:
        packed = _pack(eid, data)
        key = self._history_key(topic)
        pipe = self._client().pipeline(transaction=False)
        pipe.rpush(key, packed)
        pipe.ltrim(key, -self._history_size, -1)
        pipe.expire(key, _HISTORY_TTL_S)
        pipe.publish(self._channel(topic), packed)
        async with self._publish_lock:
            await pipe.execute()

    def subscribe(self, topic: str, *, maxsize: int = 1000) -> Subscription:
        sub = Subscription(topic, maxsize=maxsize)
        self._fanout.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._fanout.remove(sub)

    async def history(self, topic: str, *, after: int = 0) -> list[BusMessage]:
        raw = await self._client().lrange(self._history_key(topic), 0, -1)
        msgs = [_unpack(topic, r if isinstance(r, str) else r.decode()) for r in raw]
        return [m for m in msgs if m.eid > after or (after == 0 and m.eid == 0)]

    async def forget(self, topic: str) -> None:
        return None  # the history list expires by itself; other workers may still replay it
