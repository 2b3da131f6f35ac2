"""`assistant eval retrieval`: fused retrieval against BM25 alone and dense alone, on one query file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrieval",
        help="recall@1/3/5 and MRR of SOP retrieval (fused vs BM25 vs dense) on a JSONL query set",
        description='Each line: {"query": str, "context": [str] (optional), "relevant": [doc_id, ...]}.',
    )
    p.add_argument("--data", type=Path, required=True, help="retrieval JSONL file")
    p.add_argument("--json", type=Path, default=None, help="write the metrics as JSON to this file")
    p.add_argument(
        "--with-packs",
        action="store_true",
        help="search the imported packs too (default: the shipped knowledge base only, so runs compare)",
    )
    p.add_argument(
        "--bench-passages",
        type=int,
        default=0,
        metavar="N",
        help="also time a cold index build and one-chunk latency on a synthetic N-passage knowledge base",
    )
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None, help="encoder device")
    p.add_argument(
        "--mode",
        choices=["fp32", "int8", "bf16", "auto"],
        default="fp32",
        help="query encoder precision (passages are always embedded in fp32), as the service runs it "
        "with ASSISTANT_INFERENCE_MODE",
    )
    p.add_argument(
        "--encoder-layers",
        type=int,
        default=None,
        metavar="N",
        help="the retrieval encoder's first N layers, for queries and passages (default: what the service runs "
        "here, ASSISTANT_QUERY_ENCODER_LAYERS: 6 with bf16 units or a GPU, else 4)",
    )
    p.add_argument(
        "--shared-pass",
        action="store_true",
        help="queries from the red-flag model's pass through its query map, as the service runs them where the "
        "model has one for this retrieval encoder (ASSISTANT_SHARED_QUERY_PASS); --mode is then the red-flag "
        "model's precision",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from assistant.errors import InvalidInputError
    from assistant.eval.retrieval import evaluate, format_table, read_examples
    from assistant.knowledge.advisor import retrieval_layers
    from assistant.knowledge.document import load_knowledge_base
    from assistant.knowledge.embedder import SentenceEmbedder
    from assistant.knowledge.index import build_index, knowledge_folders
    from assistant.knowledge.retriever import BM25Retriever, DenseRetriever, FusedRetriever
    from assistant.settings import BASE_ENCODER_LAYERS, get_settings

    examples = read_examples(args.data)
    settings = get_settings()
    folders = knowledge_folders(settings) if args.with_packs else [settings.knowledge_dir]
    kb = load_knowledge_base(folders)
    for p in kb.problems:
        print(f"skipped: {p}")
    if not kb.procedures:
        raise InvalidInputError(f"the knowledge base in {folders[0]} is empty: nothing to evaluate")
    if args.encoder_layers is not None and not 1 <= args.encoder_layers <= BASE_ENCODER_LAYERS:
        raise InvalidInputError(
            f"--encoder-layers must be 1-{BASE_ENCODER_LAYERS}, got {args.encoder_layers}"
        )
    if args.encoder_layers is not None:
        settings = settings.model_copy(update={"query_encoder_layers": args.encoder_layers})
    embedder = SentenceEmbedder(device=args.device or settings.device, layers=retrieval_layers(settings))
    cache = settings.resolved_index_dir() / "cache" / embedder.fingerprint[:16]
    index = build_index(kb, embedder, index_dir=None, cache_dir=cache).index
    embedder.set_query_precision(  # as the service runs it
        args.mode,
        torchscript=settings.torchscript,
        calibration=settings.retrieval_int8_calibration_path(),
        row_buckets=settings.bf16_row_buckets,
    )
    queries: Any = embedder
    if args.shared_pass:
        queries = _RedFlagQueries.load(settings, args, embedder.fingerprint)
    unknown = sorted({r for ex in examples for r in ex.relevant} - set(index.procedures))
    if unknown:
        print(f"warning: relevant ids not in the knowledge base: {', '.join(unknown)}")
    report = evaluate(
        FusedRetriever(index, queries),
        examples,
        baselines={"bm25": BM25Retriever(index), "dense": DenseRetriever(index, queries)},
    )
    report["data"] = str(args.data)
    report["passages"] = len(index.passages)
    report["mode"] = args.mode
    report["precision"] = queries.query_precision
    report["queries"] = "red-flag pass" if args.shared_pass else "retrieval encoder"
    report["encoder_layers"] = embedder.layers or BASE_ENCODER_LAYERS
    print(format_table(report))
    print(
        f"encoder: {report['encoder_layers']} of {BASE_ENCODER_LAYERS} layers, queries from the {report['queries']} "
        f"in {args.mode} ({queries.query_precision})"
    )
    if args.bench_passages > 0:
        import tempfile

        from assistant.eval.retrieval import synthetic_benchmark

        with tempfile.TemporaryDirectory() as tmp:
            bench = synthetic_benchmark(
                embedder,
                passages=args.bench_passages,
                queries=[ex.query for ex in examples],
                workdir=Path(tmp),
            )
        report["benchmark"] = bench
        print(
            f"synthetic KB: {bench['passages']} passages; build {bench['build_seconds']:.1f}s; one chunk "
            f"(encode + search + fusion) p50 {bench['chunk_latency_ms_p50']:.1f} ms, "
            f"p90 {bench['chunk_latency_ms_p90']:.1f} ms"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


class _RedFlagQueries:
    """The red-flag model's query vectors as an ``Embedder`` for the retrievers (passages stay the encoder's)."""

    name = "red-flag pass"
    dim = 384

    def __init__(self, clf: Any) -> None:
        self._clf = clf
        self.fingerprint = clf.query_space
        self.query_precision = clf.precision

    @classmethod
    def load(cls, settings: Any, args: argparse.Namespace, space: str) -> _RedFlagQueries:
        from assistant.errors import InvalidInputError
        from assistant.redflags.classifier import RedFlagClassifier

        path = settings.redflag_model_path()
        clf = RedFlagClassifier.load(
            path,
            device=args.device or settings.device,
            mode=args.mode,
            torchscript=settings.torchscript,
            query_space=space,
            row_buckets=settings.bf16_row_buckets,
        )
        if clf.query_map is None:
            raise InvalidInputError(
                f"{path} has no query map for this retrieval encoder; write one with "
                f"`assistant train query-map --model {path} --layers N`"
            )
        return cls(clf)

    def warm_up(self) -> None:
        return None

    def encode(self, texts: Any, *, progress: Any = None) -> Any:
        from assistant.types import Utterance

        return self._clf.query_vectors([Utterance(t) for t in texts])
