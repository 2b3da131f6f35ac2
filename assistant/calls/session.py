"""The call session: an explicit state machine and the ordered, idempotent transcript of one live call.

Ordering rule (docs/protocol.md, "Sequence numbers"): final chunks are processed strictly in ``seq`` order,
starting at 0 or 1. A final chunk whose seq was already received with the same text is acknowledged as a
duplicate and ignored; with other text it is an error (``seq_backwards``). A chunk ahead of the next
expected seq is acknowledged with ``buffered: true`` and held; when the missing seq arrives the held chunks
are processed in order. When more than ``reorder_window`` chunks are held, or the oldest hole is older than
``reorder_timeout_ms``, the missing seqs are skipped with a ``gap`` event and never processed later.
A seq above ``MAX_SEQ`` (2^53 - 1: exact in JavaScript and in SQLite's 64-bit integer) or more than
``max_seq_jump`` ahead of the next expected one is refused with an error, not held: a hole is remembered as
one range, never as a set of the missing seqs, so the memory a call holds is O(reorder window) whatever seqs
it is sent.
Partial chunks (``is_final: false``) only update the live transcript line; the final chunk with the same seq
replaces them and is the one analysed.

Example:
    >>> s = CallSession("c1")
    >>> r = s.ingest(ChunkData(seq=1, speaker="customer", text="hello", is_final=True), now=0.0)
    >>> [c.seq for c in r.ready], s.last_seq
    ([1], 1)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from assistant.calls.episode import EpisodeTracker
from assistant.calls.redaction import CallRedactor
from assistant.calls.severity import CallSeverity
from assistant.errors import InvalidInputError
from assistant.guidance.live import CallGuidance
from assistant.types import Speaker

MAX_SEQ = 2**53 - 1  # the largest seq accepted (docs/protocol.md)


class CallState(Enum):
    NEW = "new"  # known, no source connected yet
    LIVE = "live"  # a source is streaming
    DETACHED = "detached"  # the source dropped; waiting for it to resume (ends after call_idle_timeout_s)
    ENDED = "ended"  # the source sent ``end`` or the call timed out; read-only


_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.NEW: frozenset({CallState.LIVE, CallState.ENDED}),
    CallState.LIVE: frozenset({CallState.LIVE, CallState.DETACHED, CallState.ENDED}),
    CallState.DETACHED: frozenset({CallState.LIVE, CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class InvalidTransition(InvalidInputError):
    """A state change the call's state machine does not allow."""


@dataclass(slots=True)
class ChunkData:
    """A validated, already redacted chunk."""

    seq: int
    speaker: Speaker
    text: str
    is_final: bool = True
    ts: float | None = None
    received: float = 0.0  # perf_counter() when it arrived, for latency


@dataclass(slots=True)
class Gap:
    first_missing: int
    last_missing: int
    reason: str


@dataclass(slots=True)
class IngestResult:
    seq: int
    is_final: bool
    duplicate: bool = False
    buffered: bool = False
    ready: list[ChunkData] = field(default_factory=list)  # finals to process now, in seq order
    gaps: list[Gap] = field(default_factory=list)
    partial: ChunkData | None = None  # a partial line to show
    error: tuple[str, str] | None = None  # (reason, message); the chunk was not accepted


@dataclass(slots=True)
class TranscriptLine:
    seq: int
    speaker: str
    text: str
    ts: float | None


def _digest(text: str, speaker: str) -> bytes:
    return hashlib.blake2b(f"{speaker}\x00{text}".encode(), digest_size=8).digest()


