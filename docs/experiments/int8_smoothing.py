"""Experiment (docs/benchmarks.md, "Session 16"): int8 red-flag inference with per-channel smoothing.

Dynamic int8 scales each activation tensor by its largest value; MiniLM's activations have a few channels far
larger than the rest, so a single scale crushes the others. SmoothQuant's fix, without folding (BERT is post-LN:
a LayerNorm's output is also the residual, so scales cannot move into it): each quantised Linear computes
``(x / s) @ (W * s)``, ``s_j = max|x_j| ** alpha / max|W[:, j]| ** (1 - alpha)``, with ``max|x_j|`` from
training rows. The product's version is `assistant.precision.smoothed_int8` (session 17: alpha 0.4, the FFN
down-projection and the head fp32, as this script found); the script reproduces the comparison of variants.

    .venv/bin/python docs/experiments/int8_smoothing.py --alpha 0.4 --skip head 'layer\\.\\d+\\.output\\.dense'
    .venv/bin/python docs/experiments/int8_smoothing.py ... --latency

Scores the validation splits (16-pair mean) or, with ``--latency``, times fp32 against the smoothed int8.
Capped at AVX2 as in the log: ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
FBGEMM_ENABLE_INSTRUCTIONS=AVX2``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

import assistant.precision as precision
from assistant.redflags.classifier import RedFlagClassifier
from assistant.redflags.recipe import model_splits
from assistant.settings import get_settings
from assistant.types import Utterance

DOWN_PROJECTION = r"layer\.\d+\.output\.dense$"


class Smoothed(torch.nn.Module):
    """``x / s`` into a Linear whose input columns are multiplied by ``s``: the same product, tamer inputs."""

    def __init__(self, linear: torch.nn.Linear, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("inv", (1.0 / scale).float())
        self.linear = torch.nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(linear.weight * scale[None, :])
            if linear.bias is not None:
                self.linear.bias.copy_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv)


def input_maxima(model: Path, n_rows: int) -> dict[str, torch.Tensor]:
    """Per Linear, the largest |input| per channel over ``n_rows`` random training rows (fp32)."""
    settings = get_settings()
    clf = RedFlagClassifier.load(model, mode="fp32")
    train = model_splits(clf, settings.data_dir)["train"]
    rows = [train[i] for i in np.random.default_rng(0).choice(len(train), n_rows, replace=False)]
    maxima: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def record(_mod: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x

        return record

    handles = [
        m.register_forward_hook(hook(n)) for n, m in clf.net.named_modules() if isinstance(m, torch.nn.Linear)
    ]
    for start in range(0, len(rows), 32):
        clf.probabilities([Utterance(e.text, tuple(e.context)) for e in rows[start : start + 32]])
    for h in handles:
        h.remove()
    return maxima


class OutlierSplit(torch.nn.Module):
    """LLM.int8()-style decomposition: the input channels in ``keep`` through an fp32 Linear, the rest through
    ``rest`` (a Linear that is smoothed and quantised later). The sum is the original product."""

    def __init__(self, linear: torch.nn.Linear, keep: torch.Tensor) -> None:
        super().__init__()
        mask = torch.ones(linear.in_features, dtype=torch.bool)
        mask[keep] = False
        self.register_buffer("keep", keep.sort().values)
        self.register_buffer("others", mask.nonzero().flatten())
        w = linear.weight.detach()
        self.fp32 = torch.nn.Linear(len(self.keep), linear.out_features, bias=linear.bias is not None)
        self.rest = torch.nn.Linear(len(self.others), linear.out_features, bias=False)
        with torch.no_grad():
            self.fp32.weight.copy_(w[:, self.keep])
            if linear.bias is not None:
                self.fp32.bias.copy_(linear.bias)
            self.rest.weight.copy_(w[:, self.others])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fp32(x.index_select(-1, self.keep)) + self.rest(x.index_select(-1, self.others))


def split_outliers(
    module: torch.nn.Module, maxima: dict[str, torch.Tensor], pattern: str, k: int
) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A copy of ``module`` whose Linears matching ``pattern`` are split (``OutlierSplit``): their ``k`` input
    channels of largest calibration maximum stay fp32; the maxima of the new ``.rest`` Linears are returned."""
    out = copy.deepcopy(module)
    extra: dict[str, torch.Tensor] = {}
    for name in [
        n for n, m in out.named_modules() if isinstance(m, torch.nn.Linear) and re.search(pattern, n)
    ]:
        parent_name, _, attr = name.rpartition(".")
        parent = out.get_submodule(parent_name)
        keep = maxima[name].topk(k).indices
        split = OutlierSplit(getattr(parent, attr), keep)
        setattr(parent, attr, split)
        extra[f"{name}.rest"] = maxima[name][split.others]
    return out, extra


