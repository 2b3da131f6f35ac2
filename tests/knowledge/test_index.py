from __future__ import annotations

from pathlib import Path

import pytest
from kb_helpers import sop_text

from assistant.errors import StaleIndexError
from assistant.knowledge.bm25 import BM25Index, tokenize
from assistant.knowledge.embedder import FakeEmbedder
from assistant.knowledge.index import build_from_settings, load_index
from assistant.knowledge.retriever import BM25Retriever, DenseRetriever, FusedRetriever, Query
from assistant.settings import Settings


def test_bm25_ranks_matching_passage_first() -> None:
    idx = BM25Index(["billing charge on my bill", "speak to a supervisor", "refund my boots"])
    assert int(idx.scores("why was I charged on the bill").argmax()) == 0
    assert tokenize("Charges")[0] == tokenize("charged")[0]


def test_build_writes_manifest_and_rebuild_reembeds_only_changed(
    kb_settings: Settings, small_kb: Path
) -> None:
    emb = FakeEmbedder()
    first = build_from_settings(kb_settings, emb)
    assert sorted(first.embedded) == ["billing", "calm", "escalation", "refund"]
    manifest = first.index.manifest
    assert manifest["passage_count"] == len(first.index.passages)
    assert manifest["encoder"]["fingerprint"] == emb.fingerprint
    assert {d["id"] for d in manifest["documents"]} == {"billing", "calm", "escalation", "refund"}

    again = build_from_settings(kb_settings, emb)
    assert again.up_to_date and again.embedded == ()

    (small_kb / "refund.md").write_text(sop_text("refund", "Refund v2", [("Find", "order number please")]))
    calls = emb.calls
    third = build_from_settings(kb_settings, emb)
    assert third.embedded == ("refund",)
    assert len(third.reused) == 3
    assert emb.calls - calls == sum(1 for p in third.index.passages if p.procedure_id == "refund")

    forced = build_from_settings(kb_settings, emb, force=True)
    assert len(forced.embedded) == 4


def test_stale_index_is_refused_or_rebuilt(kb_settings: Settings, small_kb: Path) -> None:
    emb = FakeEmbedder()
    with pytest.raises(StaleIndexError, match="no index"):
        load_index(kb_settings, emb, auto_rebuild=False)
    build_from_settings(kb_settings, emb)
    assert len(load_index(kb_settings, emb, auto_rebuild=False).procedures) == 4

    (small_kb / "new.md").write_text(sop_text("new", "New", [("A", "a")]))
    with pytest.raises(StaleIndexError, match="documents added: new"):
        load_index(kb_settings, emb, auto_rebuild=False)
    with pytest.raises(StaleIndexError, match="encoder differs"):
        load_index(kb_settings, FakeEmbedder(version="2"), auto_rebuild=False)
    rebuilt = load_index(kb_settings, emb, auto_rebuild=True)
    assert "new" in rebuilt.procedures
    assert len(load_index(kb_settings, emb, auto_rebuild=False).procedures) == 5


def test_retrievers_share_the_protocol_and_rank_procedures(kb_settings: Settings) -> None:
    emb = FakeEmbedder()
    index = build_from_settings(kb_settings, emb).index
    for r in (BM25Retriever(index), DenseRetriever(index, emb), FusedRetriever(index, emb)):
        r.warm_up()
        hits = r.retrieve(Query("I want a refund for my boots"), top_k=3)
        assert hits[0].procedure_id == "refund", r.name
        assert len(hits) == 3
        assert hits[0].score >= hits[1].score


def test_empty_knowledge_base_builds_an_empty_index(tmp_path: Path) -> None:
    from assistant.settings import load_settings

    settings = load_settings(knowledge_dir=tmp_path / "none", var_dir=tmp_path / "var")
    report = build_from_settings(settings, FakeEmbedder())
    assert report.index.empty
    assert FusedRetriever(report.index, FakeEmbedder()).retrieve(Query("hello")) == []
