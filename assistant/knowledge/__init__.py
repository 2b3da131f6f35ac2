"""The SOP knowledge base and next-step retrieval.

Public API (what the service and the CLI use)::

    from assistant.knowledge import load_advisor

    advisor = load_advisor(settings, device="cpu")        # encoder + index, rebuilt when stale
    state = advisor.start_call()
    suggestions = advisor.advise(state, speaker="customer", text=..., context=(...), flags=red_flag_result)
"""

from __future__ import annotations

from assistant.knowledge.advisor import AdvisorConfig, KnowledgeAdvisor, ProcedureProgress, load_advisor
from assistant.knowledge.document import (
    KnowledgeBase,
    KnowledgeProblem,
    Procedure,
    Step,
    load_knowledge_base,
    parse_file,
    parse_text,
)
from assistant.knowledge.embedder import Embedder, FakeEmbedder, SentenceEmbedder
from assistant.knowledge.importer import ImportReport, import_pack
from assistant.knowledge.index import (
    BuildReport,
    KnowledgeIndex,
    build_from_settings,
    build_index,
    knowledge_folders,
    load_index,
)
from assistant.knowledge.retriever import BM25Retriever, DenseRetriever, FusedRetriever, Hit, Query, Retriever

__all__ = [
    "AdvisorConfig",
    "BM25Retriever",
    "BuildReport",
    "DenseRetriever",
    "Embedder",
    "FakeEmbedder",
    "FusedRetriever",
    "Hit",
    "ImportReport",
    "KnowledgeAdvisor",
    "KnowledgeBase",
    "KnowledgeIndex",
    "KnowledgeProblem",
    "Procedure",
    "ProcedureProgress",
    "Query",
    "Retriever",
    "SentenceEmbedder",
    "Step",
    "build_from_settings",
    "build_index",
    "import_pack",
    "knowledge_folders",
    "load_advisor",
    "load_index",
    "load_knowledge_base",
    "parse_file",
    "parse_text",
]
