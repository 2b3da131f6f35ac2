"""What the store returns: pydantic records (also the HTTP response models of the call endpoints)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ChunkRecord(BaseModel):
    seq: int
    speaker: str
    text: str
    call_ts: float | None = None
    received_at: datetime


class FlagRecord(BaseModel):
    seq: int
    labels: list[str]
    scores: dict[str, float]
    spans: list[dict[str, Any]] = Field(default_factory=list)
    severity: float
    level: str
    created_at: datetime


class AckRecord(BaseModel):
    subject: str
    note: str | None = None
    created_at: datetime


class AlertRecord(BaseModel):
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
    created_at: datetime
    updated_at: datetime
    acked_at: datetime | None = None
    acked_by: str | None = None
    acks: list[AckRecord] = Field(default_factory=list)


class SuggestionRecord(BaseModel):
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
    created_at: datetime


class FeedbackRecord(BaseModel):
    id: int
    call_id: str
    eid: int | None = None
    procedure_id: str | None = None
    step_index: int | None = None
    verdict: str
    comment: str | None = None
    subject: str
    created_at: datetime


class CallSummary(BaseModel):
    id: str
    status: str
    agent: str | None = None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
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
    transcript: list[ChunkRecord] = Field(default_factory=list)
    flags: list[FlagRecord] = Field(default_factory=list)
    alerts: list[AlertRecord] = Field(default_factory=list)
    suggestions: list[SuggestionRecord] = Field(default_factory=list)
    feedback: list[FeedbackRecord] = Field(default_factory=list)
