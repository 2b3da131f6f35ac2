"""A storage outage under a running service: loud (/healthz 503, metric, log), nothing lost when it is back."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient
from streaming_support import make_settings

from assistant.api.app import create_app
from assistant.testing import KeywordAnalyzer, RuleAdvisor


def _metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def test_database_folder_removed_healthz_degraded_then_chunks_written_when_back(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    settings = make_settings(var, store_retry_s=0.05, store_linger_ms=0)
    app = create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
    with TestClient(app) as client, client.websocket_connect("/v1/calls/o-1/stream") as src:
        src.receive_json()
        src.send_text(json.dumps({"seq": 1, "speaker": "customer", "text": "before"}))
        while src.receive_json()["type"] != "processed":
            pass
        assert client.get("/healthz").status_code == 200
        var.rename(tmp_path / "away")
        for seq in range(2, 6):
            src.send_text(json.dumps({"seq": seq, "speaker": "customer", "text": f"during {seq}"}))
        deadline = time.monotonic() + 10
        while client.get("/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert "o-1" in health.json()["store"]["waiting_calls"]
        assert _metric(client, "assistant_store_healthy") == 0
        (tmp_path / "away").rename(var)
        deadline = time.monotonic() + 10
        while client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/healthz").json()["status"] == "ok"
        assert _metric(client, "assistant_store_healthy") == 1
        record = client.get("/v1/calls/o-1").json()
        assert [c["seq"] for c in record["transcript"]] == [1, 2, 3, 4, 5]
        assert _metric(client, 'assistant_store_ops_total{outcome="dropped"}') == 0


def test_stored_watermark_says_what_is_durable(tmp_path: Path) -> None:
    """An ``ack`` means received; a ``stored`` event means committed. During an outage acks go on, stored
    events stop; when the database is back the watermark catches up, and ready.stored_seq reports it."""
    var = tmp_path / "var"
    var.mkdir()
    settings = make_settings(var, store_retry_s=0.05, store_linger_ms=0)
    app = create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())

    def until_stored(src: object, seq: int) -> None:
        while True:
            ev = src.receive_json()  # type: ignore[attr-defined]
            if ev["type"] == "stored" and ev["seq"] >= seq:
                return

    with TestClient(app) as client:
        with client.websocket_connect("/v1/calls/d-1/stream") as src:
            assert src.receive_json()["stored_seq"] == -1
            src.send_text(json.dumps({"seq": 1, "speaker": "customer", "text": "one"}))
            until_stored(src, 1)
            var.rename(tmp_path / "away")
            src.send_text(json.dumps({"seq": 2, "speaker": "customer", "text": "two"}))
            seen: list[dict[str, object]] = []
            while not any(e["type"] == "processed" and e.get("seq") == 2 for e in seen):
                seen.append(src.receive_json())
            assert any(e["type"] == "ack" and e["seq"] == 2 for e in seen)
            assert not any(e["type"] == "stored" and e["seq"] == 2 for e in seen)
            (tmp_path / "away").rename(var)
            until_stored(src, 2)
        with client.websocket_connect("/v1/calls/d-1/stream") as again:
            ready = again.receive_json()
            assert ready["stored_seq"] == 2 and ready["last_seq"] == 2
