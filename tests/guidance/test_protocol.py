"""The abuse protocol state machine: severity, steps due and given, alerts, well-being, ending the call."""

from __future__ import annotations

from collections.abc import Callable

from assistant.guidance.facts import CallFacts, replay_trackers
from assistant.guidance.policy import ProtocolPolicy, StagePolicy
from assistant.guidance.protocol import ProtocolState, ProtocolTracker

FIRST = "I'm here to help, but I can't continue if the language stays abusive."
FINAL = "This is my final warning: if this continues I will end the call."
END = "As I explained, I'm ending this call now."


def test_protocol_abusive_demo_levels_reached(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    _, pt = replay_trackers(demo("billing-dispute-abusive"), stage_policy, protocol_policy)
    pos = pt.position()
    assert pos.reached == ["redirect", "first_warning", "final_warning"]
    steps = {s.step: s for s in pos.steps}
    assert (steps["redirect"].due_seq, steps["redirect"].given_seq) == (8, 9)
    assert (steps["first_warning"].due_seq, steps["first_warning"].given_seq) == (10, 11)
    assert steps["first_warning"].evidence.startswith("I'm here to help, but I can't continue")
    assert (steps["final_warning"].due_seq, steps["final_warning"].given_seq) == (12, None)
    assert pos.due == "final_warning" and pos.say is not None and "final warning" in pos.say
    assert pos.severity == "high" and pos.abusive_turns == 4
    assert not pos.may_end_call  # the final warning was never given
    assert (pos.supervisor_alerted, pos.supervisor_alert_seq) == (True, 12)
    assert [w.id for w in pos.wellbeing] == ["short_break", "supervisor_join"]


def test_protocol_calm_and_manager_demos_stay_inactive(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    for name in ("calm-call", "manager-request"):
        _, pt = replay_trackers(demo(name), stage_policy, protocol_policy)
        pos = pt.position()
        assert not pos.active and pos.reached == [] and pos.due is None and pos.wellbeing == []


def test_protocol_no_final_warning_before_a_first(protocol_policy: ProtocolPolicy) -> None:
    p = ProtocolTracker(protocol_policy)
    for seq in (1, 3, 5, 7, 9):  # the agent never answers: abuse on five turns
        p.observe_customer(seq, ["insult"], "you idiot")
    pos = p.position()
    assert pos.reached == ["redirect", "first_warning"]  # persistent abuse: a warning is due, not a final one
    assert pos.due == "first_warning" and not pos.may_end_call


def test_protocol_full_ladder_to_ending_the_call(protocol_policy: ProtocolPolicy) -> None:
    p = ProtocolTracker(protocol_policy)
    p.observe_customer(1, ["profanity"], "damn it")
    assert p.state.severity == "low" and p.position().due == "redirect"
    p.observe_agent(2, "Let's get back to your bill.")
    p.observe_customer(3, ["insult"], "you idiot")
    assert p.position().due == "first_warning"
    p.observe_agent(4, FIRST)
    u = p.observe_customer(5, ["insult"], "moron")
    assert u.due == ("final_warning",) and u.supervisor_alert
    p.observe_agent(6, FINAL)
    u = p.observe_customer(7, ["insult"], "pathetic")
    assert u.due == ("end_call",) and p.position().may_end_call
    u = p.observe_agent(8, END)
    assert u.ended_by_agent and p.position().ended_by_agent_seq == 8
    assert p.position().due is None


def test_protocol_threat_allows_ending_at_once(protocol_policy: ProtocolPolicy) -> None:
    p = ProtocolTracker(protocol_policy)
    u = p.observe_customer(4, ["threat"], "I know where you live")
    pos = p.position()
    assert p.state.severity == "severe"
    assert "end_call" in u.due and pos.may_end_call
    assert pos.supervisor_alerted and pos.supervisor_alert_reason == "severity severe"


def test_protocol_agent_lines_before_any_abuse_do_not_count(protocol_policy: ProtocolPolicy) -> None:
    p = ProtocolTracker(protocol_policy)
    p.observe_agent(1, "I want to help you with this; let's focus on the bill.")
    assert p.state.steps["redirect"].given_seq is None
    p.observe_customer(2, ["frustration"], "this is ridiculous")  # not an abusive label
    assert not p.position().active


def test_protocol_state_round_trips(protocol_policy: ProtocolPolicy) -> None:
    p = ProtocolTracker(protocol_policy)
    p.observe_customer(1, ["insult"], "idiot")
    p.observe_agent(2, "I want to help, let's focus on the refund.")
    restored = ProtocolTracker(protocol_policy, ProtocolState.from_dict(p.state.to_dict()))
    assert restored.position() == p.position()
    assert not restored.observe_customer(1, ["insult"], "idiot").changed  # already seen
    assert restored.observe_customer(3, ["insult"], "idiot").due == ("first_warning",)
