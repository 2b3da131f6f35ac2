"""Binary metrics per label or group, shared by training (threshold choice) and evaluation."""

from __future__ import annotations

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

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def binary_scores(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> BinaryScores:
    """Precision, recall, F1 at ``threshold`` and ROC AUC (None when only one class is present)."""
    return decision_scores(y_true, y_score >= threshold, y_score)


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
    defined = y_score is not None and 0 < y_true.sum() < len(y_true)
    auc = round(float(roc_auc_score(y_true, y_score)), 4) if defined else None
    return BinaryScores(
        round(precision, 4), round(recall, 4), round(f1, 4), int(y_true.sum()), len(y_true), auc
    )


def best_threshold(
    y_true: np.ndarray, y_score: np.ndarray, *, floor: float = 0.05, ceil: float = 0.95
) -> float:
    """The threshold in [floor, ceil] that maximises F1; ties go to the higher (fewer false alarms)."""
    if y_true.sum() == 0:
        return 0.5
    candidates = np.unique(np.clip(y_score, floor, ceil))
    best_t, best_f1 = 0.5, -1.0
    for t in candidates:
        f1 = binary_scores(y_true, y_score, float(t)).f1
        if f1 >= best_f1:
            best_t, best_f1 = float(t), f1
    return round(best_t, 4)
