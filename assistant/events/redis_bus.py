"""The Redis event bus: several service workers share call events and alerts (``ASSISTANT_REDIS_URL``).

Built on Redis Streams, so that nothing published is lost to a worker whose connection dropped:

* each topic is a capped stream ``<prefix>:topic:<topic>`` (``XADD ... MAXLEN history``): the history that a
  sidebar or supervisor connected to any worker replays, and whose entry ids are the messages' cursors;
* every message is also appended to one shared stream ``<prefix>:all`` (approximately capped). Each worker
  reads it with ``XREAD`` from the last id it has seen and fans the messages out to its local subscribers,
  so every subscriber sees one copy in publish order, and a worker whose Redis connection dropped resumes
  from where it was instead of missing what was published meanwhile.

Both appends are one Lua script (atomic), so that a message is in its topic's history before any worker can
deliver it live: a socket that subscribes, then reads the history, has no hole between the two. A topic may
also keep a state snapshot (``<prefix>:state:<topic>``, a call's live state), written in the same MULTI/EXEC
as the messages it follows (``publish_many``): the worker that resumes a call after another one died finds
the state that matches the last events published, never one behind or ahead of them.

Example:
    >>> bus = RedisBus("redis://127.0.0.1:6379/0")  # cheap; connects in start()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis

from assistant.errors import ConfigurationError
from assistant.events.bus import BusMessage, Fanout, Outgoing, StateUpdate, Subscription, parse_cursor

log = logging.getLogger(__name__)

_HISTORY_TTL_S = 24 * 3600
_READ_BLOCK_MS = 2000
_READ_COUNT = 1000

# KEYS: topic stream, shared stream. ARGV: topic maxlen, shared maxlen, eid, data, ttl, topic.
_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'e', ARGV[3], 'd', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 't', ARGV[6], 'i', id, 'e', ARGV[3], 'd', ARGV[4])
return id
"""


