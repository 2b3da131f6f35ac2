"""Binary metrics per label or group, shared by training (threshold choice) and evaluation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True, slots=True)
class BinaryScores:
    precision: float
    recall: float
    f1: float
    support: int  # positives
    n: int  # rows scored
    roc_auc: float | None
    # Mean F1 of the positive and the negative class: the binary figure abuse-detection papers usually
    # report (e.g. for ConvAbuse); ``f1`` is the positive class alone, the stricter one our targets use.
    f1_macro: float = 0.0

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def decision_scores(y_true: np.ndarray, pred: np.ndarray, y_score: np.ndarray | None) -> BinaryScores:
    """Precision, recall, F1 of boolean decisions; ROC AUC from ``y_score`` when given and defined."""
    y_true = y_true.astype(bool)
    pred = pred.astype(bool)
    tp = int((pred & y_true).sum())
    fp = int((pred & ~y_true).sum())
    fn = int((~pred & y_true).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tn = len(y_true) - tp - fp - fn
    f1_neg = 2 * tn / (2 * tn + fp + fn) if tn + fp + fn else 0.0
    defined = y_score is not None and 0 < y_true.sum() < len(y_true)
    auc = round(float(roc_auc_score(y_true, y_score)), 4) if defined else None
    return BinaryScores(
        round(precision, 4),
        round(recall, 4),
        round(f1, 4),
        int(y_true.sum()),
        len(y_true),
        auc,
        round((f1 + f1_neg) / 2, 4),
    )


def best_threshold(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    floor: float = 0.05,
    ceil: float = 0.95,
) -> float:
    """The threshold in [floor, ceil] that maximises (weighted) F1; ties go to the higher one.

    ``weights`` let each data source count equally however many rows it has, so a large source cannot set
    a threshold that fails the small, in-domain ones.
    """
    y = y_true.astype(bool)
    if y.sum() == 0:
        return 0.5
    w = np.ones(len(y)) if weights is None else weights.astype(float)
    order = np.argsort(-y_score)
    s, yy, ww = y_score[order], y[order], w[order]
    tp = np.cumsum(ww * yy)  # predicting positive for rows 0..k
    fp = np.cumsum(ww * ~yy)
    total_pos = float((ww * yy).sum())
    f1 = 2 * tp / (2 * tp + fp + (total_pos - tp))
    ok = (s >= floor) & (s <= ceil)
    # Only the last row of a run of equal scores is a realisable cut-off.
    last = np.r_[s[1:] != s[:-1], True]
    valid = ok & last
    if not valid.any():
        return 0.5
    cand = np.flatnonzero(valid)
    best = cand[np.argmax(f1[cand])]
    # Rounded down so the chosen row stays on the positive side of the saved threshold.
    return float(np.floor(s[best] * 1e4) / 1e4)


def source_weights(sources: Sequence[str]) -> np.ndarray:
    """Row weights that make every source count equally: 1 / (rows of that source).

    The rule for choosing thresholds on validation rows, for the model and its baselines alike: a tweet corpus
    of thousands must not set the threshold that a few hundred dialogue turns then live with.

    Example:
        >>> source_weights(["a", "a", "b"]).tolist()
        [0.5, 0.5, 1.0]
    """
    counts = Counter(sources)
    return np.array([1.0 / counts[s] for s in sources], dtype=float)
