"""Red-flag report figures (per-label and macro F1) and retrieval metrics (recall@k, MRR), computed by hand."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assistant.eval.redflags import names_in, score_report
from assistant.eval.retrieval import RetrievalExample, _metrics, evaluate_one
from assistant.knowledge.retriever import Hit, Query


def test_score_report_per_label_and_macro_f1() -> None:
    truth = [{"insult", "abusive"}, {"insult", "abusive"}, set(), {"abusive", "profanity"}]
    scored = {
        # insult: tp rows 0, fn row 1, fp row 2 -> P 1/2 R 1/2 F1 1/2
        "insult": (np.array([0.9, 0.2, 0.7, 0.1]), np.array([True, False, True, False])),
        # abusive: all three positives found, no false alarm -> F1 1
        "abusive": (np.array([0.9, 0.8, 0.1, 0.7]), np.array([True, True, False, True])),
    }
    names = names_in([sorted(t) for t in truth])
    assert names == ["profanity", "insult", "abusive"]  # contract order: labels, then groups
    report = score_report(names, truth, scored)
    assert report["covers"] == ["insult", "abusive"]  # profanity is not scored by this system
    assert report["per_label"]["insult"]["f1"] == 0.5
    assert report["per_label"]["abusive"]["f1"] == 1.0
    assert report["macro_f1"] == 0.75  # (0.5 + 1.0) / 2, over the names the system covers
    assert score_report(["threat"], truth, scored)["macro_f1"] is None


def _ex(*relevant: str) -> RetrievalExample:
    return RetrievalExample("q", (), relevant)


def test_recall_at_k_and_mrr_on_a_tiny_ranked_list() -> None:
    ranked = [
        ["a", "b", "c", "d", "e"],  # relevant a at rank 1
        ["x", "y", "b", "z", "w"],  # relevant b at rank 3
        ["p", "q", "r", "s", "t"],  # relevant u not retrieved
        ["m", "n", "o", "k", "l"],  # relevant k at rank 4, or l at 5: the first one counts
    ]
    examples = [_ex("a"), _ex("b"), _ex("u"), _ex("k", "l")]
    m = _metrics(ranked, examples)
    assert m["recall@1"] == 1 / 4
    assert m["recall@3"] == 2 / 4
    assert m["recall@5"] == 3 / 4
    assert m["mrr"] == (1 + 1 / 3 + 0 + 1 / 4) / 4


@dataclass
class _Fixed:
    """A retriever that returns a fixed ranking per query text."""

    rankings: dict[str, list[str]]
    name: str = "fixed"

    def warm_up(self) -> None:
        pass

    def retrieve(self, query: Query, *, top_k: int = 5) -> list[Hit]:
        ids = self.rankings.get(query.text, [])[:top_k]
        return [Hit(pid, 1.0 / (i + 1), 0) for i, pid in enumerate(ids)]


def test_evaluate_one_ranks_by_the_retriever() -> None:
    retriever = _Fixed({"refund": ["billing", "refunds"], "warm up": []})
    examples = [RetrievalExample("refund", (), ("refunds",)), RetrievalExample("other", (), ("x",))]
    res = evaluate_one(retriever, examples)
    assert (res["recall@1"], res["recall@3"], res["mrr"], res["n"]) == (0.0, 0.5, 0.25, 2)


def test_context_budget_sweep_scores_each_budget_and_restores_it() -> None:
    from types import SimpleNamespace
    from typing import Any

    from assistant.eval.redflags import context_budget_sweep

    clf: Any = SimpleNamespace(config=SimpleNamespace(max_context_tokens=8))
    seen: list[int | None] = []

    def score(c: Any, rows: Any) -> dict[str, Any]:
        seen.append(c.config.max_context_tokens)
        return {"rows": len(rows)}

    out = context_budget_sweep(clf, [1, 2], [0, 16, None], score=score)
    assert seen == [0, 16, None]
    assert out == {"0": {"rows": 2}, "16": {"rows": 2}, "none": {"rows": 2}}
    assert clf.config.max_context_tokens == 8
