"""Overload by priority through the real service on fakes: red flags never wait for or lose to suggestions;
stale suggestions are skipped, counted, named in ``processed`` and announced with ``degraded``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from streaming_support import make_settings

from assistant.api.app import create_app
from assistant.testing import KeywordAnalyzer, RuleAdvisor


class GatedEncoder:
    """A query encoder whose passes wait until the test opens the gate: a CPU that has fallen behind."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.passes = 0

    def predict(self, texts: list[str], /) -> list[Any]:
        self.gate.wait(10.0)
        self.passes += 1
        return [None] * len(texts)


class EncodingAdvisor(RuleAdvisor):
    """The rule advisor with a (gated) query encoder for customer turns, as the real advisor has."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = GatedEncoder()

    def query_encoder(self) -> GatedEncoder:  # type: ignore[override]
        return self.encoder

    def needs_vector(self, speaker: str) -> bool:
        return speaker == "customer"


def _events(ws: WebSocketTestSession, until: Any, *, limit: int = 500) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(limit):
        ev = ws.receive_json()
        got.append(ev)
        if until(ev):
            return got
    raise AssertionError(f"condition not met in {limit} events: {[e['type'] for e in got]}")


@pytest.fixture
def advisor() -> EncodingAdvisor:
    return EncodingAdvisor()


def _client(tmp_path: Path, advisor: EncodingAdvisor, *, recover_s: float) -> Any:
    # Shedding here comes from coalescing (newer turns wait behind a stuck pass), not from the clock: the age
    # limit is long enough that a busy test machine does not skip the turns meant to go through.
    settings = make_settings(tmp_path).model_copy(
        update={"suggestion_max_age_ms": 3000.0, "degraded_recover_s": recover_s, "flags_late_ms": 5000.0}
    )
    return TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=advisor))


@pytest.fixture
def client(tmp_path: Path, advisor: EncodingAdvisor) -> Any:
    with _client(tmp_path, advisor, recover_s=0.5) as c:
        yield c


CUSTOMER = ["my bill is wrong", "you useless idiot", "I want to cancel", "still waiting", "ok thanks"]


def test_red_flags_keep_flowing_while_suggestions_are_shed_then_recover(
    client: TestClient, advisor: EncodingAdvisor
) -> None:
    call_id = "t-overload"
    with (
        client.websocket_connect("/v1/alerts") as sup,
        client.websocket_connect(f"/v1/calls/{call_id}/events") as sidebar,
        client.websocket_connect(f"/v1/calls/{call_id}/stream") as src,
    ):
        src.receive_json()  # ready
        for seq, text in enumerate(CUSTOMER, start=1):
            src.send_json({"seq": seq, "speaker": "customer", "text": text})
        # The encoder is stuck, yet every customer chunk gets its red-flag result, in order.
        seen: dict[int, str] = {}
        events = _events(
            sidebar,
            lambda e: (
                (e["type"] in ("flag", "scored") and seen.setdefault(e["seq"], e["type"]) and len(seen) == 5)
                or False
            ),
        )
        assert sorted(seen) == [1, 2, 3, 4, 5] and seen[2] == "flag" and seen[1] == "scored"
        assert advisor.encoder.passes == 0 and not any(e["type"] == "suggestion" for e in events)
        advisor.encoder.gate.set()  # the CPU catches up: late work is skipped, not done late
        events += _events(sidebar, lambda e: e["type"] == "processed" and e["seq"] == 5)
        processed = {e["seq"]: e for e in events if e["type"] == "processed"}
        assert sorted(processed) == [1, 2, 3, 4, 5]
        shed = [s for s, e in processed.items() if e.get("shed") == ["suggestions"]]
        assert len(shed) >= 3, processed  # replaced by the newer turn of the same call
        degraded = [e for e in events if e["type"] == "degraded"]
        assert degraded and degraded[0]["features"] == ["suggestions"] and degraded[0]["call_id"] == call_id
        # A customer turn in time again: its suggestion is made, and the sidebar hears the recovery.
        src.send_json({"seq": 6, "speaker": "customer", "text": "can I get a refund for my bill"})
        after = _events(sidebar, lambda e: e["type"] == "processed" and e["seq"] == 6)
        assert "shed" not in after[-1]
        assert any(e["type"] == "degraded" and e["recovered"] == ["suggestions"] for e in after)
        # Supervisors: the service fell behind, then recovered after degraded_recover_s.
        sup_events = _events(sup, lambda e: e["type"] == "degraded" and e["recovered"] == ["suggestions"])
        first = next(e for e in sup_events if e["type"] == "degraded")
        assert first["features"] == ["suggestions"] and first["shed"]["suggestions"] >= 1
        src.send_json({"type": "end"})
    metrics = client.get("/metrics").text
    assert 'assistant_shed_total{kind="suggestions"}' in metrics


def test_a_supervisor_who_connects_while_the_service_is_behind_hears_it_first(
    tmp_path: Path, advisor: EncodingAdvisor
) -> None:
    with (
        _client(tmp_path, advisor, recover_s=600.0) as client,
        client.websocket_connect("/v1/calls/t-late/events") as sidebar,
        client.websocket_connect("/v1/calls/t-late/stream") as src,
    ):
        src.receive_json()
        for seq, text in enumerate(CUSTOMER, start=1):
            src.send_json({"seq": seq, "speaker": "customer", "text": text})
        _events(sidebar, lambda e: e["type"] == "scored" and e["seq"] == 5)
        advisor.encoder.gate.set()
        _events(sidebar, lambda e: e["type"] == "processed" and e["seq"] == 5)
        with client.websocket_connect("/v1/alerts") as sup:
            first = sup.receive_json()
        assert first["type"] == "degraded" and first["features"] == ["suggestions"] and "call_id" not in first
        assert first["shed"]["suggestions"] >= 3


class ThreadRecordingAdvisor(EncodingAdvisor):
    """Records which thread advises each turn."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder.gate.set()
        self.threads: dict[str, set[str]] = {"agent": set(), "customer": set()}

    def advise(self, state: Any, **kw: Any) -> Any:
        try:
            asyncio.get_running_loop()
            where = "event loop"
        except RuntimeError:
            where = threading.current_thread().name
        self.threads[kw["speaker"]].add(where)
        return super().advise(state, **kw)


@pytest.mark.parametrize("batched", [True, False])
def test_advice_without_an_encoder_pass_left_runs_on_the_event_loop(tmp_path: Path, batched: bool) -> None:
    # A hop to an advisor thread costs more than advice over a given vector (pipeline._advise); advice that must
    # still encode its query (no batched encoder: ASSISTANT_EMBED_BATCHING=false) goes to an advisor thread.
    advisor = ThreadRecordingAdvisor()
    settings = make_settings(tmp_path).model_copy(update={"embed_batching": batched})
    with (
        TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=advisor)) as client,
        client.websocket_connect("/v1/calls/t-threads/events") as sidebar,
        client.websocket_connect("/v1/calls/t-threads/stream") as src,
    ):
        src.receive_json()
        src.send_json({"seq": 1, "speaker": "agent", "text": "thank you for calling, how can I help"})
        src.send_json({"seq": 2, "speaker": "customer", "text": "my bill is wrong"})
        _events(sidebar, lambda e: e["type"] == "processed" and e["seq"] == 2)
        src.send_json({"type": "end"})
    assert advisor.threads["agent"] == {"event loop"}  # script matching: no vector at all
    customer = advisor.threads["customer"]
    assert (customer == {"event loop"}) if batched else all(n.startswith("advisor") for n in customer), (
        customer
    )
