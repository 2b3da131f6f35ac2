"""Wire messages of the streaming protocol (docs/protocol.md): what sources send and what the server pushes.

Inbound messages are validated with pydantic; outbound events are pydantic models serialised once and fanned
out as JSON text. Every call event carries ``eid``, the call's event number (1, 2, ...), so that a sidebar that
reconnects with ``?after=N`` receives exactly the events it missed.
"""

from __future__ import annotations

import re
import time
from enum import IntEnum, StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CALL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_CALL_ID_RE = re.compile(CALL_ID_PATTERN)


def is_safe_call_id(call_id: str) -> bool:
    """True when ``call_id`` is a safe identifier: letters, digits, ``.``, ``_``, ``-``; at most 64 chars."""
    return bool(_CALL_ID_RE.fullmatch(call_id))


class CloseCode(IntEnum):
    """Every WebSocket close code the server uses, in one place."""

    NORMAL = 1000  # the call ended (source sent ``end``) or the client closed
    INTERNAL_ERROR = 1011  # an unexpected server error on this socket; reconnect and resume
    SERVICE_RESTART = 1012  # this worker is shutting down (drained): reconnect, to any worker, and resume
    TRY_AGAIN_LATER = 1013  # this worker holds ASSISTANT_MAX_LIVE_CALLS calls: connect to another worker
    BAD_CALL_ID = 4400  # the call id in the URL is not a safe identifier
    UNAUTHORIZED = 4401  # no or invalid token
    FORBIDDEN = 4403  # the token's role may not use this socket
    SLOW_CONSUMER = 4408  # the client did not read its events fast enough; reconnect with ?after=
    SOURCE_REPLACED = 4409  # another source connected for the same call and took over
    CALL_ENDED = 4410  # the call has ended; no more chunks are accepted
    BAD_PARAMETER = 4422  # a query parameter with a value the socket does not take (e.g. ``?events=``)
    TOO_MANY_ERRORS = 4429  # too many bad messages in a row


class ErrorReason(StrEnum):
    """Machine-readable ``reason`` of an ``error`` event."""

    MALFORMED_JSON = "malformed_json"
    FRAME_TOO_LARGE = "frame_too_large"  # over ASSISTANT_MAX_FRAME_BYTES
    TOO_DEEP = "too_deep"  # JSON nested deeper than ASSISTANT_MAX_JSON_DEPTH
    INVALID_TEXT = "invalid_text"  # a string that is not valid Unicode (a lone surrogate such as \ud800)
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_CHUNK = "invalid_chunk"  # missing or badly typed fields
    TEXT_TOO_LONG = "text_too_long"
    SEQ_BACKWARDS = "seq_backwards"  # seq already used with other text, or skipped by a gap
    SEQ_OUT_OF_RANGE = "seq_out_of_range"  # above MAX_SEQ (2^53 - 1)
    SEQ_TOO_FAR_AHEAD = "seq_too_far_ahead"  # more than ASSISTANT_MAX_SEQ_JUMP ahead of the next expected
    CALL_ID_MISMATCH = "call_id_mismatch"
    BAD_CALL_ID = "bad_call_id"
    UNKNOWN_ALERT = "unknown_alert"
    ANALYSIS_FAILED = "analysis_failed"
    CALL_ENDED = "call_ended"
    CALL_TAKEN = "call_taken"  # the call belongs to another source (close 4403)
    FORBIDDEN = "forbidden"  # the token may not use this socket or this call (close 4403)
    TOKEN_EXPIRED = "token_expired"  # the socket's token expired (close 4401)
    BAD_PARAMETER = "bad_parameter"  # a query parameter with a value the socket does not take (close 4422)
    WORKER_FULL = "worker_full"  # a new call on a worker at ASSISTANT_MAX_LIVE_CALLS (close 1013)


# ---- inbound ---------------------------------------------------------------------------------------------


class ChunkIn(BaseModel):
    """A transcript chunk as the source sends it (``type`` optional: a message without one is a chunk)."""

    model_config = ConfigDict(extra="ignore", strict=False)

    type: Literal["chunk"] = "chunk"
    call_id: str | None = None
    seq: int = Field(ge=0, strict=True)
    speaker: Literal["customer", "agent"]
    text: str = Field(strict=True)
    is_final: bool = Field(default=True, strict=True)
    ts: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class AlertAckIn(BaseModel):
    """A supervisor acknowledges an alert over ``WS /v1/alerts``: ``{"type": "ack", "id": "..."}``."""

    type: Literal["ack"]
    id: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=500)


# ---- outbound ----------------------------------------------------------------------------------------------


def now() -> float:
    """Server wall-clock time (Unix seconds) stamped on outbound events."""
    return round(time.time(), 3)


class Event(BaseModel):
    """Base of every outbound event."""

    model_config = ConfigDict(extra="forbid")

    type: str
    ts: float = Field(default_factory=now)


class CallEvent(Event):
    """An event of one call; ``eid`` numbers the call's events from 1 (set when published)."""

    call_id: str
    eid: int = 0