class RedisBus:
    """Redis Streams: a capped stream per topic (history, cursors) and a shared stream every worker reads.

    ``shared_maxlen`` bounds the shared stream: a worker that stays disconnected while more than this many
    messages are published cannot catch up; its subscribers are then closed (SLOW_CONSUMER) and reconnect
    with their last ``eid`` or cursor, which the per-topic history serves.
    """

    def __init__(
        self, url: str, *, history: int = 2000, prefix: str = "assistant", shared_maxlen: int = 100_000
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(f"ASSISTANT_REDIS_URL must start with redis://, got {url!r}")
        self.url = url
        self.prefix = prefix
        self._history_size = history
        self._shared_maxlen = shared_maxlen
        self._fanout = Fanout()
        self._redis: aioredis.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._script: Any = None
        # Publishes are queued and sent in order, many per round trip, on one connection: subscribers see a
        # call's eids in order without one round trip per event under a lock.
        self._outbox: list[tuple[list[Outgoing], StateUpdate | None, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._last_id = "0-0"

    @property
    def _shared(self) -> str:
        return f"{self.prefix}:all"

    def _topic_key(self, topic: str) -> str:
        return f"{self.prefix}:topic:{topic}"

    def _state_key(self, topic: str) -> str:
        return f"{self.prefix}:state:{topic}"

    async def start(self) -> None:
        self._redis = aioredis.from_url(self.url, decode_responses=True, health_check_interval=30)
        try:
            await self._redis.ping()
            newest: Any = await self._redis.xrevrange(self._shared, count=1)
        except Exception as e:
            await self._redis.aclose()
            self._redis = None
            raise ConfigurationError(f"cannot reach Redis at ASSISTANT_REDIS_URL={self.url}: {e}") from e
        self._script = self._redis.register_script(_PUBLISH)
        # Live delivery starts at what is published from now on; older messages are history.
        self._last_id = str(newest[0][0]) if newest else "0-0"
        self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")

    async def close(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._sender), timeout=5)
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

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise ConfigurationError("RedisBus used before start(); start it in the app lifespan")
        return self._redis

    # ---- delivery --------------------------------------------------------------------------------------
    async def _read(self) -> None:
        delay = 0.1
        lost_connection = False
        while True:
            try:
                if lost_connection:
                    await self._check_not_trimmed_past()
                    lost_connection = False
                got: Any = await self._client().xread(
                    {self._shared: self._last_id}, count=_READ_COUNT, block=_READ_BLOCK_MS
                )
                delay = 0.1
                for _stream, entries in got or ():
                    for entry_id, fields in entries:
                        self._last_id = str(entry_id)
                        self._fanout.deliver(_message(fields))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                lost_connection = True
                log.warning(
                    "redis bus reader lost its connection; retrying from the last id",
                    extra={"delay_s": delay, "last_id": self._last_id, "error": str(e)[:200]},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _check_not_trimmed_past(self) -> None:
        """After a lost connection: if the shared stream was trimmed past our position, close subscribers.

        They reconnect with their last eid / cursor and catch up from the topic's history, which is longer
        per topic than the shared stream's share of it.
        """
        oldest: Any = await self._client().xrange(self._shared, count=1)
        if not oldest:
            return
        first, last = parse_cursor(str(oldest[0][0])), parse_cursor(self._last_id)
        if first is not None and last is not None and first > last and last != (0, 0):
            log.error(
                "redis bus fell behind the shared stream; closing local subscribers so they catch up",
                extra={"last_id": self._last_id, "oldest_kept": oldest[0][0]},
            )
            for sub in list(self._fanout.all()):
                sub.overflow()

    # ---- publishing ------------------------------------------------------------------------------------
    async def publish(self, topic: str, data: str, *, eid: int = 0) -> None:
        await self.publish_many([Outgoing(topic, data, eid)])

    async def publish_many(self, messages: list[Outgoing], *, state: StateUpdate | None = None) -> None:
        self._client()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((messages, state, fut))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="redis-bus-sender")
        await fut

    async def _send(self) -> None:
        """Send what is queued, in order, as one MULTI/EXEC per round trip (so every group is all or none)."""
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                async with self._client().pipeline(transaction=True) as pipe:
                    for messages, state, _ in batch:
                        for m in messages:
                            await self._script(
                                keys=[self._topic_key(m.topic), self._shared],
                                args=[
                                    self._history_size,
                                    self._shared_maxlen,
                                    m.eid,
                                    m.data,
                                    _HISTORY_TTL_S,
                                    m.topic,
                                ],
                                client=pipe,
                            )
                        if state is not None:
                            pipe.set(self._state_key(state.topic), state.data, ex=_HISTORY_TTL_S)
                    await pipe.execute()
            except Exception as e:
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for *_, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def state(self, topic: str) -> str | None:
        raw: Any = await self._client().get(self._state_key(topic))
        return None if raw is None else str(raw)

    # ---- subscriptions and history ---------------------------------------------------------------------
    def subscribe(self, topic: str, *, maxsize: int = 1000) -> Subscription:
        sub = Subscription(topic, maxsize=maxsize)
        self._fanout.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._fanout.remove(sub)

    async def history(self, topic: str, *, after: int = 0) -> list[BusMessage]:
        entries: Any = await self._client().xrange(self._topic_key(topic))
        msgs = [
            BusMessage(topic, str(fields.get("d", "")), int(fields.get("e", 0)), str(entry_id))
            for entry_id, fields in entries
        ]
        return [m for m in msgs if m.eid > after or (after == 0 and m.eid == 0)]

    async def forget(self, topic: str) -> None:
        return None  # the topic's stream and state expire by themselves; other workers may still replay them

    async def ping(self) -> None:
        await self._client().ping()
        if self._reader is None or self._reader.done():
            raise ConnectionError("the redis bus reader is not running")


def _message(fields: dict[str, Any]) -> BusMessage:
    return BusMessage(str(fields["t"]), str(fields["d"]), int(fields.get("e", 0)), str(fields.get("i", "")))
