"""Weight averaging of red-flag models fine-tuned from the same base encoder (a "model soup").

Models fine-tuned from one pretrained encoder, with other seeds or recipes, usually stay in one basin of the
loss, so the mean of their weights scores about like the ensemble of the models at the cost of one model
(Wortsman et al., "Model soups", ICML 2022). The service runs the average like any trained model: same encoder,
same input budget, same latency. Thresholds are chosen again on validation: the average's scores are no
ingredient's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from assistant.errors import InvalidInputError, ModelLoadError
from assistant.redflags.classifier import RedFlagClassifier, RedFlagConfig
from assistant.redflags.training import round_to_half_precision

# What has to be equal for two models' weights to mean the same thing (the net they build, its inputs).
MUST_MATCH = (
    "labels",
    "max_length",
    "max_text_tokens",
    "max_context_tokens",
    "trainable_layers",
    "encoder_layers",
    "head_pooling",
    "lexical_prior",
    "base_encoder",
    "base_weights_sha256",
)


@dataclass(frozen=True)
class Ingredient:
    """One model of the average and its share (weights are normalised to sum to 1)."""

    path: Path
    weight: float = 1.0


def parse_ingredient(spec: str) -> Ingredient:
    """``DIR`` or ``DIR:WEIGHT`` (e.g. ``var/redflags-v15:2``) -> an ingredient; a clear error otherwise."""
    path, sep, weight = spec.rpartition(":")
    if not sep or "/" in weight or not path:
        return Ingredient(Path(spec))
    try:
        value = float(weight)
    except ValueError:
        raise InvalidInputError(f"{spec!r}: use DIR or DIR:WEIGHT with a positive number as WEIGHT") from None
    if not value > 0:
        raise InvalidInputError(f"{spec!r}: the weight must be positive")
    return Ingredient(Path(path), value)


def check_compatible(configs: Sequence[RedFlagConfig], names: Sequence[str]) -> None:
    """Refuse to average models whose weights do not line up, naming the setting that differs."""
    first = configs[0]
    for cfg, name in zip(configs[1:], names[1:], strict=True):
        for key in MUST_MATCH:
            if getattr(cfg, key) != getattr(first, key):
                raise ModelLoadError(
                    f"cannot average {names[0]} and {name}: {key} is {getattr(first, key)!r} against "
                    f"{getattr(cfg, key)!r}; only models trained with the same architecture and input budget "
                    "from the same base encoder can be averaged"
                )


def average(
    models: Sequence[RedFlagClassifier], weights: Sequence[float], names: Sequence[str]
) -> RedFlagClassifier:
    """A new fp32 classifier whose tuned weights are the weighted mean of ``models``' (thresholds copied from
    the first: choose them again on validation before use)."""
    if len(models) < 2:
        raise InvalidInputError("averaging needs at least two models")
    if len(weights) != len(models) or any(not w > 0 for w in weights):
        raise InvalidInputError("give one positive weight per model")
    if any(m.precision != "fp32" for m in models):
        raise ModelLoadError("load the models in fp32 to average them")
    check_compatible([m.config for m in models], names)
    total = float(sum(weights))
    shares = [w / total for w in weights]
    states = [m.net.tuned_state_dict() for m in models]
    mean = {
        key: (
            sum(
                (share * state[key].float() for share, state in zip(shares, states, strict=True)),
                torch.zeros(()),
            )
            if value.is_floating_point()
            else value
        )
        for key, value in states[0].items()
    }
    net = copy.deepcopy(models[0].net)
    net.load_state_dict(mean, strict=False)
    net.eval()
    # Saved as float16 (RedFlagClassifier.save): rounded now, so the thresholds chosen next are the saved model's.
    round_to_half_precision(net)
    # The first model's data (sources, caps, seed) is what `assistant eval` scores the average on and trains its
    # TF-IDF baseline on, as for a trained model.
    first = models[0].config.training
    training: dict[str, Any] = {key: first[key] for key in ("sources", "caps", "seed") if key in first}
    training["averaged"] = [
        {"model": name, "share": round(share, 4), "training": m.config.training}
        for name, share, m in zip(names, shares, models, strict=True)
    ]
    config = replace(copy.deepcopy(models[0].config), training=training)
    return RedFlagClassifier(net, models[0].tokenizer, config)
