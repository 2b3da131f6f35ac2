"""Call-level severity: frequency, intensity and persistence of red flags, decaying over time and turns.

Each customer utterance ``i`` contributes its intensity ``x_i = min(1.5, sum_l w_l * p_l)`` over its flagged
labels ``l`` (probability ``p_l``, weight ``w_l`` from ``LABEL_WEIGHTS``). The call's evidence after the latest
customer turn ``n`` at call time ``t`` is

    E = sum_i x_i * turn_decay ** (n - n_i) * 0.5 ** ((t - t_i) / half_life_s)

and the severity is ``S = 1 - exp(-E)`` in [0, 1). So one swear word (x = 0.35 * p) stays ``low``; a threat of
violence alone reaches ``high``; repeated insults climb turn after turn while calm turns and quiet time bring
the score back down. Levels: none < 0.15 <= low < 0.40 <= medium < 0.65 <= high < 0.85 <= critical.

Example:
    >>> s = CallSeverity()
    >>> s.observe({"profanity": 0.9}, turn=1, t=3.0).level
    'low'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

LABEL_WEIGHTS: Final[dict[str, float]] = {
    "threat": 1.2,
    "insult": 0.6,
    "profanity": 0.35,
    "legal_threat": 0.7,
    "escalation_request": 0.45,
    "churn_risk": 0.4,
    "frustration": 0.25,
}
MAX_UTTERANCE_INTENSITY: Final = 1.5
LEVELS: Final[tuple[tuple[str, float], ...]] = (
    ("critical", 0.85),
    ("high", 0.65),
    ("medium", 0.40),
    ("low", 0.15),
    ("none", 0.0),
)
LEVEL_RANK: Final[dict[str, int]] = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def level_of(score: float) -> str:
    for name, threshold in LEVELS:
        if score >= threshold:
            return name
    return "none"


def intensity(flags: dict[str, float]) -> float:
    """An utterance's intensity from its flagged labels and their probabilities."""
    raw = sum(LABEL_WEIGHTS.get(label, 0.0) * p for label, p in flags.items())
    return min(MAX_UTTERANCE_INTENSITY, raw)


@dataclass(frozen=True, slots=True)
class SeverityReading:
    score: float
    level: str


@dataclass(slots=True)
class _Evidence:
    x: float
    turn: int
    t: float


@dataclass(slots=True)
class CallSeverity:
    """Running call severity; ``observe`` is called once per final customer utterance, in order."""

    half_life_s: float = 60.0
    turn_decay: float = 0.75
    _evidence: list[_Evidence] = field(default_factory=list)
    current: SeverityReading = field(default_factory=lambda: SeverityReading(0.0, "none"))
    peak: SeverityReading = field(default_factory=lambda: SeverityReading(0.0, "none"))

    def observe(self, flags: dict[str, float], *, turn: int, t: float) -> SeverityReading:
        """Add an utterance (its flagged labels -> probability) at customer turn ``turn``, call time ``t``."""
        x = intensity(flags)
        if x > 0:
            self._evidence.append(_Evidence(x, turn, t))
        evidence = 0.0
        keep: list[_Evidence] = []
        for ev in self._evidence:
            w = (
                ev.x
                * self.turn_decay ** max(0, turn - ev.turn)
                * 0.5 ** (max(0.0, t - ev.t) / self.half_life_s)
            )
            if w > 1e-3:  # forget evidence that no longer counts, so memory stays flat on long calls
                keep.append(ev)
                evidence += w
        self._evidence = keep
        score = round(1.0 - math.exp(-evidence), 4)
        self.current = SeverityReading(score, level_of(score))
        if score > self.peak.score:
            self.peak = self.current
        return self.current
