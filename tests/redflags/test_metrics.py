"""Every function that makes a reported red-flag number, against expectations computed by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

from assistant.labels import LABELS
from assistant.redflags.data import Example
from assistant.redflags.metrics import best_threshold, decision_scores, source_weights
from assistant.redflags.recipe import source_metrics
from assistant.redflags.training import choose_thresholds
from assistant.types import Utterance


def test_decision_scores_by_hand() -> None:
    # tp = rows 0 and 4, fp = row 2, fn = row 1, tn = row 3.
    y = np.array([1, 1, 0, 0, 1])
    pred = np.array([1, 0, 1, 0, 1])
    score = np.array([0.9, 0.4, 0.6, 0.2, 0.8])
    s = decision_scores(y, pred, score)
    assert (s.precision, s.recall, s.f1) == (0.6667, 0.6667, 0.6667)  # 2/3 each
    assert (s.support, s.n) == (3, 5)
    # Negative class: tn 1, fp 1, fn 1 -> F1 2/4 = 0.5; mean of both classes (2/3 + 1/2) / 2 = 0.5833.
    assert s.f1_macro == 0.5833
    # Positive/negative pairs ranked right: 0.9 and 0.8 beat both negatives, 0.4 beats only 0.2 -> 5/6.
    assert s.roc_auc == 0.8333


def test_roc_auc_counts_ties_as_half_and_is_undefined_with_one_class() -> None:
    s = decision_scores(np.array([1, 0, 1]), np.array([1, 1, 0]), np.array([0.5, 0.5, 0.9]))
    assert s.roc_auc == 0.75  # pairs (0.5 vs 0.5) = 1/2, (0.9 vs 0.5) = 1 -> 1.5 / 2
    assert decision_scores(np.array([0, 0]), np.array([0, 1]), np.array([0.1, 0.7])).roc_auc is None
    assert decision_scores(np.array([1, 0]), np.array([1, 0]), None).roc_auc is None


def test_decision_scores_without_predicted_positives_is_zero_not_nan() -> None:
    s = decision_scores(np.array([1, 0, 0]), np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)
    assert s.f1_macro == 0.4  # negative class: tn 2, fn 1 -> 4/5 = 0.8; (0 + 0.8) / 2


def test_decisions_at_a_threshold_are_inclusive() -> None:
    score = np.array([0.5, 0.49, 0.7, 0.8])
    s = decision_scores(np.array([1, 0, 1, 0]), score >= 0.5, score)
    # >= 0.5: rows 0, 2, 3 -> tp 2, fp 1, fn 0.
    assert (s.precision, s.recall, s.f1) == (0.6667, 1.0, 0.8)


def test_best_threshold_by_hand() -> None:
    y = np.array([1, 0, 1, 0])
    score = np.array([0.9, 0.8, 0.7, 0.1])
    # Cut after 0.9: F1 2/3; after 0.8: 1/2; after 0.7: tp 2 fp 1 -> 4/5; after 0.1: 4/6.
    assert best_threshold(y, score) == 0.7
    # Weight the 0.8 negative 3x: after 0.9 -> 2/3; after 0.7 -> 4/(4+3) = 0.571; so 0.9 wins.
    assert best_threshold(y, score, weights=np.array([1.0, 3.0, 1.0, 1.0])) == 0.9


def test_best_threshold_ties_floor_ceil_and_no_positives() -> None:
    # Equal scores are one cut: after both 0.8 rows, F1 2/3 beats 1/2 after 0.3.
    assert best_threshold(np.array([1, 0, 0]), np.array([0.8, 0.8, 0.3])) == 0.8
    # 0.99 is above ceil 0.95, so the only allowed cut is at 0.5.
    assert best_threshold(np.array([1, 0]), np.array([0.99, 0.5])) == 0.5
    # A tie in F1 goes to the higher threshold: after 0.9 (tp1 fp0 fn1) and after 0.6 (tp2 fp2) both 2/3.
    assert best_threshold(np.array([1, 0, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.1])) == 0.9
    assert best_threshold(np.array([0, 0]), np.array([0.3, 0.4])) == 0.5
    # Rounded down to 4 places so the chosen row stays positive.
    assert best_threshold(np.array([1, 0]), np.array([0.123456, 0.1])) == 0.1234


def test_source_weights_make_sources_count_equally() -> None:
    assert source_weights(["big", "big", "big", "big", "small"]).tolist() == [0.25, 0.25, 0.25, 0.25, 1.0]


@dataclass
class _Config:
    thresholds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LABELS, 0.5))


class _StubClassifier:
    """Returns fixed probabilities per text, as the real classifier's ``probabilities`` would."""

    def __init__(self, probs: dict[str, dict[str, float]]) -> None:
        self.probs = probs
        self.config = _Config()

    def probabilities(self, batch: list[Utterance]) -> torch.Tensor:
        return torch.tensor([[self.probs[u.text].get(label, 0.0) for label in LABELS] for u in batch])


def _ex(text: str, source: str, labels: set[str], known: set[str]) -> Example:
    return Example(text, (), frozenset(labels), frozenset(known), source, "valid", text)


