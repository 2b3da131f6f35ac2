"""`assistant train redflags`: fine-tune the red-flag classifier from the public data and training_data/."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.errors import InvalidInputError
from assistant.settings import FULL_REDFLAG_MODEL, get_settings


def register(sub: argparse._SubParsersAction) -> None:
    from assistant.cli import _train_average, _train_query_map

    p = sub.add_parser("train", help="train a model (red-flag classifier), or average trained ones")
    tsub = p.add_subparsers(dest="train_command", metavar="WHAT", required=True)
    r = tsub.add_parser(
        "redflags",
        help="fine-tune the red-flag classifier; writes weights, config, metrics and thresholds",
        description="Fine-tunes the top encoder layers and the label-attention head on the public data sets "
        "(ASSISTANT_DATA_DIR) and training_data/, chooses thresholds on the validation splits, scores every "
        "held-out test split, and writes the model to --out.",
    )
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: models/redflags, or ASSISTANT_REDFLAG_MODEL when it names a folder)",
    )
    r.add_argument(
        "--data-dir", type=Path, default=None, help="public data sets (default: ASSISTANT_DATA_DIR)"
    )
    r.add_argument("--sources", nargs="*", default=None, help="only these sources (default: all)")
    r.add_argument("--epochs", type=int, default=None)
    r.add_argument("--batch-size", type=int, default=None)
    r.add_argument("--trainable-layers", type=int, default=None, help="top encoder layers to fine-tune")
    r.add_argument(
        "--encoder-layers",
        type=int,
        default=None,
        help="keep only the base encoder's first N layers (default: all 6); 3 halves the model's cost "
        "(the fast model for CPUs without bf16 units)",
    )
    r.add_argument(
        "--cap", type=int, default=None, help="max training rows per source (default: recipe caps)"
    )
    r.add_argument("--limit", type=int, default=None, help="keep only N rows per split (a quick smoke run)")
    r.add_argument("--seed", type=int, default=None)
    r.add_argument(
        "--soft-labels",
        action="store_true",
        help="train on the share of annotators who chose a label where a source gives it (ConvAbuse) "
        "instead of their majority vote (0/1)",
    )
    r.add_argument(
        "--repeat",
        action="append",
        default=None,
        metavar="SOURCE=N",
        help="show a source's training rows N times per epoch (default: convabuse=2); repeatable; "
        "--repeat convabuse=1 turns the default off",
    )
    r.add_argument(
        "--head-pooling",
        choices=("attention", "lse", "gated"),  # model.POOLINGS, written out: help must not import torch
        default=None,
        help="how the head turns per-token scores into a label's score: gated (default: attention and "
        "log-sum-exp mixed per label by a learned gate), attention (per-label attention-weighted mean) or lse "
        "(log-sum-exp, a soft max that other requests in the same line cannot dilute)",
    )
    r.add_argument(
        "--teacher",
        type=Path,
        default=None,
        metavar="DIR",
        help="distil from a trained red-flag model (e.g. models/redflags): the new model also learns its "
        "probabilities, on every label (how the fast model is trained)",
    )
    r.add_argument(
        "--distill-weight",
        type=float,
        default=None,
        help="share of the teacher in the targets, 0-1 (default 0.5; only with --teacher)",
    )
    r.add_argument(
        "--lexical-prior",
        action="store_true",
        help="the head also reads which word lists the utterance hits (profanity, demeaning words, violent "
        "wording) and learns a weight per label for each",
    )
    r.add_argument("--no-progress", action="store_true", help="hide progress bars")
    r.set_defaults(handler=_run)
    _train_average.register(tsub)
    _train_query_map.register(tsub)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from assistant.redflags.recipe import DEFAULT_CAPS, run_training, save_run
    from assistant.redflags.training import TrainConfig

    settings = get_settings()
    cfg = TrainConfig()
    changes = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "trainable_layers": args.trainable_layers,
            "encoder_layers": args.encoder_layers,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    for k, v in changes.items():
        if v <= 0 and k != "seed":
            raise InvalidInputError(f"--{k.replace('_', '-')} must be positive, got {v}")
    if args.encoder_layers is not None and args.trainable_layers is None:
        changes["trainable_layers"] = min(cfg.trainable_layers, args.encoder_layers)  # all that are kept
    cfg = replace(cfg, **changes)
    if args.soft_labels:
        cfg = replace(cfg, soft_labels=True)
    if args.repeat:
        cfg = replace(cfg, source_repeats=_repeats(args.repeat))
    if args.head_pooling:
        cfg = replace(cfg, head_pooling=args.head_pooling)
    if args.lexical_prior:
        cfg = replace(cfg, lexical_prior=True)
    if args.distill_weight is not None and not args.teacher:
        raise InvalidInputError("--distill-weight needs --teacher DIR (the model to distil from)")
    if args.teacher:
        if not (args.teacher / "config.json").exists():
            raise InvalidInputError(
                f"--teacher {args.teacher} is not a red-flag model folder (no config.json)"
            )
        weight = 0.5 if args.distill_weight is None else args.distill_weight
        if not 0.0 <= weight <= 1.0:
            raise InvalidInputError(f"--distill-weight must be between 0 and 1, got {weight}")
        cfg = replace(cfg, teacher=str(args.teacher), distill_weight=weight)
    caps = {s: args.cap for s in DEFAULT_CAPS} if args.cap else None
    # Not `auto`'s choice: on a CPU without bf16 units that is the fast model, which a default run must not replace.
    out = args.out or (
        settings.models_dir / FULL_REDFLAG_MODEL
        if settings.redflag_model == "auto"
        else settings.redflag_model_path()
    )
    run = run_training(
        args.data_dir or settings.data_dir,
        cfg=cfg,
        sources=args.sources,
        caps=caps,
        limit=args.limit,
        progress=not args.no_progress,
    )
    save_run(run, out)
    print(
        json.dumps({"out": str(out), "seconds": round(run.seconds, 1), "test": run.metrics["test"]}, indent=2)
    )
    return 0


def _repeats(values: list[str]) -> tuple[tuple[str, int], ...]:
    """``["convabuse=2"]`` -> ``(("convabuse", 2),)``, with an error that says what is wrong."""
    from assistant.redflags.data import SOURCES

    out: dict[str, int] = {}
    for v in values:
        source, _, n = v.partition("=")
        if source not in SOURCES or not n.isdigit() or int(n) < 1:
            raise InvalidInputError(
                f"--repeat {v!r}: use SOURCE=N with N >= 1 and SOURCE one of {', '.join(SOURCES)}"
            )
        out[source] = int(n)
    return tuple(out.items())
