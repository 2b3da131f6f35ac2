"""What the store returns: pydantic records (also the HTTP response models of the call endpoints).

Read straight from the rows of ``models.py`` (``from_attributes``); the columns are not mapped by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _utc(dt: datetime) -> datetime:
    """SQLite gives naive datetimes back; every stored time is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]


class _Record(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ChunkRecord(_Record):
    seq: int
    speaker: str
    text: str
    call_ts: float | None = None
    received_at: UtcDateTime


class FlagRecord(_Record):
    seq: int
    labels: list[str]
    scores: dict[str, float]
    spans: list[dict[str, Any]] = Field(default_factory=list)
    severity: float
    level: str
    created_at: UtcDateTime


class AckRecord(_Record):
    subject: str
    note: str | None = None
    created_at: UtcDateTime


class AlertRecord(_Record):
    id: str
    call_id: str
    episode: int
    seq: int
    reason: str
    level: str
    severity: float
    labels: list[str]
    text: str
    updates: int = 0
    created_at: UtcDateTime
    updated_at: UtcDateTime
    acked_at: UtcDateTime | None = None
    acked_by: str | None = None
    acks: list[AckRecord] = Field(default_factory=list)


class SuggestionRecord(_Record):
    seq: int
    eid: int
    rank: int
    procedure_id: str
    procedure_title: str
    step_index: int
    step_count: int
    step: str
    script: str
    source: str
    score: float
    reason: str
    created_at: UtcDateTime


class FeedbackRecord(_Record):
    id: int
    call_id: str
    eid: int | None = None
    procedure_id: str | None = None
    step_index: int | None = None
    verdict: str
    comment: str | None = None
    subject: str
    created_at: UtcDateTime


class CallSummary(_Record):
    id: str
    status: str
    agent: str | None = None
    started_at: UtcDateTime
    updated_at: UtcDateTime
    ended_at: UtcDateTime | None = None
    end_reason: str = ""
    last_seq: int
    severity: float
    severity_level: str
    peak_severity: float
    peak_level: str
    flag_counts: dict[str, int] = Field(default_factory=dict)
    open_alerts: int = 0
    live: bool = False  # a source is connected to this worker now


class CallRecord(CallSummary):
    last_eid: int = 0
    advisor_state: dict[str, Any] = Field(default_factory=dict)
    guidance_state: dict[str, Any] = Field(default_factory=dict)
    incident_report: dict[str, Any] | None = None  # the supervisor's edited incident record, if any
    transcript: list[ChunkRecord] = Field(default_factory=list)
    flags: list[FlagRecord] = Field(default_factory=list)
    alerts: list[AlertRecord] = Field(default_factory=list)
    suggestions: list[SuggestionRecord] = Field(default_factory=list)
    feedback: list[FeedbackRecord] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What a worker needs to resume a stored call: its status, last seq and eid, and its latest chunks."""

    status: str
    last_seq: int
    last_eid: int
    chunks: list[ChunkRecord]
    guidance_state: dict[str, Any] = field(default_factory=dict)
    live_state: str | None = None  # the call's snapshot (assistant.calls.snapshot), when one was written

    @property
    def ended(self) -> bool:
        return self.status == "ended"