class ReadyEvent(Event):
    type: Literal["ready"] = "ready"
    call_id: str
    last_seq: int  # highest seq processed in order; resume with last_seq + 1 (-1: none yet)
    stored_seq: int = -1  # every accepted chunk up to this seq is in the database (see StoredEvent)
    state: str
    resumed: bool


class AckEvent(Event):
    type: Literal["ack"] = "ack"
    seq: int
    is_final: bool = True
    duplicate: bool = False
    buffered: bool = False  # held until the missing seqs before it arrive (see the gap rule)


class StoredEvent(Event):
    """Sent to the source: every chunk it sent up to ``seq`` that was accepted is now in the database, so the
    source may forget them. An ``ack`` only says a chunk was received (it is held in memory)."""

    type: Literal["stored"] = "stored"
    call_id: str
    seq: int


class ErrorEvent(Event):
    type: Literal["error"] = "error"
    reason: str
    message: str
    seq: int | None = None


class PongEvent(Event):
    type: Literal["pong"] = "pong"


class SpanOut(BaseModel):
    start: int
    end: int
    text: str
    label: str
    weight: float


class SeverityOut(BaseModel):
    score: float
    level: str


class TranscriptEvent(CallEvent):
    type: Literal["transcript"] = "transcript"
    seq: int
    speaker: str
    text: str  # redacted
    is_final: bool
    call_ts: float | None = None  # seconds since the call began, from the chunk


class FlagEvent(CallEvent):
    type: Literal["flag"] = "flag"
    seq: int
    speaker: str
    text: str  # redacted; spans index into it
    labels: list[str]
    groups: list[str]
    scores: dict[str, float]
    spans: list[SpanOut]
    severity: SeverityOut


class ScoredEvent(CallEvent):
    """A customer chunk's red-flag pass flagged nothing (a flagged one gets a ``flag`` event instead): every
    customer chunk gets one of the two, so a client knows its red-flag result came."""

    type: Literal["scored"] = "scored"
    seq: int
    labels: list[str] = Field(default_factory=list)  # always empty: nothing flagged
    severity: SeverityOut


class DegradedEvent(CallEvent):
    """This call's features behind under overload (``features``), and those that just ``recovered``
    (docs/protocol.md, "Overload")."""

    type: Literal["degraded"] = "degraded"
    features: list[str]
    recovered: list[str] = Field(default_factory=list)


class ServiceDegradedEvent(Event):
    """The same for the whole service, to supervisors (``WS /v1/alerts``), with the work skipped so far."""

    type: Literal["degraded"] = "degraded"
    features: list[str]
    recovered: list[str] = Field(default_factory=list)
    shed: dict[str, int] = Field(default_factory=dict)  # work skipped since the service started, by kind


class SeverityEvent(CallEvent):
    type: Literal["severity"] = "severity"
    seq: int
    score: float
    level: str
    previous_level: str


class SuggestionEvent(CallEvent):
    type: Literal["suggestion"] = "suggestion"
    seq: int
    suggestions: list[dict[str, Any]]
    advisor: dict[str, Any] = Field(default_factory=dict)


class GuidanceEvent(CallEvent):
    """Where the call stands: its stage, the required steps done (with evidence), the abuse protocol."""

    type: Literal["guidance"] = "guidance"
    seq: int
    stage: str | None
    stages_entered: list[str]
    steps_done: list[str]
    score: float
    checklist: list[dict[str, Any]]
    protocol: dict[str, Any]
    protocol_due: list[str]
    protocol_given: list[str]
    supervisor_alert: bool = False
    wellbeing_offered: bool = False


class GapEvent(CallEvent):
    type: Literal["gap"] = "gap"
    first_missing: int
    last_missing: int
    reason: str  # "timeout", "window" or "end" (the call ended with chunks held)


class ProcessedEvent(CallEvent):
    """The last event of every final chunk: its analysis is complete (benchmarks measure up to here)."""

    type: Literal["processed"] = "processed"
    seq: int
    latency_ms: float
    shed: list[str] | None = None  # work skipped for this chunk under overload (["suggestions"]); else absent


class AlertEvent(CallEvent):
    type: Literal["alert"] = "alert"
    id: str
    episode: int
    severity: float
    level: str
    labels: list[str]
    reason: str  # "abusive", "threat", "escalation", "legal", or "protocol" (the abuse protocol asked for it)
    text: str  # the redacted utterance that opened the episode
    seq: int
    update: bool = False  # true: the same episode stepped up in severity (same id)
    acked: bool = False
    acked_by: str | None = None


class AlertAckEvent(CallEvent):
    type: Literal["alert_ack"] = "alert_ack"
    id: str
    acked_by: str
    note: str | None = None


class CallEndedEvent(CallEvent):
    type: Literal["call_ended"] = "call_ended"
    reason: str
    last_seq: int


def encode(event: Event) -> str:
    """Serialise an event once for every subscriber."""
    return event.model_dump_json(exclude_none=True)
