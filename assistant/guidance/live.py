"""Guidance for one live call: the stage tracker and the abuse protocol side by side, storable as one dict.

The call pipeline calls ``observe`` once per final turn, in seq order, after the turn's red flags are known.
It returns a ``guidance`` event payload when anything changed (a stage entered, a step done, the protocol
moved), else None. Every payload is complete (the whole checklist and protocol position), so a sidebar that
connects late needs only the newest one.

Example:
    >>> from assistant.guidance.policies import load_policies
    >>> from assistant.settings import Settings
    >>> g = CallGuidance(load_policies(Settings()))
    >>> ev = g.observe(1, "agent", "Hello, Acme, this is Sam. How can I help?", [])
    >>> ev["type"], ev["steps_done"], ev["score"]
    ('guidance', ['greeting_given'], 0.2)
"""

from __future__ import annotations

from typing import Any

from assistant.guidance.policies import GuidancePolicies
from assistant.guidance.protocol import ProtocolState, ProtocolTracker
from assistant.guidance.qa import QAResult, score_call
from assistant.guidance.stages import StageState, StageTracker


class CallGuidance:
    """Per-call stage and protocol state (owned by the call session; ``to_dict``/``from_dict`` to store)."""

    def __init__(self, policies: GuidancePolicies, state: dict[str, Any] | None = None) -> None:
        self.policies = policies
        state = state or {}
        self.stages = StageTracker(policies.stages, StageState.from_dict(state.get("stages", {})))
        self.protocol = ProtocolTracker(policies.protocol, ProtocolState.from_dict(state.get("protocol", {})))

    def to_dict(self) -> dict[str, Any]:
        return {"stages": self.stages.state.to_dict(), "protocol": self.protocol.state.to_dict()}

    def observe(self, seq: int, speaker: str, text: str, labels: list[str]) -> dict[str, Any] | None:
        """One final, redacted turn with its flagged labels; the ``guidance`` event payload if anything changed."""
        su = self.stages.observe(seq, speaker, text)
        if speaker == "customer":
            pu = self.protocol.observe_customer(seq, labels, text)
        else:
            pu = self.protocol.observe_agent(seq, text)
        if not (su.changed or pu.changed):
            return None
        return self.payload(
            seq=seq,
            stages_entered=list(su.stages_entered),
            steps_done=list(su.steps_done),
            protocol_due=list(pu.due),
            protocol_given=list(pu.given),
            supervisor_alert=pu.supervisor_alert,
            wellbeing_offered=pu.wellbeing_offered,
        )

    def qa(self, *, call_id: str = "", agent: str | None = None) -> QAResult:
        return score_call(self.policies.stages, self.stages.state, call_id=call_id, agent=agent)

    def payload(
        self,
        *,
        seq: int,
        stages_entered: list[str] | None = None,
        steps_done: list[str] | None = None,
        protocol_due: list[str] | None = None,
        protocol_given: list[str] | None = None,
        supervisor_alert: bool = False,
        wellbeing_offered: bool = False,
    ) -> dict[str, Any]:
        qa = self.qa()
        return {
            "type": "guidance",
            "seq": seq,
            "stage": qa.stage,
            "stages_entered": stages_entered or [],
            "steps_done": steps_done or [],
            "score": qa.score,
            "checklist": [s.model_dump(exclude={"weight"}) for s in qa.steps],
            "protocol": self.protocol.position().model_dump(),
            "protocol_due": protocol_due or [],
            "protocol_given": protocol_given or [],
            "supervisor_alert": supervisor_alert,
            "wellbeing_offered": wellbeing_offered,
        }
