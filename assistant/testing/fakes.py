"""Deterministic stand-ins with the real interfaces, for fast tests and model-free demos.

``KeywordAnalyzer`` implements ``RedFlagAnalyzer`` with a keyword list; ``RuleAdvisor`` implements
``NextStepAdvisor`` with three SOPs of ``knowledge_base/`` chosen by rules. Neither is a model: use them where speed and
determinism matter more than accuracy (``ASSISTANT_USE_FAKE_MODELS=1``).

Example:
    >>> from assistant.types import Utterance
    >>> KeywordAnalyzer().predict([Utterance("you useless idiot")])[0].flagged
    ['insult']
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from assistant.errors import ConfigurationError
from assistant.knowledge.document import Procedure, parse_file
from assistant.labels import GROUPS, LABELS
from assistant.settings import PROJECT_ROOT
from assistant.types import (
    AdvisorState,
    LabelScore,
    RedFlagResult,
    Span,
    Speaker,
    Suggestion,
    Utterance,
)

KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
    "profanity": ("damn", "hell", "shit", "fuck", "fucking", "crap", "bloody", "bullshit"),
    "insult": ("idiot", "useless", "stupid", "moron", "incompetent", "pathetic", "clown"),
    "threat": ("where you live", "hurt you", "kill", "regret this", "come down there"),
    "escalation_request": ("manager", "supervisor", "someone else", "transfer me", "real person"),
    "legal_threat": ("lawyer", "sue", "court", "ombudsman", "regulator", "the press"),
    "churn_risk": ("cancel", "close my account", "competitor", "switch to", "leave you"),
    "frustration": ("ridiculous", "third time", "fed up", "unacceptable", "frustrat", "again", "still not"),
}
_PATTERNS: Final[dict[str, re.Pattern[str]]] = {
    label: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\w*", re.IGNORECASE)
    for label, words in KEYWORDS.items()
}


class KeywordAnalyzer:
    """Flags a label with probability 0.9 when one of its keywords occurs, else 0.05.

    ``model_ms`` simulates a model pass: each batch sleeps that long per utterance (sleeping, not computing,
    so that several workers on a small machine show how the coordination scales, not how the cores do).
    """

    def __init__(self, *, threshold: float = 0.5, model_ms: float = 0.0) -> None:
        self.threshold = threshold
        self.model_ms = model_ms
        self.calls = 0  # number of predict() calls (batches), for tests of micro-batching
        self.batch_sizes: list[int] = []

    def warm_up(self) -> None:
        return None

    def predict(self, utterances: list[Utterance]) -> list[RedFlagResult]:
        self.calls += 1
        self.batch_sizes.append(len(utterances))
        if self.model_ms > 0:
            time.sleep(self.model_ms / 1000.0 * len(utterances))
        return [self._one(u.text) for u in utterances]

    def _one(self, text: str) -> RedFlagResult:
        labels: dict[str, LabelScore] = {}
        for label in LABELS:
            matches = list(_PATTERNS[label].finditer(text))
            p = 0.9 if matches else 0.05
            spans = tuple(Span(m.start(), m.end(), m.group(), 1.0) for m in matches)
            labels[label] = LabelScore(label, p, self.threshold, p >= self.threshold, spans)
        groups = {g: max(labels[m].probability for m in members) for g, members in GROUPS.items()}
        return RedFlagResult(labels=labels, groups=groups)


# The SOPs the rule advisor follows, read from the shipped knowledge base (the same files the real advisor
# indexes), so the stand-in never shows steps or scripts the product does not have.
RULE_PROCEDURES: Final[tuple[str, ...]] = ("abusive-caller", "escalation-to-supervisor", "billing-inquiry")


def load_procedures(
    folder: Path = PROJECT_ROOT / "knowledge_base", ids: tuple[str, ...] = RULE_PROCEDURES
) -> dict[str, Procedure]:
    """The SOPs ``ids`` parsed from ``folder/<id>.md``; a missing or broken file is a ConfigurationError."""
    out: dict[str, Procedure] = {}
    for proc_id in ids:
        parsed = parse_file(folder / f"{proc_id}.md", root=folder)
        if parsed.procedure is None:
            problems = "; ".join(str(p) for p in parsed.problems) or "no procedure"
            raise ConfigurationError(f"the rule advisor needs {folder / proc_id}.md: {problems}")
        out[proc_id] = parsed.procedure
    return out


_TRIGGERS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("escalation-to-supervisor", re.compile(r"\b(manager|supervisor)\b", re.IGNORECASE)),
    ("billing-inquiry", re.compile(r"\b(bill|billing|charged?|refund|invoice)\b", re.IGNORECASE)),
)


@dataclass(slots=True)
class RuleAdvisorState:
    procedure_id: str | None = None
    step_index: int = 0
    done: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"procedure_id": self.procedure_id, "step_index": self.step_index, "done": list(self.done)}


class RuleAdvisor:
    """Picks a procedure from the red flags and a few trigger words; agent turns advance the step."""

    def __init__(self, procedures: dict[str, Procedure] | None = None) -> None:
        self.procedures = procedures if procedures is not None else load_procedures()

    def warm_up(self) -> None:
        return None

    def start_call(self) -> AdvisorState:
        return RuleAdvisorState()

    def restore_call(self, data: dict[str, Any]) -> AdvisorState:
        """The state ``to_dict`` wrote (a call resumed after a restart or on another worker)."""
        return RuleAdvisorState(
            procedure_id=data.get("procedure_id"),
            step_index=int(data.get("step_index", 0)),
            done=[int(x) for x in data.get("done", [])],
        )

    def query_encoder(self) -> None:
        return None  # no encoder: nothing to batch

    def needs_vector(self, speaker: Speaker) -> bool:
        return False  # rules, no vectors

    def procedure(self, procedure_id: str) -> Procedure | None:
        return self.procedures.get(procedure_id)

    def advise(
        self,
        state: AdvisorState,
        *,
        speaker: Speaker,
        text: str,
        context: tuple[str, ...],
        flags: RedFlagResult | None,
        vector: Any | None = None,
    ) -> list[Suggestion]:
        if not isinstance(state, RuleAdvisorState):
            raise TypeError(f"expected RuleAdvisorState from start_call(), got {type(state).__name__}")
        if speaker == "agent":
            if state.procedure_id is not None:
                proc = self.procedures[state.procedure_id]
                state.done.append(state.step_index)
                state.step_index = min(state.step_index + 1, len(proc.steps) - 1)
            return self._suggest(state, "step done by the agent")
        chosen = self._choose(text, flags)
        if chosen is not None and chosen != state.procedure_id:
            state.procedure_id, state.step_index, state.done = chosen, 0, []
            return self._suggest(state, f"customer turn matched {chosen}")
        return self._suggest(state, "procedure under way")

    def _choose(self, text: str, flags: RedFlagResult | None) -> str | None:
        flagged = set(flags.flagged) if flags is not None else set()
        if flagged & {"profanity", "insult", "threat"}:
            return "abusive-caller"
        for proc_id, pattern in _TRIGGERS:
            if pattern.search(text):
                return proc_id
        return None

    def _suggest(self, state: RuleAdvisorState, reason: str) -> list[Suggestion]:
        if state.procedure_id is None:
            return []
        proc = self.procedures[state.procedure_id]
        step = proc.steps[state.step_index]
        return [
            Suggestion(
                procedure_id=proc.id,
                procedure_title=proc.title,
                step_index=state.step_index,
                step_count=len(proc.steps),
                step=f"{step.title}. {step.action}".strip(),
                script=step.script,
                source=proc.step_source(state.step_index),
                score=0.9,
                reason=reason,
                stage=proc.stage,
            )
        ]
