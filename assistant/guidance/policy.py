"""The two policy files of call guidance, validated: call stages and steps, and the abuse protocol.

Both are YAML data (``knowledge_base/policies/``), not code, so a company changes its script or its abuse
protocol by editing a file. They are read once at start-up; a malformed file raises ``ConfigurationError``
naming the file and the field at fault, so the service never starts on a half-understood policy.

Example:
    >>> stages = load_stage_policy(DEFAULT_STAGES_FILE)
    >>> [s.id for s in stages.steps][:2]
    ['greeting_given', 'identity_verified']
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from assistant.errors import ConfigurationError
from assistant.settings import Settings

# The shipped policies (the settings' defaults, named here for tests and examples).
DEFAULT_STAGES_FILE: Path = Settings.model_fields["call_stages_file"].default
DEFAULT_PROTOCOL_FILE: Path = Settings.model_fields["abuse_protocol_file"].default

SpeakerName = Literal["agent", "customer"]
_ID = r"^[a-z][a-z0-9_]*$"
_BOTH: list[SpeakerName] = ["agent", "customer"]


def _compile(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p, re.IGNORECASE))
            re.compile(f"(?:{p})|(?:x)")  # lists are matched as one alternation: e.g. no global (?i) flags
        except re.error as e:
            raise ValueError(f"bad regular expression {p!r}: {e}") from e
    return tuple(out)


def _valid_patterns(patterns: list[str]) -> list[str]:
    _compile(patterns)
    return patterns


# A list of regular expressions, checked when a policy loads (case-insensitive, joinable into one alternation).
RegexList = Annotated[list[str], AfterValidator(_valid_patterns)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Patterns(_Strict):
    """A list of regular expressions, compiled once (case-insensitive)."""

    any: RegexList = Field(min_length=1)


@lru_cache(maxsize=4096)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return _compile(list(patterns))


@lru_cache(maxsize=4096)
def _joined(patterns: tuple[str, ...]) -> re.Pattern[str]:
    # One alternation instead of one search per pattern: a turn is scanned once per list (measured 2-3x faster).
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def matches(patterns: list[str], text: str) -> bool:
    """Whether any of the patterns occurs in ``text`` (case-insensitive)."""
    return bool(patterns) and _joined(tuple(patterns)).search(text) is not None


def first_match(patterns: list[str], text: str) -> re.Match[str] | None:
    """The first pattern's match in ``text`` (for patterns with named groups, e.g. a person's name)."""
    for p in _compiled(tuple(patterns)):
        m = p.search(text)
        if m is not None:
            return m
    return None


# ---- call stages and required steps ------------------------------------------------------------------------
class StageDef(_Strict):
    id: str = Field(pattern=_ID)
    title: str
    speakers: list[SpeakerName] = Field(default_factory=lambda: _BOTH.copy())
    cues: RegexList = Field(default_factory=list)
    from_: list[str] | None = Field(default=None, alias="from")


class StepRule(_Strict):
    speaker: SpeakerName
    any: RegexList = Field(min_length=1)
    all: RegexList = Field(default_factory=list)
    stages: list[str] = Field(default_factory=list)
    within_turns: int | None = Field(default=None, ge=1)
    reply: Patterns | None = None


class StepDef(_Strict):
    id: str = Field(pattern=_ID)
    title: str
    stage: str
    weight: float = Field(default=1.0, gt=0)
    rules: list[StepRule] = Field(min_length=1)


class NamePatterns(_Strict):
    """Patterns with a named group ``name`` that pick a person's name out of a turn."""

    agent: list[str] = Field(default_factory=list)
    customer: list[str] = Field(default_factory=list)

    @field_validator("agent", "customer")
    @classmethod
    def _check(cls, v: list[str]) -> list[str]:
        for p in _compile(v):
            if "name" not in p.groupindex:
                raise ValueError(f"pattern {p.pattern!r} has no (?P<name>...) group")
        return v


class SummaryDef(_Strict):
    """Patterns of the post-call summary: what the agent did, and what happens next."""

    done: RegexList = Field(default_factory=list)
    follow_up: RegexList = Field(default_factory=list)


class StagePolicy(_Strict):
    """``call-stages.yaml``: the stages of a call and the required steps (the QA checklist)."""

    version: Literal[1]
    stages: list[StageDef] = Field(min_length=1)
    steps: list[StepDef] = Field(min_length=1)
    names: NamePatterns = Field(default_factory=NamePatterns)
    summary: SummaryDef = Field(default_factory=SummaryDef)

    @model_validator(mode="after")
    def _references(self) -> StagePolicy:
        ids = [s.id for s in self.stages]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate stage ids in {ids}")
        known = set(ids)
        for s in self.stages:
            for f in s.from_ or []:
                if f not in known:
                    raise ValueError(f"stage {s.id!r}: 'from' names unknown stage {f!r}; known: {ids}")
        step_ids = [s.id for s in self.steps]
        if len(set(step_ids)) != len(step_ids):
            raise ValueError(f"duplicate step ids in {step_ids}")
        for step in self.steps:
            if step.stage not in known:
                raise ValueError(f"step {step.id!r}: unknown stage {step.stage!r}; known: {ids}")
            for rule in step.rules:
                for st in rule.stages:
                    if st not in known:
                        raise ValueError(f"step {step.id!r}: rule names unknown stage {st!r}; known: {ids}")
        return self

    def stage_index(self, stage_id: str) -> int:
        return [s.id for s in self.stages].index(stage_id)

    def allowed_from(self, stage: StageDef) -> set[str]:
        """The stages a call may move to ``stage`` from (default: every earlier stage)."""
        if stage.from_ is not None:
            return set(stage.from_)
        return {s.id for s in self.stages[: self.stage_index(stage.id)]}


