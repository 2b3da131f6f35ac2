"""Script adherence and the QA score of a call: which required steps were done, when, and the line that did it.

``score`` is the weighted share of the policy's required steps the agent carried out, in [0, 1]. It is what
``GET /v1/calls/{call_id}/qa`` returns, and what the supervisor report averages per agent.

Example:
    >>> from assistant.guidance.policy import DEFAULT_STAGES_FILE, load_stage_policy
    >>> from assistant.guidance.stages import StageTracker
    >>> policy = load_stage_policy(DEFAULT_STAGES_FILE)
    >>> t = StageTracker(policy)
    >>> _ = t.observe(1, "agent", "Hello, Acme, this is Sam. How can I help?")
    >>> qa = score_call(policy, t.state)
    >>> qa.score, [s.step for s in qa.steps if s.done]
    (0.2, ['greeting_given'])
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from assistant.guidance.policy import StagePolicy
from assistant.guidance.stages import StageState


class QAStep(BaseModel):
    step: str = Field(description="the step's id in call-stages.yaml")
    title: str
    stage: str
    done: bool
    seq: int | None = Field(default=None, description="the turn that did it")
    evidence: str | None = Field(default=None, description="the line that did it (redacted)")
    reply_seq: int | None = Field(default=None, description="the other speaker's reply that completed it")
    weight: float = 1.0


class QAStage(BaseModel):
    stage: str
    seq: int


class QAResult(BaseModel):
    """The call's adherence to the required steps (``GET /v1/calls/{call_id}/qa``)."""

    call_id: str = ""
    agent: str | None = None
    score: float = Field(ge=0.0, le=1.0)
    done: int
    required: int
    stage: str | None = Field(default=None, description="the stage the call is in now")
    stages: list[QAStage] = Field(default_factory=list, description="stages entered, in order, with the seq")
    steps: list[QAStep]


def score_call(
    policy: StagePolicy, state: StageState, *, call_id: str = "", agent: str | None = None
) -> QAResult:
    """The QA result of a call from its stage-tracking state."""
    steps: list[QAStep] = []
    total = 0.0
    got = 0.0
    for step in policy.steps:
        d = state.steps.get(step.id)
        total += step.weight
        if d is not None:
            got += step.weight
        steps.append(
            QAStep(
                step=step.id,
                title=step.title,
                stage=step.stage,
                done=d is not None,
                seq=d.seq if d else None,
                evidence=d.evidence if d else None,
                reply_seq=d.reply_seq if d else None,
                weight=step.weight,
            )
        )
    return QAResult(
        call_id=call_id,
        agent=agent,
        score=round(got / total, 4) if total else 0.0,
        done=sum(1 for s in steps if s.done),
        required=len(steps),
        stage=state.stage,
        stages=[QAStage(stage=e.stage, seq=e.seq) for e in state.sequence],
        steps=steps,
    )
