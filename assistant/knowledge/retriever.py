"""Retrievers over a :class:`KnowledgeIndex`: dense (FAISS), lexical (BM25), and the fusion of both.

All rank *procedures* (a procedure scores as its best passage), so they are interchangeable in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from assistant.knowledge.embedder import Embedder
from assistant.knowledge.index import KnowledgeIndex

# How far the earlier turns count beside the utterance itself (tuned on the dev query set).
CONTEXT_WEIGHT = 0.3
# Passages looked at by dense search before procedures are aggregated.
DENSE_CANDIDATES = 64


@dataclass(frozen=True, slots=True)
class Query:
    """An utterance with its recent context (earlier turns, oldest first)."""

    text: str
    context: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hit:
    """One procedure ranked for a query, with its best passage and the component scores."""

    procedure_id: str
    score: float
    passage_index: int
    dense: float = 0.0
    lexical: float = 0.0


class Retriever(Protocol):
    """Ranks procedures for a query. Implementations: DenseRetriever, BM25Retriever, FusedRetriever."""

    name: str

    def warm_up(self) -> None: ...

    def retrieve(self, query: Query, *, top_k: int = 5) -> list[Hit]: ...


def _context_text(query: Query) -> str:
    return " ".join(query.context[-2:]).strip()


def _top(scores: np.ndarray, best_passage: np.ndarray, index: KnowledgeIndex, top_k: int) -> list[Hit]:
    order = np.argsort(-scores, kind="stable")[:top_k]
    ids = index.procedure_ids
    return [Hit(ids[i], float(scores[i]), int(best_passage[i])) for i in order]


class _DenseScorer:
    def __init__(self, index: KnowledgeIndex, embedder: Embedder, *, context_weight: float) -> None:
        self.index = index
        self.embedder = embedder
        self.context_weight = context_weight

    def vector(self, query: Query) -> np.ndarray:
        ctx = _context_text(query)
        if not ctx or self.context_weight <= 0:
            return self.embedder.encode([query.text])[0]
        both = self.embedder.encode([query.text, ctx])
        v = both[0] + self.context_weight * both[1]
        return v / max(float(np.linalg.norm(v)), 1e-9)

    def procedure_scores(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(best cosine per procedure, index of that passage); -1 where none of its passages is a candidate."""
        scores, ids = self.index.dense_passage_scores(vector, k=DENSE_CANDIDATES)
        per_passage = np.full(len(self.index.passages), -np.inf, dtype=np.float32)
        per_passage[ids] = scores
        return self.index.best_per_procedure(per_passage, fill=-1.0)


def _lexical_scores(
    index: KnowledgeIndex, query: Query, context_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    s = index.bm25_passage_scores(query.text)
    ctx = _context_text(query)
    if ctx and context_weight > 0:
        s = s + context_weight * index.bm25_passage_scores(ctx)
    return index.best_per_procedure(s, fill=0.0)


class DenseRetriever:
    """Cosine similarity of MiniLM embeddings (FAISS inner product on normalised vectors).

    Example:
        >>> r = DenseRetriever(index, FakeEmbedder())  # doctest: +SKIP
        >>> r.retrieve(Query("I want a refund"))[0].procedure_id  # doctest: +SKIP
    """

    name = "dense"

    def __init__(
        self, index: KnowledgeIndex, embedder: Embedder, *, context_weight: float = CONTEXT_WEIGHT
    ) -> None:
        self._dense = _DenseScorer(index, embedder, context_weight=context_weight)
        self.index = index

    def warm_up(self) -> None:
        self._dense.embedder.warm_up()

    def retrieve(self, query: Query, *, top_k: int = 5) -> list[Hit]:
        if self.index.empty:
            return []
        best, where = self._dense.procedure_scores(self._dense.vector(query))
        return _top(best, where, self.index, top_k)


class BM25Retriever:
    """Okapi BM25 over the same passages."""

    name = "bm25"

    def __init__(self, index: KnowledgeIndex, *, context_weight: float = CONTEXT_WEIGHT) -> None:
        self.index = index
        self.context_weight = context_weight

    def warm_up(self) -> None:
        return None

    def retrieve(self, query: Query, *, top_k: int = 5) -> list[Hit]:
        if self.index.empty:
            return []
        best, where = _lexical_scores(self.index, query, self.context_weight)
        return _top(best, where, self.index, top_k)


class FusedRetriever:
    """Dense and BM25 fused per procedure.

    ``mode="mix"`` (default): ``(1 - w) * cosine + w * bm25 / (bm25 + scale)``, an absolute score in about
    [0, 1] that the advisor can threshold; ``mode="rrf"``: reciprocal rank fusion (rank only).
    The defaults were chosen on ``eval/data/retrieval_dev.jsonl`` only.
    """

    name = "fused"

    def __init__(
        self,
        index: KnowledgeIndex,
        embedder: Embedder,
        *,
        lexical_weight: float = 0.2,
        lexical_scale: float = 8.0,
        mode: Literal["mix", "rrf"] = "mix",
        rrf_k: int = 60,
        context_weight: float = CONTEXT_WEIGHT,
    ) -> None:
        if not 0.0 <= lexical_weight <= 1.0:
            raise ValueError(f"lexical_weight must be in [0, 1], got {lexical_weight}")
        self.index = index
        self._dense = _DenseScorer(index, embedder, context_weight=context_weight)
        self.lexical_weight = lexical_weight
        self.lexical_scale = lexical_scale
        self.mode = mode
        self.rrf_k = rrf_k
        self.context_weight = context_weight

    def warm_up(self) -> None:
        self._dense.embedder.warm_up()

    def encode(self, query: Query) -> np.ndarray:
        """The query vector (one encoder call); pass it back to ``retrieve`` to reuse it."""
        return self._dense.vector(query)

    def retrieve(self, query: Query, *, top_k: int = 5, vector: np.ndarray | None = None) -> list[Hit]:
        if self.index.empty:
            return []
        vec = self._dense.vector(query) if vector is None else vector
        dense, dense_at = self._dense.procedure_scores(vec)
        lex, lex_at = _lexical_scores(self.index, query, self.context_weight)
        if self.mode == "rrf":
            dr = np.empty_like(dense)
            dr[np.argsort(-dense, kind="stable")] = np.arange(len(dense))
            lr = np.empty_like(lex)
            lr[np.argsort(-lex, kind="stable")] = np.arange(len(lex))
            w = self.lexical_weight
            fused = (1 - w) / (self.rrf_k + dr + 1) + w / (self.rrf_k + lr + 1)
        else:
            sat = lex / (lex + self.lexical_scale)
            fused = (1 - self.lexical_weight) * dense + self.lexical_weight * sat
        order = np.argsort(-fused, kind="stable")[:top_k].tolist()
        ids = self.index.procedure_ids
        # Plain lists first: one conversion per array instead of a float() per hit and field.
        fused_l, dense_l, lex_l = fused.tolist(), dense.tolist(), lex.tolist()
        dense_at_l, lex_at_l = dense_at.tolist(), lex_at.tolist()
        return [
            Hit(
                ids[i],
                fused_l[i],
                dense_at_l[i] if dense_at_l[i] >= 0 else lex_at_l[i],
                dense=dense_l[i],
                lexical=lex_l[i],
            )
            for i in order
        ]
