"""Contract tests shared by both event-bus implementations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from assistant.events.bus import EventBus
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