def test_choose_thresholds_weights_each_source_equally() -> None:
    rows = [
        _ex("b1", "big", {"insult"}, {"insult"}),
        _ex("b2", "big", set(), {"insult"}),
        _ex("b3", "big", set(), {"insult"}),
        _ex("b4", "big", set(), {"insult"}),
        _ex("s1", "small", {"insult"}, {"insult"}),
    ]
    clf: Any = _StubClassifier(
        {
            "b1": {"insult": 0.9},
            "b2": {"insult": 0.8},
            "b3": {"insult": 0.7},
            "b4": {"insult": 0.6},
            "s1": {"insult": 0.65},
        }
    )
    thresholds = choose_thresholds(clf, rows)
    # Pooled, the cut after 0.9 (F1 2/3) ties the cut after 0.65 (tp 2, fp 2: 2/3) and the higher one wins.
    # Weighted (big rows 1/4 each, small 1): after 0.9 -> 0.5/1.5 = 0.333; after 0.65 -> tp 1.25, fp 0.5,
    # fn 0 -> 2.5/3 = 0.833, the best; after 0.6 -> 2.5/3.25 = 0.769.
    assert thresholds["insult"] == pytest.approx(0.65, abs=1e-4)  # float32 scores, rounded down
    y = np.array([1, 0, 0, 0, 1])
    assert best_threshold(y, np.array([0.9, 0.8, 0.7, 0.6, 0.65])) == 0.9  # the pooled rule, for contrast
    # No row decides the other labels: they stay at 0.5.
    assert all(thresholds[label] == 0.5 for label in LABELS if label != "insult")


def test_source_metrics_by_hand() -> None:
    both = {"insult", "profanity"}
    rows = [
        _ex("r1", "s", {"insult"}, both),
        _ex("r2", "s", {"insult", "profanity"}, both),
        _ex("r3", "s", set(), both),
        _ex("r4", "s", set(), both),
        _ex("r5", "s", set(), {"insult"}),  # profanity undecided on this row
    ]
    clf: Any = _StubClassifier(
        {
            "r1": {"insult": 0.8, "profanity": 0.1},
            "r2": {"insult": 0.4, "profanity": 0.9},
            "r3": {"insult": 0.6, "profanity": 0.2},
            "r4": {"insult": 0.1, "profanity": 0.7},
            "r5": {"insult": 0.2, "profanity": 0.95},
        }
    )
    m = source_metrics(clf, rows)["s"]
    assert m["n"] == 5
    # insult over 5 rows: tp r1, fn r2, fp r3, tn r4 r5 -> P 1/2, R 1/2, F1 1/2; negative F1 4/6;
    # AUC: 0.8 beats 0.6, 0.1, 0.2; 0.4 beats 0.1, 0.2 -> 5/6.
    assert (m["insult"]["precision"], m["insult"]["recall"], m["insult"]["f1"]) == (0.5, 0.5, 0.5)
    assert (m["insult"]["f1_macro"], m["insult"]["roc_auc"], m["insult"]["n"]) == (0.5833, 0.8333, 5)
    # profanity over the 4 rows that decide it (r5 left out): tp r2, fp r4 -> P 1/2, R 1, F1 2/3; AUC 1.
    assert (m["profanity"]["precision"], m["profanity"]["recall"], m["profanity"]["f1"]) == (0.5, 1.0, 0.6667)
    assert (m["profanity"]["n"], m["profanity"]["roc_auc"], m["profanity"]["f1_macro"]) == (4, 1.0, 0.7333)
    # abusive = any of its decided members (profanity, insult): truth r1 r2; flagged r1 r2 r3 r4 r5
    # (r5 by profanity 0.95) -> P 2/5, R 1, F1 0.5714; scores max: positives 0.8, 0.9 vs 0.6, 0.7, 0.95 -> 4/6.
    a = m["abusive"]
    assert (a["precision"], a["recall"], a["f1"], a["roc_auc"]) == (0.4, 1.0, 0.5714, 0.6667)
    # Labels and groups the source never decides are not reported.
    assert "threat" not in m and "escalation" not in m and "churn_risk" not in m


@pytest.mark.parametrize("n_sources", [1, 3])
def test_source_metrics_splits_by_source(n_sources: int) -> None:
    rows = [_ex(f"t{i}", f"src{i % n_sources}", {"insult"} if i % 2 else set(), {"insult"}) for i in range(6)]
    clf: Any = _StubClassifier({f"t{i}": {"insult": 0.9 if i % 2 else 0.1} for i in range(6)})
    out = source_metrics(clf, rows)
    assert sorted(out) == sorted({f"src{i % n_sources}" for i in range(6)})
    for m in out.values():
        if "insult" in m:
            assert m["insult"]["f1"] == 1.0


def test_target_mean_f1_over_the_targeted_pairs_present() -> None:
    from assistant.redflags.recipe import TARGET_PAIRS, target_f1s, target_mean_f1

    assert len(TARGET_PAIRS) == 16
    metrics = {
        "convabuse": {"abusive": {"f1": 0.7}, "insult": {"f1": 0.1}},  # insult is not a targeted pair
        "written": {"threat": {"f1": 0.9}, "churn_risk": {"f1": 0.8}},
        "olid": {"abusive": {"f1": 0.0}},  # not targeted
    }
    assert target_f1s(metrics) == {"convabuse/abusive": 0.7, "written/threat": 0.9, "written/churn_risk": 0.8}
    assert target_mean_f1(metrics) == 0.8  # (0.7 + 0.9 + 0.8) / 3
    assert target_mean_f1({}) is None
