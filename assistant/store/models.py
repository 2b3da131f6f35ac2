"""Tables of the call record (SQLAlchemy 2). Only redacted text is ever written here.

The schema is created and upgraded by the Alembic migrations in ``assistant/store/migrations``; these models
are their source of truth (``target_metadata``) and are used by the repository's statements.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="live")
    agent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    end_reason: Mapped[str] = mapped_column(String(32), default="")
    last_seq: Mapped[int] = mapped_column(Integer, default=-1)
    last_eid: Mapped[int] = mapped_column(Integer, default=0)
    severity: Mapped[float] = mapped_column(Float, default=0.0)
    severity_level: Mapped[str] = mapped_column(String(16), default="none")
    peak_severity: Mapped[float] = mapped_column(Float, default=0.0)
    peak_level: Mapped[str] = mapped_column(String(16), default="none")
    flag_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    advisor_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Stage and abuse-protocol state (assistant.guidance.live.CallGuidance), restored when the call resumes.
    guidance_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # JSON of assistant.calls.snapshot.CallSnapshot: what the call resumes from after a restart.
    live_state: Mapped[str | None] = mapped_column(Text, nullable=True)


class Chunk(Base):
    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("call_id", "seq", name="uq_chunks_call_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    call_ts: Mapped[float | None] = mapped_column(Float, nullable=True)
    received_at: Mapped[datetime]


class Flag(Base):
    __tablename__ = "flags"
    # One flag row per chunk: a worker that resumes a call writes again the flags it finds in its history.
    __table_args__ = (Index("ix_flags_call_seq", "call_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list[Any]] = mapped_column(default=list)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spans: Mapped[list[Any]] = mapped_column(default=list)
    severity: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_call", "call_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), ForeignKey("calls.id", ondelete="CASCADE"))
    episode: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    severity: Mapped[float] = mapped_column(Float)
    labels: Mapped[list[Any]] = mapped_column(default=list)
    text: Mapped[str] = mapped_column(Text)
    updates: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    acked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    acked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class AlertAck(Base):
    __tablename__ = "alert_acks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(64), ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime]


class SuggestionRow(Base):
    __tablename__ = "suggestions"
    __table_args__ = (Index("ix_suggestions_call", "call_id", "eid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    eid: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    procedure_id: Mapped[str] = mapped_column(String(128))
    procedure_title: Mapped[str] = mapped_column(Text, default="")
    step_index: Mapped[int] = mapped_column(Integer)
    step_count: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(Text)
    script: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_call", "call_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64))
    eid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    procedure_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    step_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    verdict: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    subject: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class IncidentReport(Base):
    """A supervisor's edited incident record of a call (the draft is computed from the call until then)."""

    __tablename__ = "incident_reports"

    call_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime]


metadata = Base.metadata