# ---- the abuse protocol --------------------------------------------------------------------------------------
class SeverityDef(_Strict):
    id: str = Field(pattern=_ID)
    title: str
    labels: list[str] = Field(min_length=1)
    min_turns: int = Field(default=1, ge=1)


class ProtocolStepDef(_Strict):
    id: str = Field(pattern=_ID)
    title: str
    say: str = Field(min_length=1)
    said: RegexList = Field(min_length=1)
    due_at: str | None = None
    requires: list[str] = Field(default_factory=list)
    skip_to: list[str] = Field(default_factory=list)
    warning: bool = False  # a warning to the customer (listed under warnings_given in incident records)


class SupervisorAlertDef(_Strict):
    at_steps: list[str] = Field(default_factory=list)
    at_severity: list[str] = Field(default_factory=list)


class WellbeingAction(_Strict):
    id: str = Field(pattern=_ID)
    title: str
    detail: str = ""


class WellbeingDef(_Strict):
    offer_at: str
    actions: list[WellbeingAction] = Field(min_length=1)


class FollowUpDef(_Strict):
    when: str = Field(
        description="a red-flag label flagged on the call, or a protocol step id that became due"
    )
    action: str = Field(min_length=1)


class IncidentDef(_Strict):
    report_labels: list[str] = Field(min_length=1)
    handover: RegexList = Field(default_factory=list)
    follow_up: list[FollowUpDef] = Field(default_factory=list)


class ProtocolPolicy(_Strict):
    """``abuse-protocol.yaml``: severity by what was said and how often, the steps, alerts and well-being."""

    version: Literal[1]
    abusive_labels: list[str] = Field(min_length=1)
    severity: list[SeverityDef] = Field(min_length=1)
    steps: list[ProtocolStepDef] = Field(min_length=1)
    de_escalation: RegexList = Field(default_factory=list)
    may_end_call_at: str
    supervisor_alert: SupervisorAlertDef
    wellbeing: WellbeingDef
    incident: IncidentDef

    @model_validator(mode="after")
    def _references(self) -> ProtocolPolicy:
        from assistant.labels import LABELS

        for label in self.abusive_labels:
            if label not in LABELS:
                raise ValueError(f"abusive_labels: unknown red-flag label {label!r}; known: {list(LABELS)}")
        levels = [s.id for s in self.severity]
        if len(set(levels)) != len(levels):
            raise ValueError(f"duplicate severity ids in {levels}")
        for sev in self.severity:
            for label in sev.labels:
                if label not in self.abusive_labels:
                    raise ValueError(f"severity {sev.id!r}: label {label!r} is not in abusive_labels")
        steps = [s.id for s in self.steps]
        if len(set(steps)) != len(steps):
            raise ValueError(f"duplicate step ids in {steps}")
        for i, step in enumerate(self.steps):
            if step.due_at is not None and step.due_at not in levels:
                raise ValueError(f"step {step.id!r}: due_at {step.due_at!r} is not a severity id {levels}")
            for lvl in step.skip_to:
                if lvl not in levels:
                    raise ValueError(f"step {step.id!r}: skip_to {lvl!r} is not a severity id {levels}")
            for r in step.requires:
                if r not in steps[:i]:
                    raise ValueError(f"step {step.id!r}: requires {r!r}, which is not an earlier step")
        for name, ref in (
            ("may_end_call_at", self.may_end_call_at),
            ("wellbeing.offer_at", self.wellbeing.offer_at),
        ):
            if ref not in steps:
                raise ValueError(f"{name}: {ref!r} is not a step id {steps}")
        for ref in self.supervisor_alert.at_steps:
            if ref not in steps:
                raise ValueError(f"supervisor_alert.at_steps: {ref!r} is not a step id {steps}")
        for label in self.incident.report_labels:
            if label not in LABELS:
                raise ValueError(f"incident.report_labels: unknown red-flag label {label!r}")
        for fu in self.incident.follow_up:
            if fu.when not in LABELS and fu.when not in steps:
                raise ValueError(
                    f"incident.follow_up: 'when: {fu.when}' is neither a red-flag label nor a step id"
                )
        for ref in self.supervisor_alert.at_severity:
            if ref not in levels:
                raise ValueError(f"supervisor_alert.at_severity: {ref!r} is not a severity id {levels}")
        return self

    def severity_rank(self, level: str | None) -> int:
        """0 for no abuse, then 1.. in the file's order (lowest first)."""
        if level is None:
            return 0
        return [s.id for s in self.severity].index(level) + 1


# ---- loading ----------------------------------------------------------------------------------------------
_P = TypeVar("_P", StagePolicy, ProtocolPolicy)


def _load(path: Path, model: type[_P], setting: str) -> _P:
    if not path.is_file():
        raise ConfigurationError(f"{setting}: policy file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{setting}: {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{setting}: {path}: expected a mapping at the top, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()[:5]
        )
        raise ConfigurationError(f"{setting}: {path}: {problems}") from e


def load_stage_policy(path: Path) -> StagePolicy:
    """Read and validate ``call-stages.yaml``; ConfigurationError names the file and the field."""
    return _load(path, StagePolicy, "ASSISTANT_CALL_STAGES_FILE")


def load_protocol_policy(path: Path) -> ProtocolPolicy:
    """Read and validate ``abuse-protocol.yaml``; ConfigurationError names the file and the field."""
    return _load(path, ProtocolPolicy, "ASSISTANT_ABUSE_PROTOCOL_FILE")
