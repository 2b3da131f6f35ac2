"""The red-flag label set fixed by the product contract (shared/PRODUCT.md)."""

from __future__ import annotations

from typing import Final

ABUSIVE: Final = ("profanity", "insult", "threat")
ESCALATION: Final = ("escalation_request", "legal_threat", "churn_risk", "frustration")
LABELS: Final[tuple[str, ...]] = ABUSIVE + ESCALATION
GROUPS: Final[dict[str, tuple[str, ...]]] = {"abusive": ABUSIVE, "escalation": ESCALATION}
LABEL_TO_GROUP: Final[dict[str, str]] = {label: g for g, members in GROUPS.items() for label in members}


def is_known(name: str) -> bool:
    """True for a label or a group name."""
    return name in LABEL_TO_GROUP or name in GROUPS


def expand(names: list[str] | tuple[str, ...]) -> set[str]:
    """Labels plus the groups they imply: ``["insult"]`` -> ``{"insult", "abusive"}``."""
    out: set[str] = set()
    for n in names:
        out.add(n)
        if n in LABEL_TO_GROUP:
            out.add(LABEL_TO_GROUP[n])
    return out
