"""Where a call stands in the abuse protocol: severity, the step due, the warnings given, alerts, well-being.

A pure state machine over the call's turns, in seq order: ``observe_customer`` with the red-flag labels the
classifier flagged on a customer turn, ``observe_agent`` with the agent's words (did the agent redirect, warn,
end the call?). The rules are data (``abuse-protocol.yaml``, see :mod:`assistant.guidance.policy`):

* the call's severity is the highest level whose labels were seen on at least ``min_turns`` abusive turns;
* a step becomes due when the severity reaches its ``due_at``, or when the customer is abusive again after the
  agent carried out the step before it; never before the steps it ``requires`` were carried out, unless the
  severity is in its ``skip_to`` (a threat: the call may be ended at once);
* the agent carried out a step when one of its ``said`` patterns matches an agent turn after the abuse began;
* supervisors are alerted, and well-being actions offered, when the policy's steps or severities are reached;
* the agent may end the call once ``may_end_call_at`` is due.

Example:
    >>> from assistant.guidance.policy import DEFAULT_PROTOCOL_FILE, load_protocol_policy
    >>> p = ProtocolTracker(load_protocol_policy(DEFAULT_PROTOCOL_FILE))
    >>> _ = p.observe_customer(8, ["insult"], "You people are useless.")
    >>> p.state.severity, p.position().due
    ('medium', 'redirect')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from assistant.guidance.policy import ProtocolPolicy, matches
from assistant.plain import plain


@dataclass(slots=True)
class ProtocolStepState:
    due_seq: int | None = None
    given_seq: int | None = None
    evidence: str | None = None  # the agent's line that carried the step out


@dataclass(slots=True)
class AbusiveTurn:
    seq: int
    labels: list[str]
    text: str


@dataclass(slots=True)
class ProtocolState:
    """Storable state of one call in the abuse protocol (``to_dict``/``from_dict``)."""

    severity: str | None = None
    severity_seq: int | None = None
    abusive: list[AbusiveTurn] = field(default_factory=list)
    steps: dict[str, ProtocolStepState] = field(default_factory=dict)
    supervisor_alert_seq: int | None = None
    supervisor_alert_reason: str | None = None
    wellbeing_seq: int | None = None
    ended_by_agent_seq: int | None = None
    last_seq: int = -1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtocolState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["abusive"] = [AbusiveTurn(**a) for a in data.get("abusive", [])]
        known["steps"] = {k: ProtocolStepState(**v) for k, v in data.get("steps", {}).items()}
        return cls(**known)


class ProtocolStepView(BaseModel):
    step: str
    title: str
    say: str
    due: bool
    due_seq: int | None = None
    given: bool
    given_seq: int | None = None
    evidence: str | None = None


class WellbeingView(BaseModel):
    id: str
    title: str
    detail: str


class ProtocolPosition(BaseModel):
    """Where the call stands in the protocol (the sidebar's protocol panel; stored with the call)."""

    active: bool = Field(description="the customer was abusive at least once")
    severity: str | None = None
    severity_title: str | None = None
    abusive_turns: int = 0
    due: str | None = Field(default=None, description="the step the agent should carry out now, if any")
    say: str | None = Field(default=None, description="what the agent says for the step due")
    reached: list[str] = Field(default_factory=list, description="steps that became due, in order")
    may_end_call: bool = False
    supervisor_alerted: bool = False
    supervisor_alert_seq: int | None = None
    supervisor_alert_reason: str | None = None
    wellbeing: list[WellbeingView] = Field(default_factory=list)
    ended_by_agent_seq: int | None = None
    steps: list[ProtocolStepView] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProtocolUpdate:
    """What one turn changed (for events): steps newly due or carried out, and alerts or offers fired."""

    seq: int
    due: tuple[str, ...] = ()
    given: tuple[str, ...] = ()
    severity_changed: bool = False
    supervisor_alert: bool = False
    wellbeing_offered: bool = False
    ended_by_agent: bool = False

    @property
    def changed(self) -> bool:
        return bool(
            self.due
            or self.given
            or self.severity_changed
            or self.supervisor_alert
            or self.wellbeing_offered
            or self.ended_by_agent
        )


class ProtocolTracker:
    """One call's position in the abuse protocol; feed turns in seq order (older seqs are ignored)."""

    def __init__(self, policy: ProtocolPolicy, state: ProtocolState | None = None) -> None:
        self.policy = policy
        self.state = state if state is not None else ProtocolState()
        for step in policy.steps:
            self.state.steps.setdefault(step.id, ProtocolStepState())

    # ---- input ------------------------------------------------------------------------------------------
    def observe_customer(self, seq: int, labels: list[str] | tuple[str, ...], text: str) -> ProtocolUpdate:
        """A final customer turn and the red-flag labels flagged on it."""
        st = self.state
        if seq <= st.last_seq:
            return ProtocolUpdate(seq)
        st.last_seq = seq
        abusive = [label for label in labels if label in self.policy.abusive_labels]
        if not abusive:
            return ProtocolUpdate(seq)
        st.abusive.append(AbusiveTurn(seq, sorted(abusive), text))
        before = st.severity
        st.severity = self._severity()
        if st.severity != before:
            st.severity_seq = seq
        due = self._advance(seq)
        alert = self._maybe_alert(seq)
        offered = self._maybe_offer(seq)
        return ProtocolUpdate(
            seq,
            due=tuple(due),
            severity_changed=st.severity != before,
            supervisor_alert=alert,
            wellbeing_offered=offered,
        )

    def observe_agent(self, seq: int, text: str) -> ProtocolUpdate:
        """A final agent turn: marks the protocol steps it carries out (only once the abuse began)."""
        st = self.state
        if seq <= st.last_seq:
            return ProtocolUpdate(seq)
        st.last_seq = seq
        if not st.abusive:
            return ProtocolUpdate(seq)
        given: list[str] = []
        for step in self.policy.steps:
            s = st.steps[step.id]
            if s.given_seq is not None:
                continue
            # A step counts only when due, or when what it requires was done on an earlier turn: "if this goes
            # on I will end the call" is a warning, not the end of the call.
            ready = all(
                st.steps[r].given_seq is not None and st.steps[r].given_seq != seq for r in step.requires
            )
            if (s.due_seq is not None or ready) and matches(step.said, text):
                s.given_seq, s.evidence = seq, text
                given.append(step.id)
        ended = False
        end_id = self.policy.steps[-1].id
        if end_id in given and st.ended_by_agent_seq is None:
            st.ended_by_agent_seq = seq
            ended = True
        return ProtocolUpdate(seq, given=tuple(given), ended_by_agent=ended)

    # ---- rules ------------------------------------------------------------------------------------------
    def _severity(self) -> str | None:
        level: str | None = None
        for sev in self.policy.severity:  # lowest first; the last rule that holds wins
            turns = sum(1 for a in self.state.abusive if set(a.labels) & set(sev.labels))
            if turns >= sev.min_turns:
                level = sev.id
        return level

    def _advance(self, seq: int) -> list[str]:
        st = self.state
        rank = self.policy.severity_rank(st.severity)
        newly: list[str] = []
        for i, step in enumerate(self.policy.steps):
            s = st.steps[step.id]
            if s.due_seq is not None:
                continue
            by_level = step.due_at is not None and rank >= self.policy.severity_rank(step.due_at)
            prev = st.steps[self.policy.steps[i - 1].id] if i > 0 else None
            persisted = prev is not None and prev.given_seq is not None and prev.given_seq < seq
            if not (by_level or persisted):
                continue
            skip = st.severity in step.skip_to
            if not skip and any(st.steps[r].given_seq is None for r in step.requires):
                continue
            s.due_seq = seq
            newly.append(step.id)
        return newly

    def _maybe_alert(self, seq: int) -> bool:
        st = self.state
        if st.supervisor_alert_seq is not None:
            return False
        cfg = self.policy.supervisor_alert
        reason = None
        if st.severity in cfg.at_severity:
            reason = f"severity {st.severity}"
        for sid in cfg.at_steps:
            if reason is None and st.steps[sid].due_seq is not None:
                reason = f"{sid} due"
        if reason is None:
            return False
        st.supervisor_alert_seq, st.supervisor_alert_reason = seq, reason
        return True

    def _maybe_offer(self, seq: int) -> bool:
        st = self.state
        if st.wellbeing_seq is not None or st.steps[self.policy.wellbeing.offer_at].due_seq is None:
            return False
        st.wellbeing_seq = seq
        return True

    # ---- output -----------------------------------------------------------------------------------------
    def position(self) -> ProtocolPosition:
        """Where the call stands now."""
        st = self.state
        views: list[ProtocolStepView] = []
        due: str | None = None
        say: str | None = None
        for step in self.policy.steps:
            s = st.steps[step.id]
            views.append(
                ProtocolStepView(
                    step=step.id,
                    title=step.title,
                    say=step.say,
                    due=s.due_seq is not None,
                    due_seq=s.due_seq,
                    given=s.given_seq is not None,
                    given_seq=s.given_seq,
                    evidence=s.evidence,
                )
            )
            if s.due_seq is not None and s.given_seq is None:
                due, say = step.id, step.say  # the furthest step due and not yet carried out
        reached = [v.step for v in sorted((v for v in views if v.due), key=lambda v: v.due_seq or 0)]
        sev_title = next((s.title for s in self.policy.severity if s.id == st.severity), None)
        offer = self.policy.wellbeing
        return ProtocolPosition(
            active=bool(st.abusive),
            severity=st.severity,
            severity_title=sev_title,
            abusive_turns=len(st.abusive),
            due=due,
            say=say,
            reached=reached,
            may_end_call=st.steps[self.policy.may_end_call_at].due_seq is not None,
            supervisor_alerted=st.supervisor_alert_seq is not None,
            supervisor_alert_seq=st.supervisor_alert_seq,
            supervisor_alert_reason=st.supervisor_alert_reason,
            wellbeing=[WellbeingView(id=a.id, title=a.title, detail=a.detail) for a in offer.actions]
            if st.wellbeing_seq is not None
            else [],
            ended_by_agent_seq=st.ended_by_agent_seq,
            steps=views,
        )
