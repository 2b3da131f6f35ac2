"""Contract tests shared by both event-bus implementations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from assistant.cluster.servers import RedisServer
from assistant.events.bus import EventBus, Outgoing, StateUpdate, after_cursor, parse_cursor
from assistant.events.memory import InProcessBus
from assistant.events.redis_bus import RedisBus


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_bus(request: pytest.FixtureRequest) -> Callable[[], EventBus]:
    if request.param == "memory":
        shared = InProcessBus(history=5)
        return lambda: shared  # one process: every "worker" shares the same bus
    url = request.getfixturevalue("redis_url")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return lambda: RedisBus(url, history=5, prefix=prefix)


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_bus_publish_reaches_subscribers_in_order(make_bus: Callable[[], EventBus]) -> None:
    async def scenario() -> None:
        bus = make_bus()
        await bus.start()
        try:
            a, b = bus.subscribe("call:x"), bus.subscribe("call:x")
            other = bus.subscribe("call:y")
            for eid in range(1, 4):
                await bus.publish("call:x", f'{{"n": {eid}}}', eid=eid)
            for sub in (a, b):
                got = [await sub.get() for _ in range(3)]
                assert [m.eid for m in got if m] == [1, 2, 3]
            await asyncio.sleep(0.05)
            assert other._queue.empty()
        finally:
            await bus.close()

    _run(scenario())


def test_bus_history_is_bounded_and_filters_after(make_bus: Callable[[], EventBus]) -> None:
    async def scenario() -> None:
        bus = make_bus()
        await bus.start()
        try:
            for eid in range(1, 9):
                await bus.publish("call:h", f'{{"n": {eid}}}', eid=eid)
            assert [m.eid for m in await bus.history("call:h")] == [4, 5, 6, 7, 8]
            assert [m.eid for m in await bus.history("call:h", after=6)] == [7, 8]
            assert await bus.history("call:none") == []
        finally:
            await bus.close()

    _run(scenario())


def test_bus_shared_between_two_workers(make_bus: Callable[[], EventBus]) -> None:
    async def scenario() -> None:
        w1, w2 = make_bus(), make_bus()
        await w1.start()
        if w2 is not w1:
            await w2.start()
        try:
            sub = w2.subscribe("alerts")
            await w1.publish("alerts", '{"type": "alert"}')
            msg = await sub.get()
            assert msg is not None and msg.data == '{"type": "alert"}'
        finally:
            await w1.close()
            if w2 is not w1:
                await w2.close()

    _run(scenario())


def test_bus_slow_subscriber_overflows_instead_of_blocking(make_bus: Callable[[], EventBus]) -> None:
    async def scenario() -> None:
        bus = make_bus()
        await bus.start()
        try:
            slow = bus.subscribe("call:s", maxsize=3)
            for eid in range(1, 10):
                await bus.publish("call:s", "{}", eid=eid)
            await asyncio.sleep(0.05)
            assert slow.overflowed and await slow.get() is None
        finally:
            await bus.close()

    _run(scenario())


def test_bus_cursors_increase_and_resume_a_topic(make_bus: Callable[[], EventBus]) -> None:
    async def scenario() -> None:
        bus = make_bus()
        await bus.start()
        try:
            for n in range(4):
                await bus.publish("alerts", f'{{"n": {n}}}')
            await bus.publish("call:other", "{}", eid=1)
            kept = await bus.history("alerts")
            cursors = [parse_cursor(m.cursor) for m in kept]
            assert None not in cursors and cursors == sorted(cursors) and len(set(cursors)) == 4
            # A supervisor that saw the second alert resumes after its cursor: the third and fourth.
            assert [m.data for m in after_cursor(kept, kept[1].cursor)] == ['{"n": 2}', '{"n": 3}']
            assert after_cursor(kept, "not a cursor") == kept
            await bus.ping()
        finally:
            await bus.close()

    _run(scenario())


def test_bus_live_message_carries_the_history_cursor(make_bus: Callable[[], EventBus]) -> None:
    async def scenario() -> None:
        w1, w2 = make_bus(), make_bus()
        await w1.start()
        if w2 is not w1:
            await w2.start()
        try:
            sub = w2.subscribe("alerts")
            await w1.publish("alerts", '{"type": "alert"}')
            live = await sub.get()
            kept = await w2.history("alerts")
            assert live is not None and live.cursor == kept[-1].cursor != ""
        finally:
            await w1.close()
            if w2 is not w1:
                await w2.close()

    _run(scenario())


@pytest.mark.redis
def test_redis_bus_reader_resumes_after_losing_its_connection(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Pub/sub lost what was published while a worker's connection was down; the stream reader does not."""
    own = RedisServer(tmp_path)  # its own server: every client connection is killed below
    own.start()
    redis_url = own.url

    async def scenario() -> None:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        w1, w2 = RedisBus(redis_url, prefix=prefix), RedisBus(redis_url, prefix=prefix)
        await w1.start()
        await w2.start()
        admin = aioredis.from_url(redis_url, decode_responses=True)
        try:
            sub = w2.subscribe("call:k")
            await w1.publish("call:k", "{}", eid=1)
            assert (await sub.get()) is not None
            await admin.client_kill_filter(_type="normal", skipme=True)  # every worker connection drops
            for eid in range(2, 7):
                await w1.publish("call:k", "{}", eid=eid)
            got = [await sub.get() for _ in range(5)]
            assert [m.eid for m in got if m] == [2, 3, 4, 5, 6]
        finally:
            await admin.aclose()
            await w1.close()
            await w2.close()

    try:
        _run(scenario())
    finally:
        own.stop()


def test_bus_publish_many_keeps_order_and_the_state_snapshot(make_bus: Callable[[], EventBus]) -> None:
    async def scenario() -> None:
        w1, w2 = make_bus(), make_bus()
        await w1.start()
        if w2 is not w1:
            await w2.start()
        try:
            sub = w2.subscribe("call:m")
            assert await w2.state("call:m") is None
            group = [Outgoing("call:m", f'{{"n": {eid}}}', eid) for eid in (1, 2, 3)]
            await w1.publish_many(group, state=StateUpdate("call:m", '{"last_eid": 3}'))
            got = [await sub.get() for _ in range(3)]
            assert [m.eid for m in got if m] == [1, 2, 3]
            assert await w2.state("call:m") == '{"last_eid": 3}'  # another worker reads the snapshot
            await w1.publish_many(
                [Outgoing("call:m", "{}", 4)], state=StateUpdate("call:m", '{"last_eid": 4}')
            )
            assert await w2.state("call:m") == '{"last_eid": 4}'
        finally:
            await w1.close()
            if w2 is not w1:
                await w2.close()

    _run(scenario())


def test_the_in_process_history_is_not_walked_by_full_garbage_collections() -> None:
    """Its entries are plain tuples of strings and ints, which the collector stops tracking: a worker's kept events
    of many calls add nothing to a full collection's pause (docs/benchmarks.md, session 24)."""
    import gc

    async def scenario() -> None:
        bus = InProcessBus(history=50)
        for eid in range(1, 21):
            await bus.publish("call:gc", f'{{"eid": {eid}}}', eid=eid)
        gc.collect()
        kept = bus._history["call:gc"]
        assert len(kept) == 20 and not any(gc.is_tracked(entry) for entry in kept)
        replay = await bus.history("call:gc", after=15)
        assert [(m.topic, m.eid, m.data) for m in replay] == [
            ("call:gc", e, f'{{"eid": {e}}}') for e in range(16, 21)
        ]
        assert all(m.cursor for m in replay)

    _run(scenario())
