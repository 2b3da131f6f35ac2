"""The training recipe behind ``assistant train redflags``: data -> train -> thresholds -> test -> save.

Test splits are scored per source after training and never touched before; thresholds come from the
validation splits. The model card is written from the measured figures, so it cannot drift from them.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.labels import GROUPS, LABELS
from assistant.redflags.averaging import Ingredient, average
from assistant.redflags.card import write_model_card
from assistant.redflags.classifier import RedFlagClassifier, write_int8_calibration
from assistant.redflags.data import SOURCES, Example, cap_examples, load_corpus
from assistant.redflags.metrics import decision_scores
from assistant.redflags.training import TrainConfig, choose_thresholds, predict_probs, train
from assistant.types import Utterance

# Per-source caps per split keep a CPU training run near 15 minutes while every source is represented.
DEFAULT_CAPS: dict[str, int] = {
    "davidson": 4000,
    "convabuse": 3000,
    "olid": 3000,
    "ethos": 1500,
    "nlupp": 2500,
    "banking77": 2500,
    "bitext": 2500,
    "clinc150": 2500,
    "goemotions": 2500,
    "complaints": 2500,
    "airline": 2500,
    "written": 100_000,
}
# Rows the int8 calibration sees: 800 random training rows gave the validation figures in docs/benchmarks.md.
INT8_CALIBRATION_ROWS = 800


# The (source, label or group) pairs the red-flag issues set targets for: the model choice criterion is the mean
# F1 over them on the validation splits (MODEL_CARD.md, "Recipe choice").
TARGET_PAIRS: tuple[tuple[str, str], ...] = (
    ("convabuse", "abusive"),
    ("davidson", "abusive"),
    *(("written", label) for label in LABELS),
    ("nlupp", "escalation_request"),
    ("nlupp", "churn_risk"),
    ("bitext", "escalation_request"),
    ("bitext", "churn_risk"),
    ("bitext", "frustration"),
    ("airline", "frustration"),
    ("complaints", "frustration"),
)


def target_f1s(split_metrics: dict[str, Any]) -> dict[str, float]:
    """F1 of each targeted pair present in ``source_metrics`` output, keyed ``source/label``."""
    return {
        f"{source}/{name}": float(split_metrics[source][name]["f1"])
        for source, name in TARGET_PAIRS
        if name in split_metrics.get(source, {})
    }


def target_mean_f1(split_metrics: dict[str, Any]) -> float | None:
    """Mean F1 over the targeted pairs present (None when none is): the model choice criterion on validation."""
    f1s = list(target_f1s(split_metrics).values())
    return round(sum(f1s) / len(f1s), 4) if f1s else None


@dataclass
class TrainingRun:
    classifier: RedFlagClassifier
    metrics: dict[str, Any]
    seconds: float
    # Training rows the int8 calibration is measured on when the run is saved (``calibration_rows``).
    calibration: list[Example] = field(default_factory=list)


def source_metrics(
    clf: RedFlagClassifier, examples: Sequence[Example], *, progress: bool = False
) -> dict[str, Any]:
    """Per source: every label and group the source annotates, scored at the model's thresholds."""
    by_source: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_source[ex.source].append(ex)
    thr = np.array([clf.config.thresholds[label] for label in LABELS])
    out: dict[str, Any] = {}
    for source, rows in sorted(by_source.items()):
        probs = predict_probs(clf, rows, progress=progress)
        dec: np.ndarray = probs >= thr
        res: dict[str, Any] = {"n": len(rows)}
        # A row counts for a label only where its source decides that label (see Example.known).
        decided = np.array([[label in e.known or label in e.labels for label in LABELS] for e in rows])
        truth = np.array([[label in e.labels for label in LABELS] for e in rows])
        for j, label in enumerate(LABELS):
            r = decided[:, j]
            if truth[r, j].any():
                res[label] = decision_scores(truth[r, j], dec[r, j], probs[r, j]).to_dict()
        for group, members in GROUPS.items():
            # A group as far as this source annotates it: the members it decides anywhere.
            idx = [LABELS.index(m) for m in members if decided[:, LABELS.index(m)].any()]
            if not idx:
                continue
            r = np.asarray(decided[:, idx].any(axis=1), dtype=bool)
            if truth[r][:, idx].any():
                res[group] = decision_scores(
                    truth[r][:, idx].any(axis=1),
                    np.asarray(dec[r][:, idx].any(axis=1), dtype=bool),
                    probs[r][:, idx].max(axis=1),
                ).to_dict()
        out[source] = res
    return out


def model_splits(clf: RedFlagClassifier, data_dir: Path) -> dict[str, list[Example]]:
    """The splits ``clf`` was trained, chosen and scored on: its saved sources, per-source caps and seed."""
    data = clf.config.training
    return training_splits(
        data_dir, sources=data.get("sources") or None, caps=data.get("caps"), seed=int(data.get("seed", 13))
    )


