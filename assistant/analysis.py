"""One-shot analysis of a single utterance: red flags, a severity reading and next-step suggestions.

The one path for ``assistant analyze`` (CLI), ``POST /v1/analyze`` (through the service's batcher, see
``assistant.calls.pipeline``) and the advisor tests; a live call keeps per-call state instead.

Example:
    >>> from assistant.testing import KeywordAnalyzer, RuleAdvisor
    >>> analyze_once(KeywordAnalyzer(), RuleAdvisor(), "you idiot").flags.flagged
    ['insult']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from assistant.calls.severity import intensity, level_of
from assistant.errors import InvalidInputError
from assistant.types import (
    NextStepAdvisor,
    RedFlagAnalyzer,
    RedFlagResult,
    Speaker,
    Suggestion,
    Utterance,
    shares_query_vectors,
)

MAX_ANALYZE_CHARS = 100_000


@dataclass(frozen=True)
class Analysis:
    text: str
    flags: RedFlagResult
    suggestions: list[Suggestion] = field(default_factory=list)

    @property
    def severity(self) -> float:
        """The severity one utterance alone gives (the same curve a call's severity follows)."""
        probs = {label: self.flags.labels[label].probability for label in self.flags.flagged}
        return round(1 - math.exp(-intensity(probs)), 4)

    def to_dict(self) -> dict[str, Any]:
        """The ``assistant analyze`` output: flagged labels with spans, every score, suggestions."""
        flagged = [
            {
                "label": name,
                "probability": self.flags.labels[name].probability,
                "spans": [
                    {"start": s.start, "end": s.end, "text": s.text, "weight": s.weight}
                    for s in self.flags.labels[name].spans
                ],
            }
            for name in self.flags.flagged
        ]
        return {
            "flags": flagged,
            "scores": {name: s.probability for name, s in self.flags.labels.items()},
            "groups": self.flags.groups,
            "truncated": self.flags.truncated,
            "suggestions": [s.to_dict() for s in self.suggestions],
        }

    def to_response(self) -> dict[str, Any]:
        """The ``POST /v1/analyze`` body: the (redacted) text, the full flag result, severity, suggestions."""
        return {
            "text": self.text,
            "flags": self.flags.to_dict(),
            "severity": {"score": self.severity, "level": level_of(self.severity)},
            "suggestions": [x.to_dict() for x in self.suggestions],
        }


def suggest_once(
    advisor: NextStepAdvisor,
    text: str,
    context: tuple[str, ...] | list[str] = (),
    flags: RedFlagResult | None = None,
    *,
    speaker: Speaker = "customer",
    vector: Any | None = None,
) -> list[Suggestion]:
    """Suggestions for one utterance on a fresh call, the earlier turns passed as context.

    ``vector``: the utterance's query vector when one is at hand (the red-flag pass's); else the advisor
    encodes the text.
    """
    state = advisor.start_call()
    return advisor.advise(
        state, speaker=speaker, text=text, context=tuple(context), flags=flags, vector=vector
    )


def analyze_once(
    analyzer: RedFlagAnalyzer,
    advisor: NextStepAdvisor | None,
    text: str,
    context: tuple[str, ...] = (),
    *,
    speaker: str = "customer",
) -> Analysis:
    """Flags and suggestions for one customer utterance with optional earlier turns (oldest first)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"expected text as a string, got {type(text).__name__}")
    if len(text) > MAX_ANALYZE_CHARS:
        raise InvalidInputError(
            f"text has {len(text)} characters, more than {MAX_ANALYZE_CHARS}; send the recent part only"
        )
    flags = analyzer.predict([Utterance(text, tuple(context))])[0]
    suggestions: list[Suggestion] = []
    if advisor is not None and text.strip():
        who: Speaker = "agent" if speaker == "agent" else "customer"
        # The vector a live call's customer turn would search with: the red-flag pass's, where it has one.
        vector = flags.query_vector if who == "customer" and shares_query_vectors(analyzer, advisor) else None
        suggestions = suggest_once(advisor, text, context, flags, speaker=who, vector=vector)
    return Analysis(text=text, flags=flags, suggestions=suggestions)