def smoothed_int8(
    module: torch.nn.Module,
    maxima: dict[str, torch.Tensor],
    alpha: float,
    skip: list[str],
    outliers: int = 0,
    per_token: bool = False,
) -> torch.nn.Module:
    """A copy of ``module`` with every Linear not matched by ``skip`` smoothed and quantised (per-channel weights).

    ``outliers`` > 0: each FFN down-projection keeps that many input channels fp32 and quantises the rest.
    ``per_token``: activations get one scale per token (the product's ``_TokenInt8Linear``, session 20), not one
    per pass."""
    out = copy.deepcopy(module)
    if outliers:
        out, extra = split_outliers(out, maxima, DOWN_PROJECTION, outliers)
        maxima = {**maxima, **extra}
    names = [
        n
        for n, m in out.named_modules()
        if isinstance(m, torch.nn.Linear) and n in maxima and not any(re.search(k, n) for k in skip)
    ]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = out.get_submodule(parent_name)
        linear = getattr(parent, attr)
        w = linear.weight.detach().abs().amax(0).clamp(min=1e-5)
        scale = (maxima[name].clamp(min=1e-5) ** alpha / w ** (1 - alpha)).clamp(min=1e-2, max=1e2)
        setattr(parent, attr, (precision._TokenInt8Linear if per_token else Smoothed)(linear, scale))
    if per_token:
        return out
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    spec = {f"{n}.linear": qconfig for n in names}
    return torch.ao.quantization.quantize_dynamic(out, spec, dtype=torch.qint8)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/redflags-fast"))
    parser.add_argument("--alpha", type=float, default=0.4)
    parser.add_argument("--skip", nargs="*", default=["head"], help="regexes of Linears kept in fp32")
    parser.add_argument("--calibration-rows", type=int, default=800)
    parser.add_argument(
        "--outliers", type=int, default=0, help="FFN down-projection input channels kept fp32 (the rest int8)"
    )
    parser.add_argument(
        "--per-token", action="store_true", help="one activation scale per token (the product's)"
    )
    parser.add_argument("--latency", action="store_true")
    args = parser.parse_args()

    maxima = input_maxima(args.model, args.calibration_rows)
    plain = precision.convert

    def convert(module: Any, chosen: Any, calibration: Any = None) -> Any:
        # The shipped calibration is ignored: this script measures its own maxima and tries other variants.
        return (
            smoothed_int8(module, maxima, args.alpha, args.skip, args.outliers, args.per_token)
            if chosen == "int8"
            else plain(module, chosen, calibration)
        )

    precision.convert = convert  # RedFlagClassifier converts through this module's function
    if args.latency:
        from assistant.eval.redflags import measure_latency

        texts = [
            json.loads(line)["text"]
            for f in sorted(Path("eval/transcripts").glob("*.jsonl"))
            for line in f.read_text().splitlines()
            if line.strip()
        ]
        for mode in ("fp32", "int8", "fp32", "int8"):
            clf = RedFlagClassifier.load(args.model, mode=mode, torchscript=True)
            print(mode, measure_latency(clf, texts, n_single=150, n_batches=3), flush=True)
        return
    from assistant.cli import main as cli

    cli(
        [
            "eval",
            "redflags",
            "--split",
            "valid",
            "--model",
            str(args.model),
            "--mode",
            "int8",
            "--no-baselines",
            "--no-latency",
        ]
    )


if __name__ == "__main__":
    main()
