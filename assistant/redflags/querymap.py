"""The query map: a customer chunk's retrieval query vector from its red-flag pass, so one encoder pass does both.

Without it a customer chunk costs two encoder passes: the red-flag classifier's and the retrieval encoder's
(its query vector against the SOP passages). The classifier's hidden states already say most of what the
query encoder would: a linear map from the last layer's mean over the utterance's tokens to the retrieval
encoder's query vector, fitted by ridge regression on training texts, reproduces it at a cosine of ~0.93 on
held-out texts (every layer's means concatenated: 0.94, at three times the file size and the same retrieval
recall). The passages keep the retrieval encoder's own embeddings, so the index is
unchanged; only live queries take the shortcut. Measured on the retrieval dev set and in the service:
``models/redflags-fast/MODEL_CARD.md`` ("Query map") and ``docs/benchmarks.md``.

A map is fitted for one retrieval encoder (its weights and depth: the embedder's ``fingerprint``) and is used
only where the service's retrieval encoder has that fingerprint; elsewhere the query encoder runs as before.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    >>> y = x[:, :3] @ np.ones((3, 4), dtype=np.float32)
    >>> m = fit_query_map(x, y, ridge=1e-3, target_fingerprint="f", target_layers=4)
    >>> round(mean_cosine(m.apply_numpy(x), y), 3)
    1.0
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from assistant.digest import file_sha256
from assistant.errors import ModelLoadError

log = logging.getLogger(__name__)

QUERY_MAP_FILE = "query_map.safetensors"
QUERY_MAP_FORMAT = 1
# Ridge strengths tried when fitting; the one with the best held-out cosine is kept (10 on the shipped models,
# the three within 0.001 of each other).
RIDGE_GRID = (1.0, 10.0, 100.0)


@dataclass(frozen=True)
class QueryMap:
    """``vector = normalise(features @ weight + bias)``; ``features``: the classifier's pooled hidden states."""

    weight: torch.Tensor  # (F, D) float32
    bias: torch.Tensor  # (D,)
    target_fingerprint: str  # the retrieval encoder (weights and depth) whose query vectors it reproduces
    target_layers: int  # that encoder's depth, for messages
    report: dict[str, Any]  # how it was fitted (rows, ridge, held-out cosine)
    model_sha256: str = ""  # the red-flag weights it reads: a retrained model needs a new map

    @property
    def n_features(self) -> int:
        return int(self.weight.shape[0])

    def apply(self, features: torch.Tensor) -> np.ndarray:
        """(N, F) pooled features -> (N, D) L2-normalised float32 query vectors."""
        y = features.float() @ self.weight + self.bias
        y = y / y.norm(dim=1, keepdim=True).clamp(min=1e-9)
        return y.numpy().astype(np.float32, copy=False)

    def apply_numpy(self, features: np.ndarray) -> np.ndarray:
        return self.apply(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))

    def save(self, path: Path) -> Path:
        meta = {
            "format": str(QUERY_MAP_FORMAT),
            "target_fingerprint": self.target_fingerprint,
            "target_layers": str(self.target_layers),
            "model_sha256": self.model_sha256,
            "report": json.dumps(self.report),
        }
        # float16 weights: half the file (models/ has a size budget); the cosine to the fp32 map's vectors is
        # above 0.9999.
        save_file(
            {"weight": self.weight.half().contiguous(), "bias": self.bias.contiguous()},
            str(path),
            metadata=meta,
        )
        return path

    @classmethod
    def load(cls, path: Path) -> QueryMap:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                weight, bias = f.get_tensor("weight").float(), f.get_tensor("bias").float()
        except Exception as e:  # safetensors raises several types for a damaged file
            raise ModelLoadError(
                f"{path} is not a readable query map ({e}); write it again with `assistant train query-map`"
            ) from e
        if meta.get("format") != str(QUERY_MAP_FORMAT):
            raise ModelLoadError(
                f"{path} has query-map format {meta.get('format')!r}, this code reads {QUERY_MAP_FORMAT}; "
                "write it again with `assistant train query-map`"
            )
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ModelLoadError(
                f"{path}: weight {tuple(weight.shape)} and bias {tuple(bias.shape)} disagree"
            )
        return cls(
            weight=weight,
            bias=bias,
            target_fingerprint=meta.get("target_fingerprint", ""),
            target_layers=int(meta.get("target_layers", "0")),
            report=json.loads(meta.get("report", "{}")),
            model_sha256=meta.get("model_sha256", ""),
        )


def load_query_map(
    model_dir: Path, query_space: str | None, *, n_features: int, weights_file: Path
) -> QueryMap | None:
    """The model's query map when it was fitted for these weights (``weights_file``) and the retrieval encoder
    ``query_space``, else None (a map for other weights: a warning that says what to do).

    Raises:
        ModelLoadError: the file is damaged, of another format, or reads other features than the model gives.
    """
    file = model_dir / QUERY_MAP_FILE
    if query_space is None or not file.exists():
        return None
    found = QueryMap.load(file)
    if found.n_features != n_features:
        raise ModelLoadError(
            f"{file} reads {found.n_features} features, the model at {model_dir} gives {n_features}; write it "
            "again with `assistant train query-map`"
        )
    why = query_map_mismatch(found, query_space, weights_file)
    if why is not None:
        log.warning(f"query map not used: {why}", extra={"model": str(model_dir)})
        return None
    return found


