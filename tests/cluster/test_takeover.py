"""A source that moves to another worker while the first is alive: the first lets go of the call, not ends it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_server import TRANSCRIPTS, make_settings

from assistant.api.app import create_app
from assistant.events.redis_bus import RedisBus
from assistant.testing import KeywordAnalyzer, RuleAdvisor

pytestmark = [pytest.mark.cluster, pytest.mark.redis]


def _until_processed(ws: object, seq: int) -> list[dict[str, object]]:
    got = []
    while True:
        msg = ws.receive_json()  # type: ignore[attr-defined]
        got.append(msg)
        if msg["type"] == "processed" and msg["seq"] == seq:
            return got


def test_the_worker_a_source_left_lets_the_call_go_when_its_idle_timeout_passes(
    redis_url: str, tmp_path: Path
) -> None:
    lines = [json.loads(x) for x in (TRANSCRIPTS / "billing-dispute-abusive.jsonl").read_text().splitlines()]
    settings = make_settings(tmp_path, redis_url=redis_url, call_idle_timeout_s=0.5)
    prefix = f"t{uuid.uuid4().hex[:8]}"

    def worker() -> TestClient:
        app = create_app(
            settings,
            analyzer=KeywordAnalyzer(),
            advisor=RuleAdvisor(),
            bus=RedisBus(redis_url, prefix=prefix),
        )
        return TestClient(app)

    with worker() as w1, worker() as w2:
        with w1.websocket_connect("/v1/calls/moved/stream") as src:
            src.receive_json()
            for line in lines[:6]:
                src.send_json(line | {"call_id": "moved"})
                _until_processed(src, line["seq"])
        with w2.websocket_connect("/v1/calls/moved/stream") as src:
            ready = src.receive_json()
            assert ready["resumed"] and ready["last_seq"] == 6
            src.send_json(lines[6] | {"call_id": "moved"})
            _until_processed(src, 7)
            # Worker 1's sweeper (every second) finds its detached copy idle past 0.5 s and lets it go.
            deadline = time.monotonic() + 10
            while "moved" in w1.app.state.service.calls and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "moved" not in w1.app.state.service.calls
            for line in lines[7:]:
                src.send_json(line | {"call_id": "moved"})
            src.send_json({"type": "end"})
            while (msg := src.receive_json())["type"] != "call_ended":
                assert msg["type"] != "error", msg
            assert msg["reason"] == "source_end"  # the only call_ended: worker 1 did not end the call
        record = w2.get("/v1/calls/moved").json()
        assert record["status"] == "ended" and record["end_reason"] == "source_end"
        assert [c["seq"] for c in record["transcript"]] == [line["seq"] for line in lines]
