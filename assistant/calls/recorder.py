"""The call record as the live service writes it: the only code that knows the store's columns.

Every write is queued on the write-behind ``StoreWriter`` (never awaited on the hot path); without a store,
every method does nothing. Reads go to ``Store`` directly (``flush()`` first when they must see the latest).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from assistant.calls.session import CallSession, CallState, ChunkData
from assistant.events.messages import AlertEvent, SpanOut
from assistant.store import Insert, Store, StoreWriter, Update, Upsert, utcnow
from assistant.store import models as m
from assistant.types import Suggestion

log = logging.getLogger(__name__)


def advisor_state_dict(state: Any) -> dict[str, Any]:
    """The advisor's per-call state as a JSON object ({} when it has none or cannot be serialised)."""
    if state is None:
        return {}
    try:
        return dict(state.to_dict())
    except Exception:  # advisor state must never break the call; it is only shown and stored
        log.warning("advisor state is not serialisable", exc_info=True)
        return {}


class CallRecorder:
    """Queues the rows of calls, chunks, flags, alerts, acknowledgements and suggestions."""

    def __init__(
        self, store: Store | None, *, linger_ms: float = 0.0, retry_s: float = 1.0, buffer_max: int = 200_000
    ) -> None:
        self.store = store
        self.writer = (
            StoreWriter(store, linger_ms=linger_ms, retry_s=retry_s, buffer_max=buffer_max)
            if store is not None
            else None
        )

    @property
    def backlog(self) -> int:
        return self.writer.backlog if self.writer is not None else 0

    async def start(self) -> None:
        if self.store is not None and not self.store.started:
            await self.store.start()
        if self.writer is not None:
            await self.writer.start()

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        if self.store is not None:
            await self.store.close()

    def notify(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything recorded so far is committed (never without a store)."""
        if self.writer is not None:
            self.writer.notify(callback)

    async def flush(self) -> None:
        """Wait until everything queued is written."""
        if self.writer is not None:
            await self.writer.flush()

    # ---- calls ------------------------------------------------------------------------------------------
    def call_opened(self, call_id: str, *, agent: str | None, if_absent: bool = False) -> None:
        """The call's row; ``if_absent``: only when none is stored yet (a call resumed from its snapshot
        whose first worker died before its row was written)."""
        if self.writer is None:
            return
        now = utcnow()
        row = m.Call(
            id=call_id,
            agent=agent,
            status="live",
            started_at=now,
            updated_at=now,
            end_reason="",
            last_seq=-1,
            last_eid=0,
            severity=0.0,
            severity_level="none",
            peak_severity=0.0,
            peak_level="none",
            flag_counts={},
            advisor_state={},
            guidance_state={},
        )
        self.writer.put(Insert(row, ignore_conflict=("id",)) if if_absent else Upsert(row))

    def call_state(self, s: CallSession, *, ended: bool = False, snapshot: str | None = None) -> None:
        """The call's current state (after every chunk, and when it ends); ``snapshot``: what it resumes from.

        With a snapshot (after every chunk) the advisor and guidance columns are left as they are: the snapshot
        holds both (a resumed call reads them from it), and converting, checking and writing them again for
        every chunk was a fifth of the event loop's time at saturation (py-spy, docs/benchmarks.md). Every
        write without one (call opened, drained, ended) stores them.
        """
        if self.writer is None:
            return
        now = utcnow()
        values: dict[str, Any] = {
            "status": "ended" if s.state is CallState.ENDED else "live",
            "updated_at": now,
            "last_seq": s.last_seq,
            "last_eid": s.last_eid,
            "severity": s.severity.current.score,
            "severity_level": s.severity.current.level,
            "peak_severity": s.severity.peak.score,
            "peak_level": s.severity.peak.level,
            "flag_counts": dict(s.flag_counts),
        }
        if snapshot is not None:
            values["live_state"] = snapshot
        else:
            values["advisor_state"] = advisor_state_dict(s.advisor_state)
            values["guidance_state"] = s.guidance.to_dict() if s.guidance is not None else {}
        if ended:
            values.update(ended_at=now, end_reason=s.end_reason)
        self.writer.put(Update(m.Call, s.call_id, values))

    # ---- per chunk --------------------------------------------------------------------------------------
    def chunk(self, call_id: str, chunk: ChunkData) -> None:
        if self.writer is None:
            return
        self.writer.put(
            Insert(
                m.Chunk(
                    call_id=call_id,
                    seq=chunk.seq,
                    speaker=chunk.speaker,
                    text=chunk.text,
                    call_ts=chunk.ts,
                    received_at=utcnow(),
                ),
                ignore_conflict=("call_id", "seq"),
            )
        )

    def flag(
        self,
        call_id: str,
        seq: int,
        *,
        labels: list[str],
        scores: dict[str, float],
        spans: list[SpanOut],
        severity: float,
        level: str,
    ) -> None:
        if self.writer is None:
            return
        self.writer.put(
            Insert(
                m.Flag(
                    call_id=call_id,
                    seq=seq,
                    labels=labels,
                    scores=scores,
                    spans=[sp.model_dump() for sp in spans],
                    severity=severity,
                    level=level,
                    created_at=utcnow(),
                ),
                ignore_conflict=("call_id", "seq"),
            )
        )

    def suggestions(self, call_id: str, seq: int, eid: int, suggestions: list[Suggestion]) -> None:
        if self.writer is None:
            return
        now = utcnow()
        for rank, x in enumerate(suggestions):
            self.writer.put(
                Insert(
                    m.SuggestionRow(
                        call_id=call_id,
                        seq=seq,
                        eid=eid,
                        rank=rank,
                        created_at=now,
                        procedure_id=x.procedure_id,
                        procedure_title=x.procedure_title,
                        step_index=x.step_index,
                        step_count=x.step_count,
                        step=x.step,
                        script=x.script,
                        source=x.source,
                        score=x.score,
                        reason=x.reason,
                    )
                )
            )

    # ---- alerts -----------------------------------------------------------------------------------------
    def alert_raised(self, event: AlertEvent) -> None:
        if self.writer is None:
            return
        now = utcnow()
        self.writer.put(
            Insert(
                m.Alert(
                    id=event.id,
                    call_id=event.call_id,
                    episode=event.episode,
                    seq=event.seq,
                    reason=event.reason,
                    level=event.level,
                    severity=event.severity,
                    labels=event.labels,
                    text=event.text,
                    updates=0,
                    created_at=now,
                    updated_at=now,
                ),
                # The worker that resumes a call writes again the alerts it finds in the call's history:
                # one row per alert id, whoever wrote it first.
                ignore_conflict=("id",),
            )
        )

    def alert_updated(self, event: AlertEvent, *, updates: int) -> None:
        if self.writer is None:
            return
        self.writer.put(
            Update(
                m.Alert,
                event.id,
                {
                    "level": event.level,
                    "severity": event.severity,
                    "labels": event.labels,
                    "reason": event.reason,
                    "updates": updates,
                    "updated_at": utcnow(),
                },
            )
        )

    def alert_acked(self, alert_id: str, call_id: str, *, subject: str, note: str | None) -> None:
        """The acknowledgement, and the alert's first acknowledgement (a later one never overwrites it)."""
        if self.writer is None:
            return
        now = utcnow()
        self.writer.put(
            Insert(
                m.AlertAck(alert_id=alert_id, call_id=call_id, subject=subject, note=note, created_at=now)
            ),
            Update(m.Alert, alert_id, {"acked_at": now, "acked_by": subject}, only_if_null="acked_at"),
        )
