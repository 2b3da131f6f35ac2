"""HTTP endpoints and authentication."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from streaming_support import make_settings

from assistant.api.app import create_app
from assistant.auth import issue_token
from assistant.events.messages import CloseCode
from assistant.testing import KeywordAnalyzer, RuleAdvisor

SECRET = "test-secret-0123456789abcdefghijklmnop"  # 32+ bytes, a throwaway


def _stream_one(client: TestClient, call_id: str, text: str, **kw: object) -> None:
    with client.websocket_connect(f"/v1/calls/{call_id}/stream", **kw) as src:  # type: ignore[arg-type]
        src.receive_json()
        src.send_json({"seq": 1, "speaker": "customer", "text": text})
        src.send_json({"type": "end"})
        while src.receive_json()["type"] != "call_ended":
            pass


def test_http_healthz_metrics_openapi(client: TestClient) -> None:
    _stream_one(client, "h-metrics", "you stupid idiot")
    assert client.get("/healthz").json()["status"] == "ok"
    text = client.get("/metrics").text
    for name in (
        "assistant_chunks_total",
        "assistant_chunk_to_event_seconds_bucket",
        'assistant_flags_total{label="insult"}',
        "assistant_alerts_total",
        "assistant_connected_calls",
    ):
        assert name in text
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/analyze" in paths and "/v1/calls/{call_id}/incident-report" in paths


def test_http_analyze_redacts_and_flags(client: TestClient) -> None:
    r = client.post("/v1/analyze", json={"text": "you idiot, my card is 4111 1111 1111 1111", "context": []})
    body = r.json()
    assert r.status_code == 200 and "insult" in body["flags"]["flagged"] and "[CARD]" in body["text"]
    assert client.post("/v1/analyze", json={"context": []}).status_code == 422


def test_http_calls_list_record_incident_feedback(client: TestClient) -> None:
    _stream_one(client, "h-rec", "you useless idiot, I'll call my lawyer")
    calls = client.get("/v1/calls").json()
    assert calls[0]["id"] == "h-rec" and calls[0]["peak_level"] != "none" and calls[0]["open_alerts"] == 1
    assert client.get("/v1/calls/unknown-call").status_code == 404
    assert client.get("/v1/calls/bad%20id").status_code == 422
    report = client.get("/v1/calls/h-rec/incident-report", headers={"Accept": "application/json"}).json()
    assert report["call_id"] == "h-rec" and report["quotes"][0]["text"].startswith("you useless")
    md = client.get("/v1/calls/h-rec/incident-report", headers={"Accept": "text/markdown"})
    assert md.headers["content-type"].startswith("text/markdown") and "# Incident report" in md.text
    fb = client.post("/v1/calls/h-rec/feedback", json={"verdict": "useful", "procedure_id": "abusive-caller"})
    assert fb.status_code == 201
    assert client.post("/v1/calls/h-rec/feedback", json={"verdict": "meh"}).status_code == 422
    assert client.get("/v1/calls/h-rec").json()["feedback"][0]["verdict"] == "useful"


@pytest.fixture
def auth_client(tmp_path: Path) -> TestClient:
    app = create_app(
        make_settings(tmp_path, auth_secret=SECRET), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor()
    )
    with TestClient(app) as c:
        yield c  # type: ignore[misc]


def _h(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, role=role, subject=f'{role}-1')}"}


def test_auth_http_401_403_and_ok(auth_client: TestClient) -> None:
    assert auth_client.get("/v1/calls").status_code == 401
    assert auth_client.get("/v1/calls", headers={"Authorization": "Bearer junk"}).status_code == 401
    assert auth_client.get("/v1/calls", headers=_h("agent")).status_code == 403
    assert auth_client.get("/v1/calls", headers=_h("supervisor")).status_code == 200
    assert auth_client.get("/v1/calls", headers=_h("admin")).status_code == 200
    assert auth_client.get("/healthz").status_code == 200


def test_auth_websocket_4401_4403_and_token_query(auth_client: TestClient) -> None:
    for url, code in (
        ("/v1/calls/a1/stream", CloseCode.UNAUTHORIZED),
        (f"/v1/calls/a1/stream?token={issue_token(SECRET, role='agent', subject='x')}", CloseCode.FORBIDDEN),
        ("/v1/alerts", CloseCode.UNAUTHORIZED),
        (f"/v1/alerts?token={issue_token(SECRET, role='source', subject='x')}", CloseCode.FORBIDDEN),
    ):
        with auth_client.websocket_connect(url) as ws:
            assert ws.receive_json()["type"] == "error"
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_json()
        assert info.value.code == code
    _stream_one(auth_client, "a1", "hello", headers=_h("source"))
    token = issue_token(SECRET, role="supervisor", subject="sup-9")
    with auth_client.websocket_connect(f"/v1/alerts?token={token}") as ws:
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_http_call_record_names_the_agent_from_the_source(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/h-agent/stream?agent=Dana%20K.%20(A-17)") as src:
        src.receive_json()
        src.send_json({"seq": 1, "speaker": "customer", "text": "you useless idiot"})
        src.send_json({"type": "end"})
        while src.receive_json()["type"] != "call_ended":
            pass
    assert client.get("/v1/calls/h-agent").json()["agent"] == "Dana K. (A-17)"
    report = client.get("/v1/calls/h-agent/incident-report?format=json").json()
    assert report["agent"]["id"] == "Dana K. (A-17)"
    # An over-long name is dropped, not stored, and the call goes on.
    with client.websocket_connect("/v1/calls/h-long/stream?agent=" + "x" * 200) as src:
        assert src.receive_json()["type"] == "ready"
        src.send_json({"seq": 1, "speaker": "customer", "text": "hello"})
        src.send_json({"type": "end"})
        while src.receive_json()["type"] != "call_ended":
            pass
    assert client.get("/v1/calls/h-long").json()["agent"] is None
