"""Stage tracking and script adherence on the demo transcripts and on edge cases."""

from __future__ import annotations

from collections.abc import Callable

from assistant.guidance.facts import CallFacts, replay_trackers
from assistant.guidance.policy import ProtocolPolicy, StagePolicy
from assistant.guidance.qa import score_call
from assistant.guidance.stages import StageState, StageTracker


def _qa(facts: CallFacts, stages: StagePolicy, protocol: ProtocolPolicy):  # type: ignore[no-untyped-def]
    st, _ = replay_trackers(facts, stages, protocol)
    return score_call(stages, st.state, call_id=facts.call_id), st


def test_stages_abusive_demo_sequence_and_adherence(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    qa, _ = _qa(demo("billing-dispute-abusive"), stage_policy, protocol_policy)
    assert [(s.stage, s.seq) for s in qa.stages] == [
        ("greeting", 1),
        ("identification", 3),
        ("problem_resolution", 5),
        ("information_sharing", 7),
        ("problem_resolution", 13),
        ("information_sharing", 13),
        ("closing", 17),
    ]
    steps = {s.step: s for s in qa.steps}
    assert steps["greeting_given"].done and steps["greeting_given"].seq == 1
    assert steps["greeting_given"].evidence.startswith(
        "Thank you for calling Northwind Telecom, this is Sam."
    )
    assert steps["identity_verified"].seq == 3 and steps["identity_verified"].reply_seq == 4
    assert "confirm the account holder's name" in steps["identity_verified"].evidence
    assert steps["further_help_offered"].seq == 17
    assert (
        steps["further_help_offered"].evidence
        == "It will be. Is there anything else I can help you with today?"
    )
    # The agent never restated the issue nor thanked the caller at the close.
    assert not steps["issue_summarised"].done and steps["issue_summarised"].evidence is None
    assert not steps["customer_thanked"].done
    assert qa.score == 0.6 and (qa.done, qa.required) == (3, 5)


def test_stages_manager_demo_summary_by_restating_the_request(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    qa, _ = _qa(demo("manager-request"), stage_policy, protocol_policy)
    assert [s.stage for s in qa.stages] == ["greeting", "identification", "problem_resolution"]
    steps = {s.step: s for s in qa.steps}
    assert steps["issue_summarised"].seq == 7
    assert steps["issue_summarised"].evidence.startswith(
        "I understand you'd like to speak with a supervisor."
    )
    assert not steps["further_help_offered"].done
    assert qa.score == 0.6


def test_stages_calm_demo_one_turn_passes_through_two_stages(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    qa, _ = _qa(demo("calm-call"), stage_policy, protocol_policy)
    # "Done. You'll get a confirmation message ..." resolves and informs in one turn; the customer closes.
    assert [(s.stage, s.seq) for s in qa.stages] == [
        ("greeting", 1),
        ("identification", 3),
        ("problem_resolution", 7),
        ("information_sharing", 7),
        ("closing", 10),
    ]
    assert [s.step for s in qa.steps if s.done] == ["greeting_given", "identity_verified"]
    assert qa.score == 0.4


def test_stages_greeting_counts_only_in_the_agents_first_turns(stage_policy: StagePolicy) -> None:
    t = StageTracker(stage_policy)
    t.observe(1, "agent", "Hello?")
    t.observe(2, "customer", "Hi, is this support?")
    t.observe(3, "agent", "Yes.")
    t.observe(4, "agent", "This is Sam, how can I help?")  # third agent turn: too late for the greeting
    assert "greeting_given" not in t.state.steps


def test_stages_thanks_in_the_greeting_is_not_the_closing_thanks(stage_policy: StagePolicy) -> None:
    t = StageTracker(stage_policy)
    t.observe(1, "agent", "Thank you for calling Acme, this is Sam. How can I help you today?")
    assert t.state.stage == "greeting"
    assert "customer_thanked" not in t.state.steps
    t.observe(2, "customer", "My account number is 1234, I need a new router.")
    t.observe(3, "agent", "Is there anything else I can help with?")
    t.observe(4, "agent", "Thank you for calling, goodbye.")
    assert t.state.stage == "closing"
    assert t.state.steps["customer_thanked"].seq == 4


def test_stages_identity_needs_the_customers_answer(stage_policy: StagePolicy) -> None:
    t = StageTracker(stage_policy)
    t.observe(1, "agent", "Can I take your date of birth, please?")
    u = t.observe(2, "customer", "Why do you need that?")  # no details given
    assert "identity_verified" not in u.steps_done and "identity_verified" not in t.state.steps
    t.observe(3, "agent", "For your security, could you confirm the postcode on the account?")
    u = t.observe(4, "customer", "Sure, it's M1 4BT.")
    assert u.steps_done == ("identity_verified",)
    done = t.state.steps["identity_verified"]
    assert (done.seq, done.reply_seq) == (3, 4)


def test_stages_state_round_trips_and_old_seqs_are_ignored(stage_policy: StagePolicy) -> None:
    t = StageTracker(stage_policy)
    t.observe(1, "agent", "Hello, this is Sam. How can I help?")
    t.observe(2, "agent", "Can I have your account number?")
    restored = StageTracker(stage_policy, StageState.from_dict(t.state.to_dict()))
    assert restored.state == t.state
    assert not restored.observe(2, "customer", "It's 12345678").changed  # seq 2 was seen
    assert restored.observe(3, "customer", "It's [NUMBER]").steps_done == ("identity_verified",)
