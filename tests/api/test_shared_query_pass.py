"""One encoder pass per customer chunk: where the red-flag pass returns query vectors for the advisor's retrieval
encoder, suggestions search with them and never wait for (or run) the query encoder; elsewhere it runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from streaming_support import make_settings
from test_overload import EncodingAdvisor, _events

from assistant.api.app import create_app
from assistant.testing import KeywordAnalyzer
from assistant.types import RedFlagResult, Utterance, shares_query_vectors


class VectorAnalyzer(KeywordAnalyzer):
    """Keyword flags plus a query vector per utterance (its length), as a classifier with a query map."""

    query_space = "encoder-A"

    def predict(self, utterances: list[Utterance]) -> list[RedFlagResult]:
        return [
            dataclasses.replace(r, query_vector=np.array([float(len(u.text))], dtype=np.float32))
            for r, u in zip(super().predict(utterances), utterances, strict=True)
        ]


class SpaceAdvisor(EncodingAdvisor):
    """The encoding advisor in a named query space; records the vector each customer turn was advised with."""

    def __init__(self, space: str) -> None:
        super().__init__()
        self.query_space = space
        self.vectors: dict[str, Any] = {}

    def advise(self, state: Any, **kw: Any) -> Any:
        if kw["speaker"] == "customer":
            self.vectors[kw["text"]] = kw.get("vector")
        return super().advise(state, **kw)


TURNS = ["my bill is wrong", "I want to cancel", "get me your manager"]


def _call(client: TestClient, call_id: str) -> list[dict[str, Any]]:
    with (
        client.websocket_connect(f"/v1/calls/{call_id}/events") as sidebar,
        client.websocket_connect(f"/v1/calls/{call_id}/stream") as src,
    ):
        src.receive_json()
        for seq, text in enumerate(TURNS, start=1):
            src.send_json({"seq": seq, "speaker": "customer", "text": text})
        events = _events(sidebar, lambda e: e["type"] == "processed" and e["seq"] == len(TURNS))
        src.send_json({"type": "end"})
    return events


def test_suggestions_search_with_the_red_flag_pass_vector_and_never_wait_for_the_query_encoder(
    tmp_path: Path,
) -> None:
    advisor = SpaceAdvisor("encoder-A")  # its encoder's gate stays shut: a pass would never finish in time
    settings = make_settings(tmp_path).model_copy(update={"suggestion_max_age_ms": 3000.0})
    with TestClient(create_app(settings, analyzer=VectorAnalyzer(), advisor=advisor)) as client:
        events = _call(client, "t-shared")
        body = client.post("/v1/analyze", json={"text": "I want to speak to a supervisor"}).json()
    processed = [e for e in events if e["type"] == "processed"]
    assert [e.get("shed") for e in processed] == [None] * len(TURNS)
    assert sum(e["type"] == "suggestion" for e in events) >= 1
    assert advisor.encoder.passes == 0
    assert {t: float(v[0]) for t, v in advisor.vectors.items() if t in TURNS} == {t: len(t) for t in TURNS}
    # The one-shot path searches with the same vector a live turn would.
    assert float(advisor.vectors["I want to speak to a supervisor"][0]) == len(
        "I want to speak to a supervisor"
    )
    assert body["flags"]["flagged"]


def test_another_retrieval_encoder_gets_its_own_query_pass(tmp_path: Path) -> None:
    advisor = SpaceAdvisor("encoder-B")
    advisor.encoder.gate.set()
    with TestClient(
        create_app(make_settings(tmp_path), analyzer=VectorAnalyzer(), advisor=advisor)
    ) as client:
        _call(client, "t-other-space")
    assert advisor.encoder.passes >= 1
    assert all(v is None for v in advisor.vectors.values())  # the gated fake encodes to None


@pytest.mark.parametrize(
    ("analyzer_space", "advisor_space", "shared"),
    [("A", "A", True), ("A", "B", False), (None, "A", False), ("A", None, False)],
)
def test_vectors_are_shared_only_within_one_query_space(
    analyzer_space: str | None, advisor_space: str | None, shared: bool
) -> None:
    analyzer, advisor = KeywordAnalyzer(), SpaceAdvisor("x")
    analyzer.query_space = analyzer_space  # type: ignore[attr-defined]
    advisor.query_space = advisor_space  # type: ignore[assignment]
    assert shares_query_vectors(analyzer, advisor) is shared
    assert shares_query_vectors(analyzer, None) is False
