"""Where a call stands in its five stages, and which required steps the agent carried out, with evidence.

A pure state machine fed one final turn at a time, ``(seq, speaker, text)``, from both speakers. The cues and
step rules are data (``call-stages.yaml``, see :mod:`assistant.guidance.policy`); matching is lexical (compiled
regular expressions on the redacted turn), so it costs microseconds per turn and needs no model.

Stage transitions follow the policy's ``from`` lists (the call never returns to the greeting; a closing call may
reopen). A step is done by the first turn that satisfies one of its rules; it stays done, with the seq and the
line that did it (the evidence), which is what the sidebar's checklist ticks and the QA view shows.

Example:
    >>> from assistant.guidance.policy import DEFAULT_STAGES_FILE, load_stage_policy
    >>> t = StageTracker(load_stage_policy(DEFAULT_STAGES_FILE))
    >>> _ = t.observe(1, "agent", "Thank you for calling Acme, this is Sam. How can I help you today?")
    >>> t.state.steps["greeting_given"].seq, t.state.stage
    (1, 'greeting')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistant.guidance.policy import StagePolicy, StepRule, matches
from assistant.plain import plain


@dataclass(slots=True)
class StepDone:
    """A required step the agent carried out: when, and the line that did it."""

    seq: int
    evidence: str
    speaker: str
    reply_seq: int | None = None  # for steps that need the other speaker's reply (identity verified)


@dataclass(slots=True)
class StageEntry:
    stage: str
    seq: int


@dataclass(slots=True)
class _Pending:
    """A step whose asking turn matched; it is done when the other speaker's next turn matches the reply."""

    step: str
    seq: int
    evidence: str
    speaker: str


@dataclass(slots=True)
class StageState:
    """Storable state of one call's stage tracking (``to_dict``/``from_dict``)."""

    stage: str | None = None
    sequence: list[StageEntry] = field(default_factory=list)
    steps: dict[str, StepDone] = field(default_factory=dict)
    turns: dict[str, int] = field(default_factory=dict)  # speaker -> turns seen
    pending: list[_Pending] = field(default_factory=list)
    last_seq: int = -1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageState:
        return cls(
            stage=data.get("stage"),
            sequence=[StageEntry(**e) for e in data.get("sequence", [])],
            steps={k: StepDone(**v) for k, v in data.get("steps", {}).items()},
            turns=dict(data.get("turns", {})),
            pending=[_Pending(**p) for p in data.get("pending", [])],
            last_seq=int(data.get("last_seq", -1)),
        )


@dataclass(frozen=True, slots=True)
class StageUpdate:
    """What one turn changed: stages entered (in order) and steps completed by it."""

    seq: int
    stages_entered: tuple[str, ...] = ()
    steps_done: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.stages_entered or self.steps_done)


class StageTracker:
    """Tracks one call's stage and required steps; ``observe`` each final turn in seq order.

    Turns at or below the last seen seq are ignored (a replayed or restored turn never counts twice).
    """

    def __init__(self, policy: StagePolicy, state: StageState | None = None) -> None:
        self.policy = policy
        self.state = state if state is not None else StageState()

    def observe(self, seq: int, speaker: str, text: str) -> StageUpdate:
        st = self.state
        if seq <= st.last_seq:
            return StageUpdate(seq)
        st.last_seq = seq
        st.turns[speaker] = st.turns.get(speaker, 0) + 1
        entered: list[str] = []
        if st.stage is None:
            first = self.policy.stages[0].id
            st.stage = first
            st.sequence.append(StageEntry(first, seq))
            entered.append(first)
        for stage in self.policy.stages:
            if speaker not in stage.speakers or not stage.cues or stage.id == st.stage:
                continue
            if st.stage not in self.policy.allowed_from(stage):
                continue
            if matches(stage.cues, text):
                st.stage = stage.id
                st.sequence.append(StageEntry(stage.id, seq))
                entered.append(stage.id)
        done = self._replies(seq, speaker, text)
        for step in self.policy.steps:
            if step.id in st.steps or any(p.step == step.id for p in st.pending):
                continue
            for rule in step.rules:
                if self._rule_holds(rule, speaker, text):
                    if rule.reply is not None:
                        st.pending.append(_Pending(step.id, seq, text, speaker))
                    else:
                        st.steps[step.id] = StepDone(seq, text, speaker)
                        done.append(step.id)
                    break
        return StageUpdate(seq, tuple(entered), tuple(done))

    def _rule_holds(self, rule: StepRule, speaker: str, text: str) -> bool:
        if rule.speaker != speaker:
            return False
        if rule.within_turns is not None and self.state.turns.get(speaker, 0) > rule.within_turns:
            return False
        if rule.stages and self.state.stage not in rule.stages:
            return False
        if not matches(rule.any, text):
            return False
        return all(matches([p], text) for p in rule.all)

    def _replies(self, seq: int, speaker: str, text: str) -> list[str]:
        """Complete or drop the steps waiting for this speaker's reply (only the very next turn counts)."""
        done: list[str] = []
        keep: list[_Pending] = []
        rules = {s.id: s.rules for s in self.policy.steps}
        for p in self.state.pending:
            if p.speaker == speaker:
                keep.append(p)  # the same speaker again: still waiting for the other side
                continue
            reply = next((r.reply for r in rules.get(p.step, []) if r.reply is not None), None)
            if reply is not None and matches(reply.any, text):
                self.state.steps[p.step] = StepDone(p.seq, p.evidence, p.speaker, reply_seq=seq)
                done.append(p.step)
            # no match: the request went unanswered; a later request can still complete the step
        self.state.pending = keep
        return done
