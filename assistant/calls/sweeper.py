"""Housekeeping of the call registry: which calls to end (source gone too long) and which to forget.

Pure: ``sweep`` looks at the calls and the clock and says what to do; ``CallService`` does it once a second.

Example:
    >>> sweep({}, now=0.0, idle_timeout_s=30.0, keep_ended_s=600.0)
    Sweep(to_end=[], to_forget=[])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from assistant.calls.live import LiveCall
from assistant.calls.session import CallState

ENDED_KEEP_S = (
    600.0  # ended calls stay in memory this long (replay for late sidebars), then only in the store
)


@dataclass(slots=True)
class Sweep:
    to_end: list[LiveCall] = field(default_factory=list)  # detached longer than the idle timeout
    to_forget: list[str] = field(default_factory=list)  # ended longer than ``keep_ended_s`` ago


def sweep(
    calls: Mapping[str, LiveCall], *, now: float, idle_timeout_s: float, keep_ended_s: float = ENDED_KEEP_S
) -> Sweep:
    """What to do with the calls at monotonic time ``now``."""
    out = Sweep()
    for call_id, live in calls.items():
        s = live.session
        if s.state is CallState.DETACHED and live.detached_at is not None:
            if now - live.detached_at >= idle_timeout_s:
                out.to_end.append(live)
        elif s.state is CallState.ENDED and live.ended_at is not None and now - live.ended_at >= keep_ended_s:
            out.to_forget.append(call_id)
    return out
