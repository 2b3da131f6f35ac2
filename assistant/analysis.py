"""One-shot analysis of a single utterance: red flags plus next-step suggestions.

Used by ``assistant analyze`` and ``POST /v1/analyze``; the streaming service keeps per-call state instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistant.errors import InvalidInputError
from assistant.types import NextStepAdvisor, RedFlagAnalyzer, RedFlagResult, Speaker, Suggestion, Utterance

MAX_ANALYZE_CHARS = 100_000


@dataclass(frozen=True)
class Analysis:
    text: str
    flags: RedFlagResult
    suggestions: list[Suggestion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
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
        # Same as POST /v1/analyze: a fresh call state, the earlier turns passed as context.
        who: Speaker = "agent" if speaker == "agent" else "customer"
        state = advisor.start_call()
        suggestions = advisor.advise(state, speaker=who, text=text, context=tuple(context), flags=flags)
    return Analysis(text=text, flags=flags, suggestions=suggestions)
