"""The sweeper ends calls whose source stayed away too long and forgets calls ended long ago."""

from __future__ import annotations

import asyncio

from assistant.calls.live import LiveCall
from assistant.calls.session import CallSession, CallState
from assistant.calls.sweeper import sweep


def _call(call_id: str, *states: CallState) -> LiveCall:
    session = CallSession(call_id)
    for state in states:
        session.transition(state)
    return LiveCall(session=session, queue=asyncio.Queue(), started=0.0)


def test_sweep_ends_idle_detached_calls_and_forgets_old_ended_ones() -> None:
    idle = _call("idle", CallState.LIVE, CallState.DETACHED)
    idle.detached_at = 0.0
    fresh = _call("fresh", CallState.LIVE, CallState.DETACHED)
    fresh.detached_at = 95.0
    old = _call("old", CallState.LIVE, CallState.ENDED)
    old.ended_at = 0.0
    recent = _call("recent", CallState.LIVE, CallState.ENDED)
    recent.ended_at = 50.0
    live = _call("live", CallState.LIVE)
    calls = {c.call_id: c for c in (idle, fresh, old, recent, live)}
    plan = sweep(calls, now=100.0, idle_timeout_s=30.0, keep_ended_s=60.0)
    assert [c.call_id for c in plan.to_end] == ["idle"]
    assert plan.to_forget == ["old"]