def training_splits(
    data_dir: Path,
    *,
    sources: Sequence[str] | None = None,
    caps: dict[str, int] | None = None,
    seed: int = 13,
) -> dict[str, list[Example]]:
    """The recipe's data: every source's train rows capped per source, all of its valid and test rows.

    The TF-IDF baseline of ``assistant eval redflags`` calls this with the model's saved sources, caps and
    seed, so it is trained on exactly the model's training data.
    """
    caps = caps or DEFAULT_CAPS
    splits: dict[str, list[Example]] = {"train": [], "valid": [], "test": []}
    for name in list(sources) if sources else list(SOURCES):
        rows = load_corpus(data_dir, sources=[name], seed=seed)
        for split, part in splits.items():
            mine = [e for e in rows if e.split == split]
            # Only training rows are capped; validation and test rows are all scored.
            part += cap_examples(mine, caps.get(name, 3000), seed) if split == "train" else mine
    return splits


def run_training(
    data_dir: Path,
    *,
    cfg: TrainConfig,
    sources: Sequence[str] | None = None,
    caps: dict[str, int] | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> TrainingRun:
    """Load the corpus, train, choose thresholds on valid, score every test split."""
    t0 = time.perf_counter()
    splits = training_splits(data_dir, sources=sources, caps=caps, seed=cfg.seed)
    if limit is not None:
        splits = {k: v[:limit] for k, v in splits.items()}
    clf = train(splits["train"], splits["valid"], cfg, progress=progress)
    metrics = {**_scored(clf, splits, progress=progress), "train_config": asdict(cfg)}
    clf.config.training = {**asdict(cfg), "caps": caps or DEFAULT_CAPS, "sources": list(sources or [])}
    return TrainingRun(clf, metrics, time.perf_counter() - t0, calibration_rows(splits["train"]))


def run_average(
    data_dir: Path,
    ingredients: Sequence[Ingredient],
    *,
    limit: int | None = None,
    progress: bool = True,
) -> TrainingRun:
    """Average the ingredients' weights, choose thresholds on valid, score every test split (as a training run)."""
    t0 = time.perf_counter()
    models = [RedFlagClassifier.load(i.path) for i in ingredients]
    clf = average(models, [i.weight for i in ingredients], [str(i.path) for i in ingredients])
    # The first ingredient's data (``average`` keeps its sources, caps and seed): the card's row counts;
    # validation and test rows are never capped, so every ingredient was chosen and scored on these.
    splits = model_splits(clf, data_dir)
    if limit is not None:
        splits = {k: v[:limit] for k, v in splits.items()}
    clf.set_thresholds(choose_thresholds(clf, splits["valid"], progress=progress))
    recipes = [_saved_metrics(i.path) for i in ingredients]
    metrics = {
        **_scored(clf, splits, progress=progress),
        "averaged": [
            {
                "model": a["model"],
                "share": a["share"],
                "train_config": saved.get("train_config", a["training"]),
                "train_seconds": saved.get("train_seconds"),
            }
            for a, saved in zip(clf.config.training["averaged"], recipes, strict=True)
        ],
    }
    return TrainingRun(clf, metrics, time.perf_counter() - t0, calibration_rows(splits["train"]))


def calibration_rows(
    train: Sequence[Example], n: int = INT8_CALIBRATION_ROWS, seed: int = 0
) -> list[Example]:
    """``n`` training rows drawn at random: what a model's int8 calibration is measured on."""
    if len(train) <= n:
        return list(train)
    return [train[i] for i in np.random.default_rng(seed).choice(len(train), n, replace=False)]


def _scored(clf: RedFlagClassifier, splits: dict[str, list[Example]], *, progress: bool) -> dict[str, Any]:
    """What a run's metrics.json holds for any model: every test split scored, row counts, thresholds."""
    counts = Counter(f"{e.source}/{e.split}" for part in splits.values() for e in part)
    return {
        "test": source_metrics(clf, splits["test"], progress=progress),
        "rows": {k: len(v) for k, v in splits.items()},
        "rows_per_source": dict(sorted(counts.items())),
        "thresholds": clf.config.thresholds,
    }


def _saved_metrics(path: Path) -> dict[str, Any]:
    """A trained model's metrics.json (its recipe and training time), or {} where it has none."""
    file = path / "metrics.json"
    return dict(json.loads(file.read_text())) if file.exists() else {}


def save_run(run: TrainingRun, out: Path) -> None:
    """Weights, config, metrics, the model card and (with calibration rows) the int8 calibration."""
    run.metrics["train_seconds"] = round(run.seconds, 1)
    run.classifier.save(out, metrics=run.metrics)
    write_model_card(out, run.classifier.config, run.metrics)
    if run.calibration:
        write_int8_calibration(out, [Utterance(e.text, tuple(e.context)) for e in run.calibration])
