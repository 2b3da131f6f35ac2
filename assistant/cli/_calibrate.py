"""`assistant calibrate redflags|retrieval`: measure a model's int8 calibration and save it beside the weights.

Smoothed int8 (``ASSISTANT_INFERENCE_MODE=int8``, and ``auto`` on CPUs without bf16 units) scales each Linear's
input channels by the largest values seen on calibration rows (``assistant.precision``). Measuring needs the
training data (``ASSISTANT_DATA_DIR``); serving then needs only the saved file. `assistant train` writes the red-flag
model's calibration itself; run this after changing weights by other means, or for the retrieval encoder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.errors import InvalidInputError
from assistant.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="measure int8 calibrations (per-channel input maxima) on training rows"
    )
    csub = p.add_subparsers(dest="calibrate_command", metavar="MODEL", required=True)
    r = csub.add_parser("redflags", help="the red-flag model's, from its own training rows")
    r.add_argument("--model", type=Path, default=None, help="model folder (default: ASSISTANT_REDFLAG_MODEL)")
    r.add_argument("--data-dir", type=Path, default=None, help="datasets (default: ASSISTANT_DATA_DIR)")
    r.add_argument("--rows", type=int, default=None, help="training rows to measure on (default: 800)")
    r.set_defaults(handler=_run_redflags)
    q = csub.add_parser(
        "retrieval", help="the retrieval encoder's (live queries), from the red-flag recipe's training texts"
    )
    q.add_argument("--data-dir", type=Path, default=None, help="datasets (default: ASSISTANT_DATA_DIR)")
    q.add_argument("--rows", type=int, default=None, help="training texts to measure on (default: 800)")
    q.add_argument(
        "--out", type=Path, default=None, help="file (default: models/retrieval/int8_calibration...)"
    )
    q.set_defaults(handler=_run_retrieval)


def _rows(args: argparse.Namespace) -> int:
    from assistant.redflags.recipe import INT8_CALIBRATION_ROWS

    rows = INT8_CALIBRATION_ROWS if args.rows is None else args.rows
    if rows < 1:
        raise InvalidInputError(f"--rows must be positive, got {rows}")
    return int(rows)


def _run_redflags(args: argparse.Namespace) -> int:
    from assistant.redflags.classifier import RedFlagClassifier, write_int8_calibration
    from assistant.redflags.recipe import calibration_rows, model_splits
    from assistant.types import Utterance

    settings = get_settings()
    model = args.model or settings.redflag_model_path()
    clf = RedFlagClassifier.load(model, mode="fp32")
    train = model_splits(clf, args.data_dir or settings.data_dir)["train"]
    if not train:
        raise InvalidInputError(f"no training rows under {args.data_dir or settings.data_dir} for {model}")
    rows = calibration_rows(train, _rows(args))
    out = write_int8_calibration(model, [Utterance(e.text, tuple(e.context)) for e in rows])
    print(json.dumps({"out": str(out), "rows": len(rows)}))
    return 0


def _run_retrieval(args: argparse.Namespace) -> int:
    from assistant.knowledge.embedder import SentenceEmbedder
    from assistant.redflags.data import load_corpus
    from assistant.redflags.recipe import calibration_rows

    settings = get_settings()
    data_dir = args.data_dir or settings.data_dir
    # Live queries are customer turns: the red-flag corpus's training texts are that kind of text. Only train
    # rows: nothing of a validation or test split shapes the scales.
    train = load_corpus(data_dir, splits=("train",))
    if not train:
        raise InvalidInputError(f"no training rows under {data_dir}; set ASSISTANT_DATA_DIR")
    rows = calibration_rows(train, _rows(args))
    out = args.out or settings.retrieval_int8_calibration_path()
    SentenceEmbedder().write_int8_calibration([e.text for e in rows], out)  # all six layers
    print(json.dumps({"out": str(out), "rows": len(rows)}))
    return 0
