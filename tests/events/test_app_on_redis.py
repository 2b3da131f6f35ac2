"""The done-when flow with the Redis bus: a supervisor on another worker gets the one alert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.api.app import create_app
from assistant.events.redis_bus import RedisBus
from assistant.settings import Settings
from assistant.testing import KeywordAnalyzer, RuleAdvisor

TRANSCRIPT = Path(__file__).resolve().parents[2] / "eval" / "transcripts" / "billing-dispute-abusive.jsonl"


@pytest.mark.redis
def test_redis_two_workers_share_alerts_and_call_events(redis_url: str, tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"

    def app():  # type: ignore[no-untyped-def]
        settings = Settings(var_dir=tmp_path, database_url=db, redis_url=redis_url, batch_max_wait_ms=1.0)
        return create_app(
            settings,
            analyzer=KeywordAnalyzer(),
            advisor=RuleAdvisor(),
            bus=RedisBus(redis_url, prefix="app-test"),
        )

    with TestClient(app()) as worker1, TestClient(app()) as worker2:
        with (
            worker2.websocket_connect("/v1/alerts") as sup,
            worker2.websocket_connect("/v1/calls/r-1/events") as agent,
            worker1.websocket_connect("/v1/calls/r-1/stream") as src,
        ):
            src.receive_json()
            for line in TRANSCRIPT.read_text().splitlines():
                src.send_json(json.loads(line) | {"call_id": "r-1"})
            src.send_json({"type": "end"})
            agent_events = []
            while not agent_events or agent_events[-1]["type"] != "call_ended":
                agent_events.append(agent.receive_json())
            sup.send_json({"type": "ping"})
            sup_events = []
            while not sup_events or sup_events[-1]["type"] != "pong":
                sup_events.append(sup.receive_json())
        assert len([e for e in sup_events if e["type"] == "alert"]) == 1
        eids = [e["eid"] for e in agent_events]
        assert eids == list(range(1, len(eids) + 1))
        assert (
            worker1.get("/v1/calls/r-1").json()["status"] == "ended"
        )  # flushes worker 1's write-behind queue
        assert worker2.get("/v1/calls/r-1").json()["status"] == "ended"
