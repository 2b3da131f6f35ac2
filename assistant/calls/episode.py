"""Alert de-duplication: one supervisor alert per episode of abuse or escalation, not one per chunk.

An episode opens when the call severity reaches the alert level (``ASSISTANT_ALERT_LEVEL``, default ``high``)
or an utterance is flagged ``threat``, ``legal_threat`` or ``escalation_request`` (supervisors must hear of
those at once). While it is open, later flags send no new alert; a step-up of the severity level above the
level already alerted, or a new immediate label, sends an ``alert`` with ``update: true`` and the same id.
The episode closes when the severity decays below ``low`` (0.15), that is after quiet time or calm turns;
the next trigger opens a new episode and a new alert.

Example:
    >>> from assistant.calls.severity import SeverityReading
    >>> t = EpisodeTracker(alert_level="high")
    >>> t.update(SeverityReading(0.7, "high"), ["insult"]).kind
    'new'
    >>> t.update(SeverityReading(0.72, "high"), ["insult"]) is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from assistant.calls.severity import LEVEL_RANK, SeverityReading

IMMEDIATE: Final[dict[str, str]] = {
    "threat": "threat",
    "legal_threat": "legal",
    "escalation_request": "escalation",
}
_CLOSE_BELOW: Final = LEVEL_RANK["low"]


@dataclass(frozen=True, slots=True)
class AlertDecision:
    kind: Literal["new", "update"]
    episode: int
    reason: str
    labels: tuple[str, ...]


def _reason(labels: set[str]) -> str:
    if "threat" in labels:
        return "threat"
    if labels & {"profanity", "insult"}:
        return "abusive"
    if "legal_threat" in labels:
        return "legal"
    return "escalation"


@dataclass(slots=True)
class EpisodeTracker:
    """Per-call episode state; ``update`` is called after each final customer utterance."""

    alert_level: str = "high"
    episode: int = 0
    open: bool = False
    alerted_rank: int = 0
    labels: set[str] = field(default_factory=set)

    def update(self, reading: SeverityReading, flagged: list[str]) -> AlertDecision | None:
        rank = LEVEL_RANK[reading.level]
        immediate = {label for label in flagged if label in IMMEDIATE}
        triggered = rank >= LEVEL_RANK[self.alert_level] or bool(immediate)
        if self.open and rank < _CLOSE_BELOW and not flagged:
            self.open = False
        if not self.open:
            if not triggered:
                return None
            self.open = True
            self.episode += 1
            self.alerted_rank = rank
            self.labels = set(flagged)
            return AlertDecision("new", self.episode, _reason(self.labels), tuple(sorted(self.labels)))
        new_immediate = immediate - self.labels
        self.labels |= set(flagged)
        stepped_up = rank > self.alerted_rank and rank >= LEVEL_RANK[self.alert_level]
        if stepped_up or new_immediate:
            self.alerted_rank = max(self.alerted_rank, rank)
            return AlertDecision("update", self.episode, _reason(self.labels), tuple(sorted(self.labels)))
        return None

    def protocol_alert(self, labels: list[str]) -> AlertDecision | None:
        """An alert the abuse protocol asks for (``abuse-protocol.yaml``: ``supervisor_alert``), or None.

        With an episode open, supervisors already have this call's alert in front of them: nothing new is
        sent (one alert per episode). Otherwise a new episode opens with reason ``protocol``.
        """
        if self.open:
            return None
        self.open = True
        self.episode += 1
        self.labels = set(labels)
        return AlertDecision("new", self.episode, "protocol", tuple(sorted(self.labels)))
