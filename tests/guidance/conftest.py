"""Fixtures of the guidance tests: the shipped policies and the demo transcripts as CallFacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from assistant.calls.redaction import redact
from assistant.guidance.facts import CallFacts, Turn
from assistant.guidance.policy import (
    DEFAULT_PROTOCOL_FILE,
    DEFAULT_STAGES_FILE,
    ProtocolPolicy,
    StagePolicy,
    load_protocol_policy,
    load_stage_policy,
)
from assistant.settings import PROJECT_ROOT
from assistant.testing import KeywordAnalyzer
from assistant.types import Utterance

TRANSCRIPTS = PROJECT_ROOT / "eval" / "transcripts"
STARTED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def stage_policy() -> StagePolicy:
    return load_stage_policy(DEFAULT_STAGES_FILE)


@pytest.fixture(scope="session")
def protocol_policy() -> ProtocolPolicy:
    return load_protocol_policy(DEFAULT_PROTOCOL_FILE)


def demo_facts(name: str, *, agent: str | None = "agent-7") -> CallFacts:
    """A demo transcript as the service would record it: redacted, customer turns flagged (keyword analyzer)."""
    analyzer = KeywordAnalyzer()
    turns = []
    for line in (TRANSCRIPTS / f"{name}.jsonl").read_text().splitlines():
        c = json.loads(line)
        text = redact(c["text"]).text
        labels = tuple(analyzer.predict([Utterance(text)])[0].flagged) if c["speaker"] == "customer" else ()
        turns.append(Turn(c["seq"], c["speaker"], text, c.get("ts"), labels))
    end = STARTED + timedelta(seconds=turns[-1].ts or 0.0)
    return CallFacts(name, agent=agent, started_at=STARTED, ended_at=end, status="ended", turns=tuple(turns))


@pytest.fixture(scope="session")
def demo() -> Callable[..., CallFacts]:
    return demo_facts
