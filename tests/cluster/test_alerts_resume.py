"""A supervisor who reconnects, to the same worker or another, catches up from the last alert cursor seen."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_server import TRANSCRIPTS, make_settings

from assistant.api.app import create_app
from assistant.events.bus import parse_cursor
from assistant.events.redis_bus import RedisBus
from assistant.testing import KeywordAnalyzer, RuleAdvisor

ABUSIVE = TRANSCRIPTS / "billing-dispute-abusive.jsonl"  # one alert per call


def _stream_call(client: TestClient, call_id: str) -> None:
    with client.websocket_connect(f"/v1/calls/{call_id}/stream") as src:
        src.receive_json()
        for line in ABUSIVE.read_text().splitlines():
            src.send_json(json.loads(line) | {"call_id": call_id})
        src.send_json({"type": "end"})
        while src.receive_json()["type"] != "call_ended":
            pass


def _until_pong(ws: Any) -> list[dict[str, Any]]:
    """The alerts and acknowledgements received until the pong (not the service's ``degraded`` notices)."""
    ws.send_json({"type": "ping"})
    got = []
    while (msg := ws.receive_json())["type"] != "pong":
        if msg["type"] in ("alert", "alert_ack"):
            got.append(msg)
    return got


def _until(ws: Any, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    got = []
    while not got or not done(got[-1]):
        got.append(ws.receive_json())
    return got


@pytest.fixture(params=["memory", pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.cluster])])
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """Two workers sharing a database and a bus (with the in-process bus: one worker twice)."""
    settings = make_settings(tmp_path)
    if request.param == "memory":
        with TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())) as one:
            yield one, one
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        workers = [
            stack.enter_context(
                TestClient(
                    create_app(
                        settings.model_copy(update={"redis_url": url}),
                        analyzer=KeywordAnalyzer(),
                        advisor=RuleAdvisor(),
                        bus=RedisBus(url, prefix=prefix),
                    )
                )
            )
            for _ in range(2)
        ]
        yield workers[0], workers[1]


def test_supervisor_resumes_the_alert_feed_after_its_last_cursor(
    two_workers: tuple[TestClient, TestClient],
) -> None:
    w1, w2 = two_workers
    with w1.websocket_connect("/v1/alerts") as sup:
        _stream_call(w1, "resume-a")
        first = _until(sup, lambda m: m["type"] == "alert")[-1]
    assert first["call_id"] == "resume-a" and first["cursor"]
    # While the supervisor is away: another call alerts, and the first alert is acknowledged.
    _stream_call(w2, "resume-b")
    assert w2.post(f"/v1/alerts/{first['id']}/ack", json={}).status_code == 200
    with w2.websocket_connect(f"/v1/alerts?after={first['cursor']}") as sup:
        missed = _until_pong(sup)
    assert [(m["type"], m["call_id"]) for m in missed] == [("alert", "resume-b"), ("alert_ack", "resume-a")]
    assert all(parse_cursor(m["cursor"]) > parse_cursor(first["cursor"]) for m in missed)  # type: ignore[operator]
    # Up to date: nothing is sent again.
    with w1.websocket_connect(f"/v1/alerts?after={missed[-1]['cursor']}") as sup:
        assert _until_pong(sup) == []


def test_unknown_cursor_falls_back_to_the_open_alerts(two_workers: tuple[TestClient, TestClient]) -> None:
    w1, w2 = two_workers
    _stream_call(w1, "fallback-a")
    with w2.websocket_connect("/v1/alerts?after=0-0") as sup:
        got = _until_pong(sup)
    assert [(m["type"], m["call_id"]) for m in got] == [("alert", "fallback-a")]
