"""The post-call summary for the call log: reason for the call, what was done, outcome, follow-ups.

The SOP's call log keeps "timestamps, caller information, and the nature of the call"; the closing stage asks
the agent to record the reason, the outcome and any follow-up. This drafts them from the redacted transcript:

* reason: the customer's first turn that says more than hello;
* what was done: agent lines that report an action (``summary.done`` patterns in ``call-stages.yaml``);
* outcome: handed over to a supervisor, ended by the agent under the abuse protocol, resolved (the call
  reached closing), or open;
* follow-ups: agent lines promising what happens next (``summary.follow_up``), plus the incident follow-ups.

Example:
    >>> from assistant.guidance.facts import CallFacts, Turn
    >>> from assistant.guidance.policy import *
    >>> f = CallFacts("c1", turns=(Turn(1, "customer", "Hi, my router keeps dropping."),))
    >>> summarise_call(f, load_stage_policy(DEFAULT_STAGES_FILE), load_protocol_policy(DEFAULT_PROTOCOL_FILE)).reason
    'Hi, my router keeps dropping.'
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from assistant.guidance.facts import CallFacts, replay_trackers
from assistant.guidance.incident import needs_incident
from assistant.guidance.policy import ProtocolPolicy, StagePolicy, matches

_MIN_REASON_WORDS = 4  # "Hi." or "Hello?" is not a reason


class SummaryLine(BaseModel):
    seq: int
    text: str


class CallSummaryNote(BaseModel):
    """The call-log entry drafted when a call ends (``GET /v1/calls/{call_id}/summary``)."""

    call_id: str
    agent: str | None = None
    duration_s: float | None = None
    reason: str | None = Field(default=None, description="why the customer called, in their words (redacted)")
    done: list[SummaryLine] = Field(default_factory=list, description="what the agent did")
    outcome: str = Field(description="resolved, handed over, ended under the abuse protocol, or open")
    follow_ups: list[str] = Field(default_factory=list)
    red_flags: dict[str, int] = Field(default_factory=dict)
    qa_score: float | None = None
    incident: bool = Field(default=False, description="an incident record is due for this call")


def summarise_call(facts: CallFacts, stages: StagePolicy, protocol: ProtocolPolicy) -> CallSummaryNote:
    from assistant.guidance.qa import score_call

    st, pt = replay_trackers(facts, stages, protocol)
    pos = pt.position()
    turns = sorted(facts.turns, key=lambda t: t.seq)
    reason = next(
        (t.text for t in turns if t.speaker == "customer" and len(t.text.split()) >= _MIN_REASON_WORDS),
        next((t.text for t in turns if t.speaker == "customer"), None),
    )
    done = [
        SummaryLine(seq=t.seq, text=t.text)
        for t in turns
        if t.speaker == "agent" and matches(stages.summary.done, t.text)
    ]
    handover = next(
        (t.seq for t in turns if t.speaker == "agent" and matches(protocol.incident.handover, t.text)),
        None,
    )
    if pos.ended_by_agent_seq is not None:
        outcome = f"ended by the agent under the abuse protocol (seq {pos.ended_by_agent_seq})"
    elif handover is not None:
        outcome = f"handed over to a supervisor (seq {handover})"
    elif st.state.stage == "closing":
        outcome = "resolved on the call" if done else "closed without a recorded action"
    else:
        outcome = (
            "open: the call ended before the closing stage" if facts.status == "ended" else "call in progress"
        )
    follow_ups = [t.text for t in turns if t.speaker == "agent" and matches(stages.summary.follow_up, t.text)]
    incident = needs_incident(facts, protocol)
    if incident:
        reached = set(pos.reached) | set(facts.label_counts())
        follow_ups += [f.action for f in protocol.incident.follow_up if f.when in reached]
    return CallSummaryNote(
        call_id=facts.call_id,
        agent=facts.agent,
        duration_s=facts.handle_time_s,
        reason=reason,
        done=done,
        outcome=outcome,
        follow_ups=follow_ups,
        red_flags=facts.label_counts(),
        qa_score=score_call(stages, st.state).score,
        incident=incident,
    )
