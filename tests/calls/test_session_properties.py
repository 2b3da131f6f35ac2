"""Property tests (hypothesis) on the call session's ordering rules: whatever a source sends (duplicates,
reorderings, gaps, partials, resends after a reconnect, absurd seqs), the transcript is one consistent,
increasing sequence and nothing acknowledged is lost."""

from __future__ import annotations

import sys
import tracemalloc
from dataclasses import dataclass

from hypothesis import given, note, settings
from hypothesis import strategies as st

from assistant.calls.session import MAX_SEQ, CallSession, CallState, ChunkData

WINDOW = 4
JUMP = 50


@dataclass(frozen=True)
class Send:
    seq: int
    variant: int  # 0: the true text of this seq; 1: a conflicting text
    final: bool


@dataclass(frozen=True)
class Tick:
    seconds: float


@dataclass(frozen=True)
class Reconnect:
    """The source drops and comes back: it resends everything after ``ready.last_seq``."""


def _text(seq: int, variant: int) -> str:
    return f"utterance {seq}" if variant == 0 else f"other {seq}"


seqs = st.one_of(
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=40).map(lambda s: s + JUMP + 10),  # too far ahead
    st.sampled_from([MAX_SEQ, MAX_SEQ + 1, 10**30]),
)
ops = st.lists(
    st.one_of(
        st.builds(
            Send, seq=seqs, variant=st.sampled_from([0, 0, 0, 1]), final=st.sampled_from([True, True, False])
        ),
        st.builds(Tick, seconds=st.sampled_from([0.1, 0.5, 2.0])),
        st.just(Reconnect()),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_any_sequence_of_chunks_gives_one_consistent_transcript(
    script: list[Send | Tick | Reconnect],
) -> None:
    note(repr(script))
    s = CallSession("c", reorder_window=WINDOW, reorder_timeout_s=1.0, max_seq_jump=JUMP)
    s.transition(CallState.LIVE)
    now = 0.0
    processed: list[ChunkData] = []
    gaps: list[tuple[int, int]] = []
    acked: dict[
        int, str
    ] = {}  # seq -> text of the final chunk acknowledged (not as a duplicate, not refused)
    sent_ok: dict[int, str] = {}

    def record(res) -> None:  # type: ignore[no-untyped-def]
        processed.extend(res.ready)
        gaps.extend((g.first_missing, g.last_missing) for g in res.gaps)

    for op in script:
        if isinstance(op, Tick):
            now += op.seconds
            record(s.expire_gap(now=now))
        elif isinstance(op, Reconnect):
            s.transition(CallState.DETACHED)
            s.transition(CallState.LIVE)
            for seq in sorted(sent_ok):
                if seq > s.last_seq:
                    res = s.ingest(ChunkData(seq=seq, speaker="customer", text=sent_ok[seq]), now=now)
                    assert res.error is None or res.error[0] == "seq_backwards"
                    record(res)
        else:
            text = _text(op.seq, op.variant)
            res = s.ingest(ChunkData(seq=op.seq, speaker="customer", text=text, is_final=op.final), now=now)
            if op.seq > MAX_SEQ:
                assert res.error is not None and res.error[0] == "seq_out_of_range"
            if res.error is None and op.final and not res.duplicate:
                assert op.seq not in acked, "a seq acknowledged twice as new"
                acked[op.seq] = text
                sent_ok[op.seq] = text
            record(res)
        assert s.pending_count <= WINDOW
        assert len(s.partials) <= WINDOW
    # The call ends: whatever is held is released.
    record(s.release_all())
    assert s.pending_count == 0

    got = [c.seq for c in processed]
    assert got == sorted(set(got)), "each seq at most once, in increasing order"
    assert [line.seq for line in s.transcript] == got
    # Nothing acknowledged is lost or changed: every acked final chunk was processed, with its text.
    assert {c.seq: c.text for c in processed} == acked
    # Gaps and processed seqs never overlap, and gaps only name seqs that were never processed.
    for first, last in gaps:
        assert first <= last
        assert not any(first <= q <= last for q in got)
    assert s.last_seq == (max(got + [last for _, last in gaps]) if (got or gaps) else -1)


def test_seq_jump_and_huge_seq_refused_without_memory() -> None:
    """seq 0 then 20,000,000 (the issue's attack): refused; no set of missing seqs is ever built."""
    s = CallSession("c", max_seq_jump=100_000)
    s.ingest(ChunkData(seq=0, speaker="customer", text="hi"), now=0)
    tracemalloc.start()
    try:
        r = s.ingest(ChunkData(seq=20_000_000, speaker="customer", text="x"), now=0)
        r2 = s.ingest(ChunkData(seq=10**30, speaker="customer", text="x"), now=0)
        # A jump within the limit is held, and the gap it leaves is one range, whatever its size.
        s.ingest(ChunkData(seq=99_000, speaker="customer", text="y"), now=0)
        r3 = s.expire_gap(now=10.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.error is not None and r.error[0] == "seq_too_far_ahead"
    assert r2.error is not None and r2.error[0] == "seq_out_of_range"
    assert [(g.first_missing, g.last_missing) for g in r3.gaps] == [(1, 98_999)]
    assert peak < 200_000, peak  # bytes: a set of 99,000 ints would be several MB
    assert sys.getsizeof(s.__dict__ if hasattr(s, "__dict__") else s) < 10_000
