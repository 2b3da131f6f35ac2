"""Experiment (docs/benchmarks.md, "Session 16"): do other threshold rules generalise better than the shipped one?

Every validation source is split in two random halves (four seeds, both directions); thresholds are chosen on
one half by a rule and the 16-pair mean (`assistant.redflags.recipe.TARGET_PAIRS`) and ConvAbuse's `abusive` F1
are scored on the other. Rules: the shipped one (`choose_thresholds`: per label, F1-best with every source
weighted equally), the 16-pair mean maximised directly, and the three abusive labels chosen for ConvAbuse alone.

    .venv/bin/python docs/experiments/threshold_rules.py [--model models/redflags]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from assistant.labels import GROUPS, LABELS
from assistant.redflags.classifier import RedFlagClassifier
from assistant.redflags.metrics import best_threshold, source_weights
from assistant.redflags.recipe import TARGET_PAIRS, model_splits
from assistant.redflags.training import predict_probs
from assistant.settings import get_settings

GRID = np.round(np.arange(0.05, 0.951, 0.005), 4)
ABUSIVE = [LABELS.index(x) for x in GROUPS["abusive"]]


class Validation:
    """The model's validation probabilities with each row's source, decided labels and truth."""

    def __init__(self, model: Path) -> None:
        settings = get_settings()
        clf = RedFlagClassifier.load(model, mode="fp32")
        rows = model_splits(clf, settings.data_dir)["valid"]
        self.probs = predict_probs(clf, rows, progress=True)
        self.source = np.array([r.source for r in rows])
        self.decided = np.array([[label in r.known or label in r.labels for label in LABELS] for r in rows])
        self.truth = np.array([[label in r.labels for label in LABELS] for r in rows])

    def pairs(self, idx: np.ndarray, thr: np.ndarray) -> dict[str, float]:
        """F1 of every targeted pair on rows ``idx`` at thresholds ``thr`` (as `recipe.source_metrics`)."""
        dec = self.probs[idx] >= thr
        out = {}
        for source, name in TARGET_PAIRS:
            m = self.source[idx] == source
            if not m.any():
                continue
            decided, truth, pred = self.decided[idx][m], self.truth[idx][m], dec[m]
            members = [name] if name in LABELS else list(GROUPS[name])
            cols = [LABELS.index(x) for x in members if decided[:, LABELS.index(x)].any()]
            if not cols:
                continue
            r = decided[:, cols].any(axis=1)
            t, p = truth[r][:, cols].any(axis=1), pred[r][:, cols].any(axis=1)
            if t.any():
                tp, fp, fn = (t & p).sum(), (~t & p).sum(), (t & ~p).sum()
                out[f"{source}/{name}"] = float(2 * tp / (2 * tp + fp + fn))
        return out

    def mean(self, idx: np.ndarray, thr: np.ndarray) -> float:
        return float(np.mean(list(self.pairs(idx, thr).values())))


def shipped_rule(v: Validation, idx: np.ndarray) -> np.ndarray:
    thr = np.full(len(LABELS), 0.5)
    for j in range(len(LABELS)):
        r = idx[v.decided[idx, j]]
        if r.size and v.truth[r, j].any():
            thr[j] = best_threshold(v.truth[r, j], v.probs[r, j], weights=source_weights(list(v.source[r])))
    return thr


def ascend(
    v: Validation, idx: np.ndarray, labels: list[int], score: Callable[[np.ndarray], float]
) -> np.ndarray:
    """From the shipped rule's thresholds, each of ``labels`` in turn moved to its best grid point (two sweeps)."""
    thr = shipped_rule(v, idx)
    best = score(thr)
    for _ in range(2):
        for j in labels:
            for g in GRID:
                t = thr.copy()
                t[j] = g
                s = score(t)
                if s > best + 1e-9:
                    thr, best = t, s
    return thr


def halves(v: Validation, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    first = np.zeros(len(v.source), dtype=bool)
    for s in np.unique(v.source):
        i = np.flatnonzero(v.source == s)
        rng.shuffle(i)
        first[i[: len(i) // 2]] = True
    return np.flatnonzero(first), np.flatnonzero(~first)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/redflags"))
    v = Validation(parser.parse_args().model)
    everything = list(range(len(LABELS)))
    rules: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "shipped": lambda idx: shipped_rule(v, idx),
        "16-pair mean": lambda idx: ascend(v, idx, everything, lambda t: v.mean(idx, t)),
        "abusive for ConvAbuse": lambda idx: ascend(
            v, idx, ABUSIVE, lambda t: v.pairs(idx, t)["convabuse/abusive"]
        ),
    }
    for name, rule in rules.items():
        means, convabuse = [], []
        for seed in range(4):
            a, b = halves(v, seed)
            for fit, held in ((a, b), (b, a)):
                scored = v.pairs(held, rule(fit))
                means.append(np.mean(list(scored.values())))
                convabuse.append(scored["convabuse/abusive"])
        print(
            f"{name:<24} held-out mean {np.mean(means):.4f}  ConvAbuse {np.mean(convabuse):.4f}", flush=True
        )


if __name__ == "__main__":
    main()
