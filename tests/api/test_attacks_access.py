"""Issue 17's access attacks: only the right people see a call, and a call's source cannot be taken over."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from streaming_support import make_settings

from assistant.api.app import create_app
from assistant.auth import issue_token
from assistant.testing import KeywordAnalyzer, RuleAdvisor

SECRET = "access-test-secret-0123456789abcdefgh"
TEAMS = {"agentB": ["billing"], "agentC": ["fraud"]}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, auth_secret=SECRET, agent_teams=TEAMS)
    with TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())) as c:
        yield c


def _tok(role: str, subject: str, *, teams: tuple[str, ...] = (), ttl: int = 600) -> str:
    return issue_token(SECRET, role=role, subject=subject, teams=teams, ttl_s=ttl)


def _h(role: str, subject: str, **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {_tok(role, subject, **kw)}"}


def _open_call(
    client: TestClient, call_id: str, agent: str, texts: list[str], *, source: str = "asr-1"
) -> None:
    with client.websocket_connect(
        f"/v1/calls/{call_id}/stream?agent={agent}&token={_tok('source', source)}"
    ) as ws:
        ws.receive_json()
        for i, text in enumerate(texts, start=1):
            ws.send_text(json.dumps({"seq": i, "speaker": "customer", "text": text}))
        ws.send_text('{"type": "end"}')
        while ws.receive_json()["type"] != "call_ended":
            pass


def _closed_with(ws: WebSocketTestSession) -> tuple[list[dict[str, Any]], int | None]:
    got = []
    try:
        while True:
            got.append(ws.receive_json())
    except WebSocketDisconnect as e:
        return got, e.code


def test_agent_reads_only_calls_assigned_to_them(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _open_call(client, "c-b", "agentB", ["you idiot, my card is 4111 1111 1111 1111"])
    with caplog.at_level(logging.INFO, logger="assistant.audit"):
        assert client.get("/v1/calls/c-b", headers=_h("agent", "agentA")).status_code == 403
        assert client.get("/v1/calls/c-b", headers=_h("agent", "agentB")).status_code == 200
    assert client.get("/v1/calls/c-b/incident-report", headers=_h("agent", "agentB")).status_code == 403
    with client.websocket_connect(f"/v1/calls/c-b/events?token={_tok('agent', 'agentA')}") as ws:
        events, code = _closed_with(ws)
        assert code == 4403 and not any(e.get("type") == "transcript" for e in events)
    with client.websocket_connect(f"/v1/calls/c-b/events?token={_tok('agent', 'agentB')}") as ws:
        assert ws.receive_json()["type"] == "transcript"
    audit = [(r.subject, r.call_id, r.allowed) for r in caplog.records if r.name == "assistant.audit"]  # type: ignore[attr-defined]
    assert ("agentA", "c-b", False) in audit and ("agentB", "c-b", True) in audit


def test_sidebar_connected_before_the_call_waits_then_is_checked(client: TestClient) -> None:
    with client.websocket_connect(f"/v1/calls/c-early/events?token={_tok('agent', 'agentB')}") as sidebar:
        sidebar.send_json({"type": "ping"})
        assert sidebar.receive_json()["type"] == "pong"  # waiting, alive
        _open_call(client, "c-early", "agentB", ["hello"])
        assert sidebar.receive_json()["type"] == "transcript"
    with client.websocket_connect(f"/v1/calls/c-late/events?token={_tok('agent', 'agentA')}") as other:
        _open_call(client, "c-late", "agentB", ["hello"])
        events, code = _closed_with(other)
        assert code == 4403 and not any(e.get("type") == "transcript" for e in events)


def test_supervisor_sees_their_teams_calls_and_alerts(client: TestClient) -> None:
    _open_call(client, "c-bill", "agentB", ["I will kill you"])
    _open_call(client, "c-fraud", "agentC", ["I will kill you"])
    billing = _h("supervisor", "sup-b", teams=("billing",))
    assert client.get("/v1/calls/c-bill", headers=billing).status_code == 200
    assert client.get("/v1/calls/c-fraud", headers=billing).status_code == 403
    assert client.get("/v1/calls/c-fraud/incident-report", headers=billing).status_code == 403
    assert client.get("/v1/calls/c-bill/incident-report", headers=billing).status_code == 200
    assert {c["id"] for c in client.get("/v1/calls", headers=billing).json()} == {"c-bill"}
    assert {a["call_id"] for a in client.get("/v1/alerts", headers=billing).json()} == {"c-bill"}
    everyone = _h("supervisor", "sup-all", teams=("*",))
    assert {c["id"] for c in client.get("/v1/calls", headers=everyone).json()} == {"c-bill", "c-fraud"}
    fraud_alert = next(
        a for a in client.get("/v1/alerts", headers=everyone).json() if a["call_id"] == "c-fraud"
    )
    assert client.post(f"/v1/alerts/{fraud_alert['id']}/ack", headers=billing).status_code == 403
    with client.websocket_connect(
        f"/v1/alerts?token={_tok('supervisor', 'sup-b', teams=('billing',))}"
    ) as ws:
        first = ws.receive_json()
        assert first["call_id"] == "c-bill"
        ws.send_json({"type": "ack", "id": fraud_alert["id"]})
        reply = ws.receive_json()
        assert reply["type"] == "error" and reply["reason"] == "forbidden"


def test_trainer_sees_redacted_records_with_pseudonyms_and_no_incident_reports(client: TestClient) -> None:
    _open_call(client, "c-t", "agentB", ["my name is Jonathan Pemberton, call 07700 900123"])
    r = client.post(
        "/v1/calls/c-t/feedback",
        json={"verdict": "wrong", "comment": "customer gave card 4111 1111 1111 1111 and ssn 123-45-6789"},
        headers=_h("agent", "agentB"),
    )
    assert r.status_code == 201 and "4111" not in r.text and "123-45-6789" not in r.text
    rec = client.get("/v1/calls/c-t", headers=_h("trainer", "tr-1")).json()
    assert rec["agent"] != "agentB" and rec["agent"].startswith("agent-")
    assert "Jonathan" not in json.dumps(rec) and "07700" not in json.dumps(rec)
    assert rec["feedback"][0]["subject"] != "agentB"
    fb = client.get("/v1/feedback", headers=_h("trainer", "tr-1")).json()
    assert "4111" not in json.dumps(fb) and fb[0]["subject"].startswith("user-")
    assert client.get("/v1/calls/c-t/incident-report", headers=_h("trainer", "tr-1")).status_code == 403
    # Feedback on someone else's call is refused.
    other = client.post("/v1/calls/c-t/feedback", json={"verdict": "useful"}, headers=_h("agent", "agentA"))
    assert other.status_code == 403


def test_a_second_source_cannot_take_over_inject_or_end_a_call(client: TestClient) -> None:
    url = "/v1/calls/c-own/stream?agent=agentB&token="
    with client.websocket_connect(url + _tok("source", "asr-1")) as owner:
        owner.receive_json()
        owner.send_text(json.dumps({"seq": 1, "speaker": "customer", "text": "hello"}))
        with client.websocket_connect(url + _tok("source", "asr-evil")) as intruder:
            events, code = _closed_with(intruder)
            assert code == 4403 and events[-1]["reason"] == "call_taken"
        owner.send_text(json.dumps({"seq": 2, "speaker": "customer", "text": "still mine"}))
        kinds = []
        while "ack" not in kinds or kinds.count("ack") < 2:
            kinds.append(owner.receive_json()["type"])
    rec = client.get("/v1/calls/c-own", headers=_h("admin", "root")).json()
    assert [c["seq"] for c in rec["transcript"]] == [1, 2] and rec["status"] == "live"
    # The owner itself may reconnect (resume) after a drop.
    with client.websocket_connect(url + _tok("source", "asr-1")) as again:
        assert again.receive_json()["resumed"] is True


def test_expired_token_closes_the_socket_4401(client: TestClient) -> None:
    _open_call(client, "c-exp", "agentB", ["hello"])
    with client.websocket_connect(f"/v1/calls/c-exp/events?token={_tok('agent', 'agentB', ttl=1)}") as ws:
        t0 = time.monotonic()
        events, code = _closed_with(ws)
        assert code == 4401 and events[-1]["reason"] == "token_expired"
        assert time.monotonic() - t0 < 5
