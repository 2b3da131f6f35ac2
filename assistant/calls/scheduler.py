"""Overload by priority: what a call's analysis may skip when the CPU falls behind, and who is told.

Priorities, highest first (issue 14):

1. ``red_flags``: the classifier's pass over a customer chunk. Never skipped: every customer chunk gets its
   ``flag`` or ``scored`` event, however late.
2. ``suggestions``: the next step for a customer chunk (a query-encoder pass, then the advisor). Only the newest
   matters: a call's older pending customer chunk is skipped when a newer one is waiting (coalescing), and a
   suggestion not started within ``ASSISTANT_SUGGESTION_MAX_AGE_MS`` of its chunk's arrival is skipped.
3. ``steps``: step tracking on an agent turn (the advisor reading the agent's words). Cheap (lexical), so it
   is skipped only when more than ``ASSISTANT_ADVICE_QUEUE_MAX`` turns of one call wait for advice.

A skipped customer turn's red flags are not lost to the advisor: they are carried into the call's next advised
customer turn (``carry_flags``), so an insult in a skipped turn still brings up the abusive-caller procedure.

Each call has an ``AdviceLane``: a bounded queue of the turns waiting for advice, drained in order by the
call's advice worker, after their red-flag pass. Skipped work is counted (``assistant_shed_total{kind}``) and
the chunk's ``processed`` event names it (``shed``). A ``Degradation`` says which features are behind:
``degraded`` events go to the call's sidebar when its own work is skipped or late and when it is whole again,
and to supervisors (``WS /v1/alerts``) when the service as a whole falls behind and when it recovers.

Example:
    >>> lane = AdviceLane(max_pending=4)
    >>> for seq, speaker in [(1, "customer"), (2, "agent"), (3, "customer")]:
    ...     lane.put(Turn(seq, speaker, queued=0.0))
    >>> taken = lane.take()
    >>> [t.seq for t in taken.shed], taken.turn.seq  # seq 1's suggestion is stale: seq 3 is newer
    ([1], 2)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from assistant.types import RedFlagResult

Feature = Literal["red_flags", "suggestions", "steps"]
FEATURES: tuple[Feature, ...] = ("red_flags", "suggestions", "steps")

T = TypeVar("T")


def feature_of(speaker: str) -> Feature:
    """The advice feature a turn needs: suggestions for the customer's turns, step tracking for the agent's."""
    return "suggestions" if speaker == "customer" else "steps"


@dataclass(slots=True)
class Turn(Generic[T]):
    """A turn waiting for advice: its seq, speaker, when its chunk arrived (perf_counter), and a payload."""

    seq: int
    speaker: str
    queued: float
    payload: T | None = None

    @property
    def feature(self) -> Feature:
        return feature_of(self.speaker)


@dataclass(slots=True)
class Taken(Generic[T]):
    """What ``AdviceLane.take`` hands out: the turn to advise now (None: the lane is closed and empty) and the
    turns skipped to get to it, oldest first."""

    turn: Turn[T] | None
    shed: list[Turn[T]] = field(default_factory=list)


class AdviceLane(Generic[T]):
    """One call's turns waiting for advice, in order, bounded, with stale suggestions coalesced.

    ``take`` skips a customer turn when a newer customer turn waits behind it (its suggestion would be
    replaced at once), and, when more than ``max_pending`` turns wait, the oldest agent turns (step tracking,
    the lowest priority). Not thread-safe: the event loop owns it.
    """

    def __init__(self, *, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.max_pending = max_pending
        self._turns: deque[Turn[T]] = deque()
        self._shed: list[Turn[T]] = []  # dropped by put() for the bound, handed out by the next take()
        self._closed = False
        self._ready = asyncio.Event()  # binds to the running loop at its first wait (Python >= 3.10)

    def __len__(self) -> int:
        return len(self._turns)

    def put(self, turn: Turn[T]) -> None:
        """Queue a turn (after its red-flag pass). Over the bound, the oldest agent turn goes (else the oldest
        customer turn: a newer one is waiting, so its suggestion would be replaced anyway)."""
        self._turns.append(turn)
        while len(self._turns) > self.max_pending:
            victim = next((t for t in self._turns if t.speaker != "customer"), None)
            if victim is None:
                victim = self._turns[0]
            self._turns.remove(victim)
            self._shed.append(victim)
        self._ready.set()

    def close(self) -> None:
        """No more turns will come; ``wait`` returns once the lane is empty."""
        self._closed = True
        self._ready.set()

    def take(self) -> Taken[T]:
        """The next turn to advise, with the turns skipped before it (see the class)."""
        shed, self._shed = self._shed, []
        while self._turns:
            turn = self._turns.popleft()
            if turn.speaker == "customer" and any(t.speaker == "customer" for t in self._turns):
                shed.append(turn)
                continue
            return Taken(turn, sorted(shed, key=lambda t: t.seq))
        return Taken(None, sorted(shed, key=lambda t: t.seq))

    async def wait(self) -> Taken[T]:
        """``take``, waiting while the lane is empty and open. ``Taken(None, ...)``: closed and drained."""
        while True:
            taken = self.take()
            if taken.turn is not None or self._closed:
                return taken
            if taken.shed:
                return taken  # nothing to advise, but skipped turns to account for now
            self._ready.clear()
            await self._ready.wait()


@dataclass(frozen=True, slots=True)
class Change:
    """A change of which features are behind: ``behind`` now, and those that just ``recovered``."""

    behind: tuple[Feature, ...]
    recovered: tuple[Feature, ...]

    def event_fields(self) -> dict[str, Any]:
        return {"features": list(self.behind), "recovered": list(self.recovered)}


class Degradation:
    """Which features are behind, with hysteresis: behind at the first skipped (or late) item, recovered after
    ``recover_s`` without one. Time is passed in (monotonic seconds), so tests need no clock.

    Example:
        >>> d = Degradation(recover_s=5.0)
        >>> d.behind("suggestions", now=10.0)
        Change(behind=('suggestions',), recovered=())
        >>> d.behind("suggestions", now=11.0) is None  # already behind: nothing new to say
        True
        >>> d.check(now=16.5)
        Change(behind=(), recovered=('suggestions',))
    """

    def __init__(self, *, recover_s: float) -> None:
        if recover_s <= 0:
            raise ValueError(f"recover_s must be > 0, got {recover_s}")
        self.recover_s = recover_s
        self._last: dict[Feature, float] = {}  # feature -> last time it was behind

    @property
    def features(self) -> tuple[Feature, ...]:
        return tuple(f for f in FEATURES if f in self._last)

    def behind(self, feature: Feature, *, now: float) -> Change | None:
        """Note that ``feature`` fell behind now; a Change when it was not behind before."""
        new = feature not in self._last
        self._last[feature] = now
        return Change(self.features, ()) if new else None

    def check(self, *, now: float) -> Change | None:
        """Features not behind for ``recover_s`` recover; a Change when any did."""
        done = [f for f, t in self._last.items() if now - t >= self.recover_s]
        for f in done:
            del self._last[f]
        return Change(self.features, tuple(f for f in FEATURES if f in done)) if done else None

    def clear(self, features: Iterable[Feature]) -> Change | None:
        """Features known to be whole again now (a call's own work completed in time)."""
        done = [f for f in features if f in self._last]
        for f in done:
            del self._last[f]
        return Change(self.features, tuple(f for f in FEATURES if f in done)) if done else None


def carry_flags(older: RedFlagResult | None, newer: RedFlagResult | None) -> RedFlagResult | None:
    """``newer`` with the flagged labels of ``older`` (a skipped turn's) added: per label the flagged score,
    the higher one when both are. What the advisor reads for the turn that replaces a skipped one."""
    if older is None or not older.flagged:
        return newer
    if newer is None:
        return older
    labels = dict(newer.labels)
    for name, old in older.labels.items():
        cur = labels.get(name)
        if old.flagged and (cur is None or not cur.flagged or old.probability > cur.probability):
            labels[name] = old
    groups = {
        g: max(newer.groups.get(g, 0.0), older.groups.get(g, 0.0)) for g in {*newer.groups, *older.groups}
    }
    return RedFlagResult(labels=labels, groups=groups, truncated=newer.truncated)
