"""`assistant train query-map`: fit a red-flag model's query map, so one encoder pass serves red flags and retrieval."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.settings import BASE_ENCODER_LAYERS, get_settings

DEFAULT_TRAIN_ROWS = 20_000
DEFAULT_VALID_ROWS = 4_000


def register(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser(
        "query-map",
        help="fit the linear map from a red-flag model's hidden states to retrieval query vectors",
        description="Runs the red-flag model and the retrieval encoder (its first --layers layers) on the model's "
        "own training rows, fits a ridge regression from the model's pooled hidden states to the encoder's query "
        "vectors (the ridge chosen on validation rows by mean cosine), and writes query_map.safetensors into the "
        "model folder. The service then takes a customer chunk's query vector from its red-flag pass "
        "(ASSISTANT_SHARED_QUERY_PASS) wherever it runs a retrieval encoder of that depth.",
    )
    p.add_argument("--model", type=Path, default=None, help="model folder (default: ASSISTANT_REDFLAG_MODEL)")
    p.add_argument(
        "--layers",
        type=int,
        default=None,
        help=f"the retrieval encoder's layers the map is for, 1-{BASE_ENCODER_LAYERS} (default: what the service "
        "runs here, ASSISTANT_QUERY_ENCODER_LAYERS)",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="datasets (default: ASSISTANT_DATA_DIR)")
    p.add_argument("--rows", type=int, default=DEFAULT_TRAIN_ROWS, help="training rows to fit on")
    p.add_argument(
        "--valid-rows", type=int, default=DEFAULT_VALID_ROWS, help="validation rows to choose the ridge on"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from assistant.digest import file_sha256
    from assistant.errors import InvalidInputError
    from assistant.knowledge.embedder import SentenceEmbedder
    from assistant.redflags.classifier import WEIGHTS_FILE, RedFlagClassifier
    from assistant.redflags.querymap import QUERY_MAP_FILE, build_query_map
    from assistant.redflags.recipe import calibration_rows, model_splits
    from assistant.types import Utterance

    settings = get_settings()
    layers = args.layers if args.layers is not None else settings.retrieval_encoder_layers()
    if not 1 <= layers <= BASE_ENCODER_LAYERS:
        raise InvalidInputError(f"--layers must be 1-{BASE_ENCODER_LAYERS}, got {layers}")
    if args.rows < 1 or args.valid_rows < 1:
        raise InvalidInputError(
            f"--rows and --valid-rows must be positive, got {args.rows} and {args.valid_rows}"
        )
    model = args.model or settings.redflag_model_path()
    clf = RedFlagClassifier.load(model, mode="fp32")  # the weights as trained; served precisions follow them
    splits = model_splits(clf, args.data_dir or settings.data_dir)
    if not splits["train"] or not splits["valid"]:
        raise InvalidInputError(
            f"no training or validation rows under {args.data_dir or settings.data_dir} for {model}; "
            "set ASSISTANT_DATA_DIR"
        )
    # Only train and valid rows: no test text shapes the map (the retrieval eval sets are not in the corpus).
    train, valid = (
        [Utterance(e.text, tuple(e.context)) for e in calibration_rows(splits[name], n)]
        for name, n in (("train", args.rows), ("valid", args.valid_rows))
    )
    embedder = SentenceEmbedder(layers=None if layers >= BASE_ENCODER_LAYERS else layers)
    embedder.warm_up()
    qmap = build_query_map(
        clf,
        embedder,
        train,
        valid,
        model_sha256=file_sha256(model / WEIGHTS_FILE),
        progress=not args.no_progress,
        log=print,
    )
    out = qmap.save(model / QUERY_MAP_FILE)
    print(json.dumps({"out": str(out), "layers": layers, **qmap.report}))
    return 0
