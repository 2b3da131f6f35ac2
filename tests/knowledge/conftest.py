"""Fixtures for the knowledge-base tests: tiny SOP folders, settings pointing at them, the real encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
from kb_helpers import WriteSop, sop_text

from assistant.knowledge.embedder import FakeEmbedder, SentenceEmbedder
from assistant.settings import Settings, load_settings


@pytest.fixture
def write_sop(tmp_path: Path) -> WriteSop:
    def write(folder: str, name: str, text: str) -> Path:
        path = tmp_path / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def small_kb(write_sop: WriteSop, tmp_path: Path) -> Path:
    """Four procedures: billing, refund, escalation (answers escalation_request), de-escalation (frustration)."""
    write_sop(
        "kb",
        "billing.md",
        sop_text(
            "billing",
            "Billing charge invoice",
            [
                ("Open account", "let me open your billing account"),
                ("Explain charge", "the charge on your bill is for the monthly fee"),
                ("Correct charge", "I have reversed the wrong charge"),
            ],
            answers="billing",
            summary="charge bill invoice payment overcharged",
        ),
    )
    write_sop(
        "kb",
        "refund.md",
        sop_text(
            "refund",
            "Refund return item",
            [("Find order", "what is your order number"), ("Issue refund", "I have issued your refund")],
            answers="refund",
            summary="refund money back return item boots",
        ),
    )
    write_sop(
        "kb",
        "escalation.md",
        sop_text(
            "escalation",
            "Supervisor escalation",
            [
                ("Acknowledge", "I will get my supervisor"),
                ("Transfer", "transferring you to the supervisor now"),
            ],
            answers="escalation_request",
            summary="manager supervisor speak transfer",
        ),
    )
    write_sop(
        "kb",
        "calm.md",
        sop_text(
            "calm",
            "Calm angry customer",
            [("Listen", "I hear how frustrating this is"), ("Own it", "I will own this problem")],
            answers="frustration",
            summary="angry frustrated annoyed fed up again",
        ),
    )
    return tmp_path / "kb"


@pytest.fixture
def kb_settings(small_kb: Path, tmp_path: Path) -> Settings:
    return load_settings(knowledge_dir=small_kb, var_dir=tmp_path / "var")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def minilm() -> SentenceEmbedder:
    """The real shipped encoder, loaded once per test session."""
    emb = SentenceEmbedder(device="cpu")
    emb.warm_up()
    return emb
