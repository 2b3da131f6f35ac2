"""The streaming WebSockets through starlette's TestClient: the done-when flow, ordering, resume, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from streaming_support import TRANSCRIPTS

from assistant.events.messages import CloseCode


def _chunks(name: str, call_id: str) -> list[dict[str, Any]]:
    lines = (TRANSCRIPTS / name).read_text().splitlines()
    return [json.loads(line) | {"call_id": call_id} for line in lines]


def _until(ws: WebSocketTestSession, kind: str, *, limit: int = 2000) -> list[dict[str, Any]]:
    """Receive events up to and including the first of type ``kind``."""
    got: list[dict[str, Any]] = []
    for _ in range(limit):
        ev = ws.receive_json()
        got.append(ev)
        if ev["type"] == kind:
            return got
    raise AssertionError(f"no {kind} event in {limit} messages")


def _processed(ws: WebSocketTestSession, seq: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        ev = ws.receive_json()
        got.append(ev)
        if ev["type"] == "processed" and ev["seq"] == seq:
            return got


def test_stream_abusive_call_one_alert_flags_suggestions_redacted_record(client: TestClient) -> None:
    call_id = "t-abusive"
    chunks = _chunks("billing-dispute-abusive.jsonl", call_id)
    with (
        client.websocket_connect("/v1/alerts") as sup,
        client.websocket_connect(f"/v1/calls/{call_id}/events") as agent,
        client.websocket_connect(f"/v1/calls/{call_id}/stream") as src,
    ):
        ready = src.receive_json()
        assert ready == ready | {"type": "ready", "last_seq": -1, "resumed": False}
        for c in chunks:
            src.send_json(c)
        src.send_json({"type": "end"})
        src_events = _until(src, "call_ended")
        acks = [e["seq"] for e in src_events if e["type"] == "ack"]
        assert acks == [c["seq"] for c in chunks]
        agent_events = _until(agent, "call_ended")
        sup.send_json({"type": "ping"})
        sup_events = _until(sup, "pong")

    alerts = [e for e in sup_events if e["type"] == "alert"]
    assert len(alerts) == 1, alerts
    assert alerts[0]["call_id"] == call_id and alerts[0]["reason"] == "abusive"
    assert {"severity", "labels", "text", "ts", "id"} <= alerts[0].keys()
    eids = [e["eid"] for e in agent_events]
    assert eids == sorted(eids) and len(set(eids)) == len(eids)
    kinds = [e["type"] for e in agent_events]
    assert "flag" in kinds and "suggestion" in kinds
    first_abuse = next(e for e in agent_events if e["type"] == "flag" and "insult" in e["labels"])
    # Suggestions follow their own chunk's red flags, which may come after a later chunk's flags; all chunks come at
    # once here, so the abusive turn's advice may be replaced by a newer customer turn's, which carries its flags
    # (docs/protocol.md, "Overload"): agent turns in between may still show the earlier procedure.
    after = agent_events[agent_events.index(first_abuse) :]
    turned = [e for e in after if e["type"] == "suggestion" and e["seq"] >= first_abuse["seq"]]
    assert any(e["suggestions"][0]["procedure_id"] == "abusive-caller" for e in turned), turned
    texts = " ".join(e.get("text", "") for e in agent_events)
    assert "4111 1111" not in texts and "@example.com" not in texts and "[CARD]" in texts

    record = client.get(f"/v1/calls/{call_id}").json()
    assert record["status"] == "ended" and [c["seq"] for c in record["transcript"]] == list(range(1, 19))
    stored = json.dumps(record)
    assert "4111 1111" not in stored and "dana.whitfield@example.com" not in stored
    assert "[CARD]" in stored and "[EMAIL]" in stored
    assert len(record["alerts"]) == 1 and record["flags"] and record["suggestions"]


def test_stream_calm_call_no_alert_no_flags(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-calm/stream") as src:
        src.receive_json()
        for c in _chunks("calm-call.jsonl", "t-calm"):
            src.send_json(c)
        src.send_json({"type": "end"})
        events = _until(src, "call_ended")
    assert not [e for e in events if e["type"] in ("flag", "alert")]
    assert client.get("/v1/calls/t-calm").json()["alerts"] == []


def test_stream_manager_request_alerts_once_for_escalation(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-mgr/stream") as src:
        src.receive_json()
        for c in _chunks("manager-request.jsonl", "t-mgr"):
            src.send_json(c)
        src.send_json({"type": "end"})
        events = _until(src, "call_ended")
    alerts = [e for e in events if e["type"] == "alert" and not e["update"]]
    assert len(alerts) == 1 and alerts[0]["reason"] == "escalation"


def _send_ok(src: WebSocketTestSession, seq: int, text: str = "hello", **kw: Any) -> dict[str, Any]:
    """Send a customer chunk; return its ack or error (skipping events of earlier chunks)."""
    src.send_json({"seq": seq, "speaker": "customer", "text": text} | kw)
    while True:
        ev = src.receive_json()
        if ev["type"] in ("ack", "error"):
            return ev


def test_stream_duplicate_chunk_acked_and_ignored(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-dup/stream") as src:
        src.receive_json()
        assert _send_ok(src, 1)["type"] == "ack"
        _processed(src, 1)
        dup = _send_ok(src, 1)
        assert dup["type"] == "ack" and dup["duplicate"] is True
        assert _send_ok(src, 2)["seq"] == 2
        events = _processed(src, 2)
    assert [e["seq"] for e in events if e["type"] == "transcript"] == [2]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "not_an_object"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"seq": 1, "speaker": "customer"}', "invalid_chunk"),
        ('{"seq": "one", "speaker": "customer", "text": "x"}', "invalid_chunk"),
        ('{"seq": 1, "speaker": "robot", "text": "x"}', "invalid_chunk"),
        ('{"seq": -3, "speaker": "customer", "text": "x"}', "invalid_chunk"),
        ('{"seq": 1, "speaker": "customer", "text": "x", "call_id": "other"}', "call_id_mismatch"),
        ('{"seq": 1, "speaker": "customer", "text": "x", "call_id": "../etc"}', "bad_call_id"),
    ],
)
def test_stream_bad_input_error_event_connection_stays_usable(
    client: TestClient, frame: str, reason: str
) -> None:
    with client.websocket_connect("/v1/calls/t-bad/stream") as src:
        src.receive_json()
        assert _send_ok(src, 1, "first")["type"] == "ack"
        src.send_text(frame)
        err = src.receive_json()
        while err["type"] != "error":
            err = src.receive_json()
        assert err["reason"] == reason and err["message"]
        assert _send_ok(src, 2, "still usable")["type"] == "ack"
        events = _processed(src, 2)
    assert any(e["type"] == "transcript" and e["seq"] == 2 for e in events)
    record = client.get("/v1/calls/t-bad").json()
    assert [c["seq"] for c in record["transcript"]] == [1, 2]


def test_stream_text_over_limit_error_then_usable(client: TestClient) -> None:
    limit = client.app.state.settings.max_chunk_chars  # type: ignore[attr-defined]
    with client.websocket_connect("/v1/calls/t-long/stream") as src:
        src.receive_json()
        err = _send_ok(src, 1, "x" * (limit + 1))
        assert err["type"] == "error" and err["reason"] == "text_too_long" and err["seq"] == 1
        assert _send_ok(src, 1, "short")["type"] == "ack"


def test_stream_seq_backwards_with_other_text_is_an_error(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-back/stream") as src:
        src.receive_json()
        _send_ok(src, 1, "one")
        _send_ok(src, 2, "two")
        err = _send_ok(src, 1, "something else")
        while err["type"] != "error":
            err = src.receive_json()
        assert err["reason"] == "seq_backwards"
        assert _send_ok(src, 3, "three")["type"] == "ack"
        _processed(src, 3)


def test_stream_unsafe_call_id_closes_with_named_code(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/bad%20id!/stream") as src:
        err = src.receive_json()
        assert err["type"] == "error" and err["reason"] == "bad_call_id"
        with pytest.raises(WebSocketDisconnect) as info:
            src.receive_json()
    assert info.value.code == CloseCode.BAD_CALL_ID


def test_stream_out_of_order_chunks_processed_in_order(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-order/stream") as src:
        src.receive_json()
        _send_ok(src, 1, "one")
        held = _send_ok(src, 3, "three")
        while held["type"] != "ack":
            held = src.receive_json()
        assert held["buffered"] is True
        _send_ok(src, 2, "two")
        events = _processed(src, 3)
    order = [e["seq"] for e in events if e["type"] == "transcript"]
    assert order[-2:] == [2, 3]


def test_stream_gap_skipped_after_timeout_with_gap_event(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-gap/stream") as src:
        src.receive_json()
        _send_ok(src, 1, "one")
        _send_ok(src, 4, "four")
        events = _processed(src, 4)  # arrives after reorder_timeout_ms
        gap = next(e for e in events if e["type"] == "gap")
        assert (gap["first_missing"], gap["last_missing"], gap["reason"]) == (2, 3, "timeout")
        late = _send_ok(src, 2, "two, too late")
        while late["type"] != "error":
            late = src.receive_json()
        assert late["reason"] == "seq_backwards"


def test_stream_partial_replaced_by_final(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-part/stream") as src:
        src.receive_json()
        ack = _send_ok(src, 1, "you use", is_final=False)
        assert ack["is_final"] is False
        _send_ok(src, 1, "you useless idiot", is_final=True)
        events = _processed(src, 1)
    flags = [e for e in events if e["type"] == "flag"]
    assert len(flags) == 1 and flags[0]["text"] == "you useless idiot"
    record = client.get("/v1/calls/t-part").json()
    assert [c["text"] for c in record["transcript"]] == ["you useless idiot"]


def test_stream_resume_after_reconnect_nothing_lost_or_doubled(client: TestClient) -> None:
    chunks = _chunks("billing-dispute-abusive.jsonl", "t-resume")
    with client.websocket_connect("/v1/calls/t-resume/stream") as src:
        src.receive_json()
        for c in chunks[:7]:
            src.send_json(c)
        _processed(src, 7)
    with client.websocket_connect("/v1/calls/t-resume/stream") as src:
        ready = src.receive_json()
        assert ready["type"] == "ready" and ready["last_seq"] == 7 and ready["resumed"] is True
        for c in chunks[5:]:  # a source that resends a little too much: duplicates are acked and ignored
            src.send_json(c)
        src.send_json({"type": "end"})
        events = _until(src, "call_ended")
    assert sum(1 for e in events if e["type"] == "ack" and e.get("duplicate")) == 2
    record = client.get("/v1/calls/t-resume").json()
    assert [c["seq"] for c in record["transcript"]] == list(range(1, 19))


def test_stream_ended_call_refuses_new_chunks(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-end/stream") as src:
        src.receive_json()
        _send_ok(src, 1)
        src.send_json({"type": "end"})
        _until(src, "call_ended")
    with client.websocket_connect("/v1/calls/t-end/stream") as src:
        err = src.receive_json()
        assert err["reason"] == "call_ended"
        with pytest.raises(WebSocketDisconnect) as info:
            src.receive_json()
    assert info.value.code == CloseCode.CALL_ENDED


def test_an_ended_call_keeps_its_answers_but_not_its_analysis_state(client: TestClient) -> None:
    """An ended call stays in memory for late sidebars; what only later chunks would need is dropped once stored
    (each object kept is one more that every full garbage collection walks)."""
    with client.websocket_connect("/v1/calls/t-released/stream") as src:
        src.receive_json()
        for seq, text in enumerate(
            ["thank you for calling, how can I help", "you are useless, get me a manager"], 1
        ):
            _send_ok(src, seq, text)
        src.send_json({"type": "end"})
        _until(src, "call_ended")
    svc = client.app.state.service  # type: ignore[attr-defined]
    live = svc.calls["t-released"]
    assert live.session.transcript == [] and live.session.guidance is None and live.worker is None
    view = svc.live_view("t-released")
    assert view is not None and view["state"] == "ended" and view["last_seq"] == 2
    record = client.get("/v1/calls/t-released").json()
    assert record["status"] == "ended" and record["guidance_state"]  # stored before it was dropped
    with client.websocket_connect("/v1/calls/t-released/events") as late:  # a late sidebar still replays it
        assert [e["type"] for e in _until(late, "call_ended") if e["type"] == "transcript"] == [
            "transcript"
        ] * 2


def test_events_socket_replays_history_then_live_and_after(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-side/stream") as src:
        src.receive_json()
        _send_ok(src, 1, "this is ridiculous")
        _processed(src, 1)
        with client.websocket_connect("/v1/calls/t-side/events") as agent:
            history = _until(agent, "processed")
            assert history[0]["eid"] == 1 and history[0]["type"] == "transcript"
            mid = history[-1]["eid"]
            _send_ok(src, 2, "get me a manager")
            live = _until(agent, "processed")
            assert live[0]["eid"] == mid + 1
        with client.websocket_connect(f"/v1/calls/t-side/events?after={mid}") as agent:
            again = _until(agent, "processed")
            assert [e["eid"] for e in again] == [e["eid"] for e in live]


def test_alert_ack_over_socket_and_http(client: TestClient) -> None:
    with (
        client.websocket_connect("/v1/alerts") as sup,
        client.websocket_connect("/v1/calls/t-ack/stream") as src,
    ):
        src.receive_json()
        _send_ok(src, 1, "I will find out where you live")
        alert = _until(sup, "alert")[-1]
        sup.send_json({"type": "ack", "id": alert["id"]})
        ack = _until(sup, "alert_ack")[-1]
        assert ack["id"] == alert["id"] and ack["acked_by"] == "anonymous"
        sup.send_json({"type": "ack", "id": "nope"})
        assert _until(sup, "error")[-1]["reason"] == "unknown_alert"
    again = client.post(f"/v1/alerts/{alert['id']}/ack")
    assert again.status_code == 200 and again.json()["already_acked"] is True
    assert client.post("/v1/alerts/unknown/ack").status_code == 404
    record = client.get("/v1/calls/t-ack").json()
    assert record["alerts"][0]["acked_by"] == "anonymous" and len(record["alerts"][0]["acks"]) == 1


def test_stream_source_asking_for_replies_gets_acks_and_no_call_events(client: TestClient) -> None:
    call_id = "t-replies"
    chunks = _chunks("billing-dispute-abusive.jsonl", call_id)
    with (
        client.websocket_connect(f"/v1/calls/{call_id}/events") as agent,
        client.websocket_connect(f"/v1/calls/{call_id}/stream?events=replies") as src,
    ):
        assert src.receive_json()["type"] == "ready"
        for c in chunks:
            src.send_json(c)
        src.send_json({"type": "ping"})
        replies = _until(src, "pong")
        assert [e["seq"] for e in replies if e["type"] == "ack"] == [c["seq"] for c in chunks]
        assert {e["type"] for e in replies} <= {"ack", "stored", "pong"}
        src.send_json({"type": "end"})
        # The sidebar still gets every event of the call, flags included.
        agent_events = _until(agent, "call_ended")
        assert any(e["type"] == "flag" for e in agent_events)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                assert src.receive_json()["type"] in {"ack", "stored", "pong"}
        assert closed.value.code == CloseCode.NORMAL


def test_stream_unknown_events_choice_is_refused_with_a_clear_error(client: TestClient) -> None:
    with client.websocket_connect("/v1/calls/t-bad-events/stream?events=some") as src:
        err = src.receive_json()
        assert err["type"] == "error" and err["reason"] == "bad_parameter"
        assert "all, replies" in err["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            src.receive_json()
        assert closed.value.code == CloseCode.BAD_PARAMETER
