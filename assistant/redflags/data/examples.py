"""The row types of red-flag data: a training example and an evaluation-file row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Split = Literal["train", "valid", "test"]
SPLITS: Final[tuple[Split, ...]] = ("train", "valid", "test")
SPLIT_RANK: Final[dict[str, int]] = {"train": 0, "valid": 1, "test": 2}


@dataclass(frozen=True, slots=True)
class Example:
    """One utterance with its red-flag labels, the labels its source decides, and its fixed split.

    Example:
        >>> e = Example("get me your manager", (), frozenset({"escalation_request"}),
        ...             frozenset({"escalation_request"}), "written", "train", "w1")
        >>> e.is_positive
        True
    """

    text: str
    context: tuple[str, ...]  # earlier turns, oldest first
    labels: frozenset[str]  # subset of LABELS
    known: frozenset[str]  # labels this row's annotation decides; labels <= known
    source: str
    split: Split
    id: str  # stable within the source
    # Training targets that are a share of annotators rather than 0/1, e.g. (("insult", 2 / 3),) for a row
    # two of three ConvAbuse annotators called abusive; ``labels`` keeps the majority decision for scoring.
    soft: tuple[tuple[str, float], ...] = ()

    @property
    def is_positive(self) -> bool:
        return bool(self.labels)


@dataclass(frozen=True, slots=True)
class EvalRow:
    """One row of a red-flag evaluation file (``shared/PRODUCT.md``): labels may be labels or group names."""

    text: str
    context: tuple[str, ...]
    labels: frozenset[str]
