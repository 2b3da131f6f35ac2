"""`assistant train average`: the weight average of red-flag models trained from the same base ("model soup")."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.settings import get_settings


def register(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser(
        "average",
        help="average the weights of red-flag models fine-tuned from the same base; thresholds chosen again",
        description="Averages the tuned weights of two or more red-flag models trained with the same architecture "
        "from the same base encoder (other seeds or recipes), chooses the thresholds again on the validation "
        "splits, scores every held-out test split, and writes the model, its metrics and card to --out. The "
        "average runs at the cost of one model.",
    )
    p.add_argument(
        "models",
        nargs="+",
        metavar="DIR[:WEIGHT]",
        help="trained model folders, each with an optional positive weight (default 1; weights are normalised)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="public data sets (default: ASSISTANT_DATA_DIR)"
    )
    p.add_argument("--limit", type=int, default=None, help="keep only N rows per split (a quick smoke run)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from assistant.errors import InvalidInputError
    from assistant.redflags.averaging import parse_ingredient
    from assistant.redflags.recipe import run_average, save_run

    ingredients = [parse_ingredient(spec) for spec in args.models]
    if args.out.resolve() in {i.path.resolve() for i in ingredients}:
        raise InvalidInputError(
            f"--out {args.out} is one of the models averaged: write the average elsewhere"
        )
    data_dir = args.data_dir or get_settings().data_dir
    run = run_average(data_dir, ingredients, limit=args.limit, progress=not args.no_progress)
    save_run(run, args.out)
    print(
        json.dumps(
            {"out": str(args.out), "seconds": round(run.seconds, 1), "thresholds": run.metrics["thresholds"]},
            indent=2,
        )
    )
    return 0
