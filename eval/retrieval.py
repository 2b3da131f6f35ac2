"""Retrieval evaluation: recall@k and MRR of procedure retrievers on a labelled query set.

The data format is fixed by shared/PRODUCT.md: one JSON object per line,
``{"query": str, "context": [str, ...] (optional), "relevant": [doc_id, ...]}``.
Primary metric: ``mrr``. ``evaluate`` is pure; ``assistant eval retrieval`` is a thin CLI over it.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import DataError, InvalidInputError
from assistant.knowledge.retriever import Query, Retriever

PRIMARY_METRIC = "mrr"
KS: tuple[int, ...] = (1, 3, 5)


@dataclass(frozen=True, slots=True)
class RetrievalExample:
    query: str
    context: tuple[str, ...]
    relevant: tuple[str, ...]


def read_examples(path: Path) -> list[RetrievalExample]:
    """Read a retrieval JSONL file; raise InvalidInputError naming the line of the first bad record."""
    if not path.is_file():
        raise InvalidInputError(f"no such file: {path} (expected a retrieval JSONL file)")
    out: list[RetrievalExample] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{path}:{n}: not JSON ({e.msg})") from e
        query, relevant, context = obj.get("query"), obj.get("relevant"), obj.get("context", [])
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"{path}:{n}: expected a non-empty string 'query'")
        if not isinstance(relevant, list) or not relevant or not all(isinstance(r, str) for r in relevant):
            raise InvalidInputError(f"{path}:{n}: expected 'relevant' to be a non-empty list of doc ids")
        if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
            raise InvalidInputError(f"{path}:{n}: expected 'context' to be a list of strings")
        out.append(RetrievalExample(query, tuple(context), tuple(relevant)))
    if not out:
        raise InvalidInputError(f"{path} holds no examples")
    return out


def _metrics(ranked: Sequence[Sequence[str]], examples: Sequence[RetrievalExample]) -> dict[str, float]:
    out: dict[str, float] = {}
    n = len(examples)
    for k in KS:
        out[f"recall@{k}"] = (
            sum(1 for r, ex in zip(ranked, examples, strict=True) if set(r[:k]) & set(ex.relevant)) / n
        )
    rr = []
    for r, ex in zip(ranked, examples, strict=True):
        rank = next((i + 1 for i, pid in enumerate(r) if pid in ex.relevant), None)
        rr.append(1.0 / rank if rank else 0.0)
    out["mrr"] = sum(rr) / n
    return out


def evaluate_one(retriever: Retriever, examples: Sequence[RetrievalExample]) -> dict[str, Any]:
    """Metrics of one retriever, plus latency per query (p50 and p90 in ms) after a warm-up query."""
    retriever.warm_up()
    retriever.retrieve(Query("warm up"), top_k=max(KS))
    ranked: list[list[str]] = []
    times: list[float] = []
    for ex in examples:
        t0 = time.perf_counter()
        hits = retriever.retrieve(Query(ex.query, ex.context), top_k=max(KS))
        times.append((time.perf_counter() - t0) * 1000)
        ranked.append([h.procedure_id for h in hits])
    res: dict[str, Any] = _metrics(ranked, examples)
    res["latency_ms_p50"] = statistics.median(times)
    res["latency_ms_p90"] = sorted(times)[int(0.9 * (len(times) - 1))]
    res["n"] = len(examples)
    return res


def evaluate(
    model: Retriever,
    examples: Sequence[RetrievalExample],
    *,
    baselines: Mapping[str, Retriever] | None = None,
) -> dict[str, Any]:
    """The model's metrics at top level and each baseline's under ``baselines``.

    Example:
        >>> report = evaluate(fused, examples, baselines={"bm25": bm25, "dense": dense})  # doctest: +SKIP
        >>> report["mrr"], report["baselines"]["bm25"]["mrr"]  # doctest: +SKIP
    """
    report = evaluate_one(model, examples)
    report["model"] = model.name
    report["primary_metric"] = PRIMARY_METRIC
    report["baselines"] = {name: evaluate_one(r, examples) for name, r in (baselines or {}).items()}
    unknown: set[str] = set()
    for ex in examples:
        unknown |= set(ex.relevant)
    report["relevant_ids"] = sorted(unknown)
    return report


def format_table(report: Mapping[str, Any]) -> str:
    """A fixed-width table: one row per retriever."""
    cols = ["recall@1", "recall@3", "recall@5", "mrr", "latency_ms_p50"]
    rows = [(str(report.get("model", "model")), report), *list(report.get("baselines", {}).items())]
    head = f"{'retriever':<10}" + "".join(f"{c:>16}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, r in rows:
        lines.append(f"{name:<10}" + "".join(f"{r[c]:>16.3f}" for c in cols))
    lines.append(f"n={report['n']} queries; primary metric: {PRIMARY_METRIC}")
    return "\n".join(lines)


def synthetic_benchmark(
    embedder: Any, *, passages: int = 1000, queries: Sequence[str] = (), workdir: Path, seed: int = 0
) -> dict[str, Any]:
    """Build time and one-chunk advisor latency (encode + search + fusion + step choice) on a synthetic KB.

    The synthetic knowledge base has ``passages`` passages (procedures of 8 steps, a summary and one phrase
    each), written as Markdown and built cold (no embedding cache). Latency is the median over the queries
    after a warm-up, each run as a customer chunk on a fresh call.
    """
    import random

    from assistant.knowledge.advisor import KnowledgeAdvisor
    from assistant.knowledge.index import build_from_settings
    from assistant.settings import load_settings

    rng = random.Random(seed)
    words = [
        "account",
        "bill",
        "charge",
        "refund",
        "order",
        "delivery",
        "password",
        "router",
        "signal",
        "contract",
        "payment",
        "invoice",
        "plan",
        "upgrade",
        "cancel",
        "return",
        "address",
        "phone",
        "card",
        "fee",
        "store",
        "credit",
        "shipping",
        "package",
        "item",
        "warranty",
        "outage",
        "complaint",
        "supervisor",
        "transfer",
        "callback",
        "email",
        "verify",
        "identity",
        "reset",
        "login",
        "app",
        "website",
        "speed",
        "error",
        "fix",
        "replace",
    ]
    kb_dir = workdir / "kb"
    kb_dir.mkdir(parents=True, exist_ok=True)
    n_proc = max(1, passages // 10)
    for i in range(n_proc):
        steps = "\n".join(
            f"{k}. **{' '.join(rng.sample(words, 3))}.** {' '.join(rng.sample(words, 10))}\n"
            f'   > Say: "{" ".join(rng.sample(words, 8))}"'
            for k in range(1, 9)
        )
        kb_dir.joinpath(f"p{i:04d}.md").write_text(
            f"---\nid: synthetic-{i:04d}\ntitle: {' '.join(rng.sample(words, 4))}\nstage: problem_resolution\n"
            f"answers: [synthetic]\nversion: '1'\nlast_revised: 2024-01-01\nphrases: ['{' '.join(rng.sample(words, 6))}']\n"
            f"---\n# Synthetic {i}\n\n{' '.join(rng.sample(words, 20))}\n\n## Steps\n\n{steps}\n",
            encoding="utf-8",
        )
    settings = load_settings(knowledge_dir=kb_dir, var_dir=workdir / "var")
    embedder.warm_up()
    t0 = time.perf_counter()
    report = build_from_settings(settings, embedder, force=True)
    build_s = time.perf_counter() - t0
    advisor = KnowledgeAdvisor(settings, embedder, index=report.index)
    qs = list(queries) or ["I want a refund for my order"]
    for q in qs[:5]:
        advisor.advise(advisor.start_call(), speaker="customer", text=q, context=(), flags=None)
    times: list[float] = []
    for q in qs:
        state = advisor.start_call()
        t = time.perf_counter()
        advisor.advise(state, speaker="customer", text=q, context=(), flags=None)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "passages": len(report.index.passages),
        "procedures": len(report.index.procedures),
        "build_seconds": build_s,
        "chunk_latency_ms_p50": statistics.median(times),
        "chunk_latency_ms_p90": times[int(0.9 * (len(times) - 1))],
        "chunk_latency_ms_min": times[0],
        "queries": len(times),
    }
