"""The call snapshot: what a call resumes from, on this worker after a restart or on another one."""

from __future__ import annotations

import pytest

from assistant.calls.session import CallSession
from assistant.calls.snapshot import CallSnapshot, SnapshotError
from assistant.knowledge.advisor import ProcedureProgress
from assistant.testing import RuleAdvisor


def _session_with_history() -> CallSession:
    s = CallSession("c-snap", alert_level="high")
    for turn, flags in enumerate([{"insult": 0.9}, {"insult": 0.9, "profanity": 0.9}, {"threat": 0.9}], 1):
        s.customer_turns = turn
        reading = s.severity.observe(flags, turn=turn, t=5.0 * turn)
        decision = s.episodes.update(reading, list(flags))
        if decision is not None and decision.kind == "new":
            s.alert_ids[decision.episode] = f"alert-{decision.episode}"
        for label in flags:
            s.flag_counts[label] = s.flag_counts.get(label, 0) + 1
    s.shown_suggestions = (("abusive-caller", 1),)
    return s


def test_a_restored_session_goes_on_exactly_as_the_original() -> None:
    original = _session_with_history()
    snap = CallSnapshot.of(original, last_seq=6, last_eid=21, alert_updates={"alert-1": 2}, advisor_state={})
    restored = CallSession("c-snap", alert_level="high")
    CallSnapshot.from_json(snap.to_json()).apply(restored)
    for s in (original, restored):  # the same next turn on both
        s.customer_turns += 1
        s.severity.observe({"insult": 0.9}, turn=s.customer_turns, t=30.0)
    assert restored.severity.current == original.severity.current
    assert restored.severity.peak == original.severity.peak
    assert (restored.episodes.episode, restored.episodes.open) == (
        original.episodes.episode,
        original.episodes.open,
    )
    assert restored.episodes.labels == original.episodes.labels
    assert restored.alert_ids == original.alert_ids and restored.flag_counts == original.flag_counts
    assert restored.shown_suggestions == original.shown_suggestions
    assert snap.alert_updates == {"alert-1": 2} and snap.last_eid == 21


def test_advisor_states_round_trip() -> None:
    rule = RuleAdvisor()
    state = rule.start_call()
    rule.advise(state, speaker="customer", text="I want a manager now", context=(), flags=None)
    assert rule.restore_call(state.to_dict()).to_dict() == state.to_dict()
    kb = ProcedureProgress(
        turn=4, stage="problem_resolution", procedure_id="billing-inquiry", done={"x": [0, 1]}
    )
    assert ProcedureProgress.from_dict(kb.to_dict()) == kb


@pytest.mark.parametrize("text", ["not json", '{"version": 99}', '{"version": 1, "last_seq": 3}'])
def test_an_unreadable_snapshot_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(SnapshotError):
        CallSnapshot.from_json(text)


def test_snapshot_json_reads_back_with_non_ascii_text_numpy_scores_and_episode_numbers() -> None:
    import json

    import numpy as np

    s = _session_with_history()
    snap = CallSnapshot.of(
        s, last_seq=6, last_eid=21, alert_updates={}, advisor_state={"note": "José's café"}
    )
    snap.evidence = [(float(np.float32(0.25)), 1, 5.0), (np.float64(0.5), 2, 10.0)]  # type: ignore[list-item]
    text = snap.to_json()
    assert json.loads(text)["alert_ids"] == {"1": "alert-1"}  # JSON keys are strings, as before
    back = CallSnapshot.from_json(text)
    assert back.advisor_state == {"note": "José's café"}
    assert back.evidence == [(0.25, 1, 5.0), (0.5, 2, 10.0)]
    assert back.alert_ids == snap.alert_ids and back.to_json() == text