def query_map_mismatch(found: QueryMap, query_space: str, weights_file: Path) -> str | None:
    """Why ``found`` cannot serve the red-flag weights in ``weights_file`` with the retrieval encoder
    ``query_space``, or None when it can (``load_query_map`` and ``assistant serve``'s start-up line agree)."""
    if found.model_sha256 != file_sha256(weights_file):
        return (
            "it was fitted for other red-flag weights; write it again with `assistant train query-map --model "
            f"{weights_file.parent} --layers {found.target_layers}`"
        )
    if found.target_fingerprint != query_space:
        return (
            f"it was fitted for the retrieval encoder's first {found.target_layers} layers, not the one this "
            "service runs; queries get their own pass"
        )
    return None


def mean_cosine(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean cosine between rows (``target`` rows are unit vectors, ``predicted`` any scale)."""
    p = predicted / np.maximum(np.linalg.norm(predicted, axis=1, keepdims=True), 1e-9)
    t = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-9)
    return float((p * t).sum(axis=1).mean())


def fit_query_map(
    features: np.ndarray,
    targets: np.ndarray,
    *,
    ridge: float,
    target_fingerprint: str,
    target_layers: int,
    report: dict[str, Any] | None = None,
    model_sha256: str = "",
) -> QueryMap:
    """Ridge regression from features to target vectors, centred (the intercept is not penalised).

    Closed form rather than gradient steps: a few thousand rows of a few thousand features solve in well under
    a second, exactly, with nothing to tune but the ridge.
    """
    if len(features) != len(targets) or len(features) == 0:
        raise ValueError(
            f"expected as many feature rows as targets (> 0), got {len(features)} and {len(targets)}"
        )
    x = features.astype(np.float64)
    y = targets.astype(np.float64)
    mu, ym = x.mean(axis=0), y.mean(axis=0)
    xc = x - mu
    w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - ym))
    b = ym - mu @ w
    return QueryMap(
        weight=torch.from_numpy(w.astype(np.float32)),
        bias=torch.from_numpy(b.astype(np.float32)),
        target_fingerprint=target_fingerprint,
        target_layers=target_layers,
        report=dict(report or {}, ridge=ridge),
        model_sha256=model_sha256,
    )


def choose_query_map(
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    *,
    target_fingerprint: str,
    target_layers: int,
    ridges: Sequence[float] = RIDGE_GRID,
    model_sha256: str = "",
    log: Callable[[str], None] = lambda _: None,
) -> QueryMap:
    """Fit one map per ridge strength on ``train`` and keep the best by mean cosine on ``valid``."""
    best: QueryMap | None = None
    best_cos = -2.0
    tried: dict[str, float] = {}
    for ridge in ridges:
        m = fit_query_map(
            *train, ridge=ridge, target_fingerprint=target_fingerprint, target_layers=target_layers
        )
        cos = mean_cosine(m.apply_numpy(valid[0]), valid[1])
        tried[str(ridge)] = round(cos, 4)
        log(f"ridge {ridge:g}: held-out cosine {cos:.4f}")
        if cos > best_cos:
            best, best_cos = m, cos
    assert best is not None
    report = {
        "train_rows": len(train[0]),
        "valid_rows": len(valid[0]),
        "valid_cosine": round(best_cos, 4),
        "tried": tried,
        "ridge": best.report["ridge"],
    }
    return replace(best, report=report, model_sha256=model_sha256)


def pooled_features(
    clf: Any,
    utterances: Sequence[Any],
    *,
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "features",
) -> np.ndarray:
    """The classifier's pooled hidden states (``RedFlagClassifier.pooled_features``) for many utterances."""
    from tqdm.auto import tqdm

    out = []
    for start in tqdm(range(0, len(utterances), batch_size), desc=desc, disable=not progress):
        out.append(clf.pooled_features(list(utterances[start : start + batch_size])).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def build_query_map(
    clf: Any,
    embedder: Any,
    train: Sequence[Any],
    valid: Sequence[Any],
    *,
    model_sha256: str,
    progress: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> QueryMap:
    """Fit ``clf``'s query map onto ``embedder``'s query vectors: features and targets of ``train`` utterances
    (with their context, as live chunks come), the ridge chosen on ``valid``.

    ``clf``: a ``RedFlagClassifier`` in fp32 (the weights as trained); ``embedder``: the retrieval encoder, whose
    ``fingerprint`` the map records.
    """
    if not train or not valid:
        raise ValueError(f"need training and validation utterances, got {len(train)} and {len(valid)}")
    sets = []
    for name, rows in (("train", train), ("valid", valid)):
        x = pooled_features(clf, rows, progress=progress, desc=f"red-flag pass ({name})")
        y = embedder.encode([u.text for u in rows], progress=None)
        sets.append((x, np.asarray(y, dtype=np.float32)))
    from assistant.settings import BASE_ENCODER_LAYERS

    layers = int(getattr(embedder, "layers", None) or BASE_ENCODER_LAYERS)
    return choose_query_map(
        sets[0],
        sets[1],
        target_fingerprint=embedder.fingerprint,
        target_layers=layers,
        model_sha256=model_sha256,
        log=log,
    )
