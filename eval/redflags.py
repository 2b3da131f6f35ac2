"""Red-flag evaluation: the model beside its baselines on the same rows, in one process.

``evaluate`` is pure (rows and scorers in, a report out); the CLI reads files and prints. Scoring covers
exactly the labels and groups that occur in the data file. Primary metric: ``macro_f1`` over those names.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from assistant.eval.report import calibration_block
from assistant.labels import GROUPS, LABELS, expand
from assistant.redflags.classifier import RedFlagClassifier
from assistant.redflags.metrics import decision_scores
from assistant.types import Utterance

PRIMARY_METRIC = "macro_f1"
Scored = dict[str, tuple[np.ndarray, np.ndarray]]


class Scorer(Protocol):
    name: str

    def score(self, texts: Sequence[str], contexts: Sequence[Sequence[str]]) -> Scored: ...


@dataclass
class ModelScorer:
    """The shipped classifier as a scorer: label probabilities, its thresholds, groups as max / any."""

    classifier: RedFlagClassifier
    name: str = "model"
    batch_size: int = 64
    progress: bool = False

    def score(self, texts: Sequence[str], contexts: Sequence[Sequence[str]]) -> Scored:
        probs = []
        starts = range(0, len(texts), self.batch_size)
        for s in tqdm(starts, desc="model", disable=not self.progress):
            batch = [
                Utterance(t, tuple(c))
                for t, c in zip(
                    texts[s : s + self.batch_size], contexts[s : s + self.batch_size], strict=True
                )
            ]
            probs.append(self.classifier.probabilities(batch).numpy())
        p = np.concatenate(probs) if probs else np.zeros((0, len(LABELS)))
        thr = np.array([self.classifier.config.thresholds[label] for label in LABELS])
        decisions: np.ndarray = p >= thr
        out: Scored = {label: (p[:, j], decisions[:, j]) for j, label in enumerate(LABELS)}
        for group, members in GROUPS.items():
            idx = [LABELS.index(m) for m in members]
            out[group] = (p[:, idx].max(axis=1), np.asarray(decisions[:, idx].any(axis=1), dtype=bool))
        return out


def names_in(rows_labels: Sequence[Sequence[str]]) -> list[str]:
    """The labels and groups that occur in the file, in contract order (labels, then groups)."""
    seen = {n for labels in rows_labels for n in labels}
    return [n for n in (*LABELS, *GROUPS) if n in seen]


def score_report(names: list[str], truth: Sequence[set[str]], scored: Scored) -> dict[str, Any]:
    per_label: dict[str, Any] = {}
    for name in names:
        if name not in scored:
            continue
        y = np.array([name in t for t in truth])
        scores, decisions = scored[name]
        per_label[name] = decision_scores(y, decisions, scores).to_dict()
    f1s = [v["f1"] for v in per_label.values()]
    return {
        "per_label": per_label,
        PRIMARY_METRIC: round(float(np.mean(f1s)), 4) if f1s else None,
        "covers": list(per_label),
    }


def evaluate(
    texts: Sequence[str],
    contexts: Sequence[Sequence[str]],
    labels: Sequence[Sequence[str]],
    model: Scorer,
    baselines: Sequence[Scorer] = (),
) -> dict[str, Any]:
    """Score the model and each baseline on the same rows; returns the report (see module docstring)."""
    names = names_in(labels)
    truth = [expand(list(row)) for row in labels]
    report: dict[str, Any] = {"n": len(texts), "names": names, "primary_metric": PRIMARY_METRIC}
    scored = model.score(texts, contexts)
    report.update(score_report(names, truth, scored))
    report["calibration"] = calibration_block(
        {n: [n in t for t in truth] for n in names if n in scored},
        {n: scored[n][0].tolist() for n in names if n in scored},
    )
    report["baselines"] = {b.name: score_report(names, truth, b.score(texts, contexts)) for b in baselines}
    return report


def measure_latency(
    classifier: RedFlagClassifier,
    texts: Sequence[str],
    *,
    n_single: int = 200,
    batch_size: int = 64,
    n_batches: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Per-utterance latency (tokenise + infer + threshold + spans, batch of 1) and batch throughput."""
    sample = [t for t in texts if t.strip()][: max(n_single, batch_size)] or ["hello"]
    classifier.warm_up()
    singles = []
    for t in sample[:n_single]:
        t0 = clock()
        classifier.predict([Utterance(t)])
        singles.append((clock() - t0) * 1e3)
    batch = [Utterance(sample[i % len(sample)]) for i in range(batch_size)]
    rates = []
    for _ in range(n_batches):
        t0 = clock()
        classifier.predict(batch)
        rates.append(batch_size / (clock() - t0))
    singles.sort()
    return {
        "single_p50_ms": round(statistics.median(singles), 3),
        "single_p95_ms": round(singles[int(0.95 * (len(singles) - 1))], 3),
        "batch_size": batch_size,
        "batch_throughput_per_s": round(statistics.median(rates), 1),
    }


def context_budget_sweep(
    classifier: RedFlagClassifier,
    rows: Sequence[Any],
    budgets: Sequence[int | None],
    *,
    score: Callable[[RedFlagClassifier, Sequence[Any]], dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """``score(classifier, rows)`` with the classifier's context budget set to each of ``budgets`` in turn.

    The serving budget (``max_context_tokens``) is a decision to make on validation rows; the classifier's
    own budget is restored afterwards. Keys are the budgets as text ("none" for no cap).
    """
    saved = classifier.config.max_context_tokens
    out: dict[str, dict[str, Any]] = {}
    try:
        for budget in budgets:
            classifier.config.max_context_tokens = budget
            out["none" if budget is None else str(budget)] = score(classifier, rows)
    finally:
        classifier.config.max_context_tokens = saved
    return out
