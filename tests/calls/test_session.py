from __future__ import annotations

import pytest

from assistant.calls.session import CallSession, CallState, ChunkData, InvalidTransition


def _c(seq: int, text: str = "t", *, final: bool = True) -> ChunkData:
    return ChunkData(seq=seq, speaker="customer", text=f"{text}{seq}", is_final=final)


def test_session_in_order_and_duplicates() -> None:
    s = CallSession("c")
    assert [c.seq for c in s.ingest(_c(0), now=0).ready] == [0]
    assert s.ingest(_c(0), now=0).duplicate
    assert s.ingest(_c(0, "other"), now=0).error is not None


def test_session_reorder_within_window() -> None:
    s = CallSession("c", reorder_window=4)
    s.ingest(_c(1), now=0)
    assert s.ingest(_c(3), now=0).buffered
    assert s.ingest(_c(4), now=0).buffered
    assert [c.seq for c in s.ingest(_c(2), now=0).ready] == [2, 3, 4]
    assert s.gap_deadline is None


def test_session_gap_on_window_overflow_and_timeout() -> None:
    s = CallSession("c", reorder_window=2, reorder_timeout_s=1.0)
    s.ingest(_c(1), now=0)
    s.ingest(_c(3), now=0)
    s.ingest(_c(4), now=0)
    r = s.ingest(_c(5), now=0)  # third held chunk: over the window
    assert [(g.first_missing, g.last_missing, g.reason) for g in r.gaps] == [(2, 2, "window")]
    assert [c.seq for c in r.ready] == [3, 4, 5]
    s.ingest(_c(7), now=10.0)
    assert s.expire_gap(now=10.5).ready == []
    r = s.expire_gap(now=11.0)
    assert [g.reason for g in r.gaps] == ["timeout"] and [c.seq for c in r.ready] == [7]
    assert s.ingest(_c(6), now=12).error is not None


def test_session_partial_then_final() -> None:
    s = CallSession("c")
    r = s.ingest(_c(1, "par", final=False), now=0)
    assert r.partial is not None and not r.ready and 1 in s.partials
    s.ingest(_c(1), now=0)
    assert 1 not in s.partials and s.ingest(_c(1, "late", final=False), now=0).duplicate


def test_session_state_machine_rejects_bad_transitions() -> None:
    s = CallSession("c")
    s.transition(CallState.LIVE)
    s.transition(CallState.DETACHED)
    s.transition(CallState.LIVE)
    s.transition(CallState.ENDED)
    with pytest.raises(InvalidTransition):
        s.transition(CallState.LIVE)
    assert s.ingest(_c(1), now=0).error is not None


def test_session_call_end_releases_chunks_behind_several_holes() -> None:
    """Chunks held behind two holes are all processed when the call ends (one gap event per hole)."""
    s = CallSession("c", reorder_window=8)
    s.ingest(_c(0), now=0)
    s.ingest(_c(2), now=0)
    s.ingest(_c(5), now=0)
    r = s.release_all()
    assert [c.seq for c in r.ready] == [2, 5]
    assert [(g.first_missing, g.last_missing, g.reason) for g in r.gaps] == [(1, 1, "end"), (3, 4, "end")]


def test_analysis_state_is_released_only_once_the_call_has_ended() -> None:
    s = CallSession("c-release")
    s.transition(CallState.LIVE)
    s.ingest(ChunkData(seq=1, speaker="customer", text="hello"), now=0.0)
    with pytest.raises(InvalidTransition, match="only once it has ended"):
        s.release_analysis_state()
    assert len(s.transcript) == 1
    s.transition(CallState.ENDED)
    s.release_analysis_state()
    assert s.transcript == [] and s.guidance is None and s.advisor_state is None
    assert s.last_seq == 1 and s.state is CallState.ENDED  # what it still answers stays
