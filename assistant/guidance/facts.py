"""What guidance needs to know about a call, independent of the store's schema.

The service and the CLI build a ``CallFacts`` from a stored call (``from_record``); the guidance modules
(incident records, post-call summaries, the supervisor report) work on it alone, so they stay pure and are
tested without a database.

Example:
    >>> f = CallFacts("c1", turns=(Turn(1, "agent", "Hello", ts=0.0), Turn(2, "customer", "damn", 4.0, ("profanity",))))
    >>> f.handle_time_s, f.flagged_turns
    (4.0, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from assistant.guidance.policy import ProtocolPolicy, StagePolicy
from assistant.guidance.protocol import ProtocolTracker
from assistant.guidance.stages import StageTracker


@dataclass(frozen=True, slots=True)
class Turn:
    """One final, redacted turn with the red-flag labels flagged on it (customer turns)."""

    seq: int
    speaker: str
    text: str
    ts: float | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertFact:
    """A supervisor alert raised on the call, and who acknowledged it."""

    seq: int
    reason: str
    level: str
    created_at: datetime | None = None
    acked_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallFacts:
    call_id: str
    agent: str | None = None  # the agent's id (or name) from the source or the token
    started_at: datetime | None = None
    ended_at: datetime | None = None
    status: str = "live"
    end_reason: str = ""
    turns: tuple[Turn, ...] = ()
    alerts: tuple[AlertFact, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def handle_time_s(self) -> float | None:
        """Call time: the transcript's own clock (``ts``) when it has one, else the wall clock."""
        stamps = [t.ts for t in self.turns if t.ts is not None]
        if len(stamps) >= 2:
            return round(max(stamps) - min(stamps), 3)
        if self.started_at is not None and self.ended_at is not None:
            return round((self.ended_at - self.started_at).total_seconds(), 3)
        return None

    @property
    def time_to_first_response_s(self) -> float | None:
        """Seconds from the customer's first turn to the agent's next turn (needs ``ts``)."""
        first = next((t for t in self.turns if t.speaker == "customer"), None)
        if first is None or first.ts is None:
            return None
        reply = next((t for t in self.turns if t.speaker == "agent" and t.seq > first.seq), None)
        if reply is None or reply.ts is None:
            return None
        return round(reply.ts - first.ts, 3)

    @property
    def flagged_turns(self) -> int:
        return sum(1 for t in self.turns if t.speaker == "customer" and t.labels)

    def label_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.turns:
            for label in t.labels:
                counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))


def replay_trackers(
    facts: CallFacts, stages: StagePolicy, protocol: ProtocolPolicy
) -> tuple[StageTracker, ProtocolTracker]:
    """Run the stage and protocol trackers over the call's turns (the same result the live call had)."""
    st = StageTracker(stages)
    pt = ProtocolTracker(protocol)
    for t in sorted(facts.turns, key=lambda t: t.seq):
        st.observe(t.seq, t.speaker, t.text)
        if t.speaker == "customer":
            pt.observe_customer(t.seq, list(t.labels), t.text)
        else:
            pt.observe_agent(t.seq, t.text)
    return st, pt


def facts_from_record(record: Any) -> CallFacts:
    """``CallFacts`` from a stored call (``assistant.store.records.CallRecord``): turns with their flags."""
    labels_by_seq: dict[int, set[str]] = {}
    for f in record.flags:
        labels_by_seq.setdefault(f.seq, set()).update(f.labels)
    turns = tuple(
        Turn(
            seq=c.seq,
            speaker=c.speaker,
            text=c.text,
            ts=c.call_ts,
            labels=tuple(sorted(labels_by_seq.get(c.seq, ()))) if c.speaker == "customer" else (),
        )
        for c in record.transcript
    )
    alerts = tuple(
        AlertFact(
            seq=a.seq,
            reason=a.reason,
            level=a.level,
            created_at=a.created_at,
            acked_by=tuple(ack.subject for ack in a.acks) or ((a.acked_by,) if a.acked_by else ()),
        )
        for a in record.alerts
    )
    return CallFacts(
        call_id=record.id,
        agent=record.agent,
        started_at=record.started_at,
        ended_at=record.ended_at,
        status=record.status,
        end_reason=record.end_reason,
        turns=turns,
        alerts=alerts,
    )