class CallSession:
    """State of one call: lifecycle, ordered transcript, severity, alert episodes, advisor state."""

    def __init__(
        self,
        call_id: str,
        *,
        reorder_window: int = 32,
        reorder_timeout_s: float = 1.5,
        max_seq_jump: int = 100_000,
        context_turns: int = 3,
        half_life_s: float = 60.0,
        turn_decay: float = 0.75,
        alert_level: str = "high",
    ) -> None:
        self.call_id = call_id
        self.state = CallState.NEW
        self.last_seq = -1
        self.reorder_window = reorder_window
        self.reorder_timeout_s = reorder_timeout_s
        self.max_seq_jump = max_seq_jump
        self.gap_deadline: float | None = None
        self.transcript: list[TranscriptLine] = []
        self.partials: dict[int, TranscriptLine] = {}
        self.context_turns = context_turns
        self.customer_turns = 0
        self.severity = CallSeverity(half_life_s=half_life_s, turn_decay=turn_decay)
        self.episodes = EpisodeTracker(alert_level=alert_level)
        self.advisor_state: Any = None
        self.guidance: CallGuidance | None = None  # stages, required steps (QA) and the abuse protocol
        self.shown_suggestions: tuple[tuple[str, int], ...] = ()
        self.flag_counts: dict[str, int] = {}
        self.alert_ids: dict[int, str] = {}  # episode -> alert id
        self.end_reason = ""
        self.redactor = CallRedactor()  # remembers names given in the call, to redact later mentions
        self._pending: dict[int, ChunkData] = {}
        self._seen: dict[int, bytes] = {}
        self._started = False  # a first seq was fixed (accepted, or skipped to by a gap)
        self._eid = 0

    # ---- lifecycle -----------------------------------------------------------------------------------
    def transition(self, new: CallState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise InvalidTransition(f"call {self.call_id}: cannot go from {self.state.value} to {new.value}")
        self.state = new

    def release_analysis_state(self) -> None:
        """Drop what only the analysis of later chunks needs (transcript lines, guidance, advisor state), once the
        call has ended and that state is stored.

        Why: an ended call stays in memory for a while (late sidebars replay it), and every object it keeps is one
        more that each full garbage collection walks while the event loop waits: with a worker's recent calls
        kept whole, its pauses grew past 400 ms (docs/benchmarks.md, session 24). What it still answers (state,
        severity, flag counts, eids, alert episodes) stays.
        """
        if self.state is not CallState.ENDED:
            raise InvalidTransition(
                f"call {self.call_id}: its analysis state is released only once it has ended"
            )
        self.transcript = []
        self.partials = {}
        self.advisor_state = None
        self.guidance = None
        self._pending = {}

    def next_eid(self) -> int:
        self._eid += 1
        return self._eid

    @property
    def last_eid(self) -> int:
        return self._eid

    def restore(self, *, last_seq: int, lines: list[TranscriptLine], last_eid: int = 0) -> None:
        """Continue a call from the store (after a restart): later seqs resume after ``last_seq``."""
        self.last_seq = last_seq
        self.transcript = list(lines)
        for line in lines:
            self._seen[line.seq] = _digest(line.text, line.speaker)
        self._started = last_seq >= 0 or bool(lines)
        self._eid = max(self._eid, last_eid)

    # ---- ingest --------------------------------------------------------------------------------------
    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def _expected(self, seq: int) -> int:
        if self._started or self.last_seq >= 0 or self._seen:
            return self.last_seq + 1
        return seq if seq <= 1 else 0  # a call starts at seq 0 or 1

    def _out_of_range(self, seq: int) -> tuple[str, str] | None:
        """Why ``seq`` can never be held, or None. Checked before anything is stored for it."""
        if seq < 0 or seq > MAX_SEQ:
            return ("seq_out_of_range", f"seq {seq} is outside 0..{MAX_SEQ}")
        expected = self._expected(seq)
        if seq > expected + self.max_seq_jump:
            return (
                "seq_too_far_ahead",
                f"seq {seq} is {seq - expected} ahead of the next expected seq {expected}; at most "
                f"{self.max_seq_jump} (ASSISTANT_MAX_SEQ_JUMP) may be skipped",
            )
        return None

    def ingest(self, chunk: ChunkData, *, now: float) -> IngestResult:
        """Accept one chunk (already redacted); say what to acknowledge and what is ready to process."""
        if self.state is CallState.ENDED:
            return IngestResult(chunk.seq, chunk.is_final, error=("call_ended", "the call has ended"))
        refused = self._out_of_range(chunk.seq)
        if refused is not None:
            return IngestResult(chunk.seq, chunk.is_final, error=refused)
        if not chunk.is_final:
            return self._ingest_partial(chunk)
        res = IngestResult(chunk.seq, True)
        seq = chunk.seq
        digest = _digest(chunk.text, chunk.speaker)
        known = self._seen.get(seq)
        if known is None and seq in self._pending:
            known = _digest(self._pending[seq].text, self._pending[seq].speaker)
        if known is not None:
            if known == digest:
                res.duplicate = True
            else:
                res.error = (
                    "seq_backwards",
                    f"seq {seq} was already received with other text; seqs must increase "
                    f"(next expected {self.last_seq + 1})",
                )
            return res
        expected = self._expected(seq)
        if seq < expected:
            res.error = (
                "seq_backwards",
                f"seq {seq} is behind the stream (next expected {expected}); "
                "it was skipped by a gap or precedes the call's first seq",
            )
            return res
        if seq > expected:
            self._pending[seq] = chunk
            res.buffered = True
            if self.gap_deadline is None:
                self.gap_deadline = now + self.reorder_timeout_s
            if len(self._pending) > self.reorder_window:
                self._skip_to_next(res, "window")
                self._drain(res)
                self._reset_deadline(now)
            return res
        self._accept(chunk, digest, res)
        self._drain(res)
        self._reset_deadline(now)
        return res

    def expire_gap(self, *, now: float) -> IngestResult:
        """The oldest hole waited ``reorder_timeout_s``: skip it and process what is held behind it."""
        res = IngestResult(self.last_seq, True)
        if self._pending and self.gap_deadline is not None and now >= self.gap_deadline:
            self._skip_to_next(res, "timeout")
            self._drain(res)
            self.gap_deadline = None
            self._reset_deadline(now)
        return res

    def release_all(self) -> IngestResult:
        """The call ends: skip every remaining hole (``gap`` with reason ``end``) and process all that is held."""
        res = IngestResult(self.last_seq, True)
        while self._pending:
            self._skip_to_next(res, "end")
            self._drain(res)
        self.gap_deadline = None
        return res

    def _ingest_partial(self, chunk: ChunkData) -> IngestResult:
        res = IngestResult(chunk.seq, False)
        if chunk.seq in self._seen or chunk.seq in self._pending or chunk.seq <= self.last_seq:
            res.duplicate = True  # the final chunk is in; a late partial changes nothing
            return res
        self.partials[chunk.seq] = TranscriptLine(chunk.seq, chunk.speaker, chunk.text, chunk.ts)
        # Live lines of seqs far ahead are not kept for ever: at most a window's worth, the newest seqs.
        while len(self.partials) > self.reorder_window:
            del self.partials[min(self.partials)]
        res.partial = chunk
        return res

    def _accept(self, chunk: ChunkData, digest: bytes, res: IngestResult) -> None:
        self._seen[chunk.seq] = digest
        self._started = True
        self.last_seq = chunk.seq
        self.partials.pop(chunk.seq, None)
        self.transcript.append(TranscriptLine(chunk.seq, chunk.speaker, chunk.text, chunk.ts))
        res.ready.append(chunk)

    def _drain(self, res: IngestResult) -> None:
        while (nxt := self._pending.pop(self.last_seq + 1, None)) is not None:
            self._accept(nxt, _digest(nxt.text, nxt.speaker), res)

    def _skip_to_next(self, res: IngestResult, reason: str) -> None:
        first_held = min(self._pending)
        first_missing = self.last_seq + 1 if (self.last_seq >= 0 or self._seen) else first_held
        if first_missing < first_held:
            res.gaps.append(Gap(first_missing, first_held - 1, reason))
        self._started = True
        self.last_seq = first_held - 1
        for seq in [s for s in self.partials if s < first_held]:
            del self.partials[seq]  # live lines of skipped seqs will never be final

    def _reset_deadline(self, now: float) -> None:
        self.gap_deadline = now + self.reorder_timeout_s if self._pending else None

    # ---- analysis helpers ----------------------------------------------------------------------------
    def context_before(self, seq: int) -> tuple[str, ...]:
        """Up to ``context_turns`` final utterances before ``seq``, oldest first (redacted)."""
        if self.context_turns == 0:
            return ()
        earlier: list[str] = []
        for line in reversed(self.transcript):
            if line.seq < seq:
                earlier.append(line.text)
                if len(earlier) == self.context_turns:
                    break
        return tuple(reversed(earlier))
