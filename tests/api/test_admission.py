"""A worker at ASSISTANT_MAX_LIVE_CALLS refuses new calls (close 1013) and keeps serving the ones it holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from streaming_support import make_settings

from assistant.api.app import create_app
from assistant.events.messages import CloseCode
from assistant.testing import KeywordAnalyzer, RuleAdvisor


def _processed(ws, seq: int) -> None:  # type: ignore[no-untyped-def]
    while not ((ev := ws.receive_json())["type"] == "processed" and ev["seq"] == seq):
        pass


def _one_turn(ws) -> None:  # type: ignore[no-untyped-def]
    """Past ``ready``, one customer turn, processed."""
    ws.receive_json()
    ws.send_json({"seq": 1, "speaker": "customer", "text": "my bill is wrong"})
    _processed(ws, 1)


def test_a_full_worker_refuses_new_calls_but_not_the_ones_it_holds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).model_copy(update={"max_live_calls": 2})
    with TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())) as client:
        with client.websocket_connect("/v1/calls/c-1/stream") as one:
            _one_turn(one)
        # c-1 is detached, not ended: it still counts, and may come back.
        with client.websocket_connect("/v1/calls/c-2/stream") as two:
            assert two.receive_json()["type"] == "ready"
            with client.websocket_connect("/v1/calls/c-3/stream") as three:
                err = three.receive_json()
                assert err["type"] == "error" and err["reason"] == "worker_full"
                assert "ASSISTANT_MAX_LIVE_CALLS" in err["message"]
                with pytest.raises(WebSocketDisconnect) as refused:
                    three.receive_json()
            assert refused.value.code == CloseCode.TRY_AGAIN_LATER == 1013
            with client.websocket_connect("/v1/calls/c-1/stream") as again:  # a call it holds resumes
                ready = again.receive_json()
                assert ready["type"] == "ready" and ready["resumed"] and ready["last_seq"] == 1
                again.send_json({"type": "end"})
                while again.receive_json()["type"] != "call_ended":
                    pass
            with client.websocket_connect("/v1/calls/c-3/stream") as three:  # an ended call frees its place
                assert three.receive_json()["type"] == "ready"
        metrics = client.get("/metrics").text
    assert 'assistant_stream_errors_total{reason="worker_full"} 1.0' in metrics


def test_a_worker_whose_red_flags_run_late_refuses_new_calls_until_it_catches_up(tmp_path: Path) -> None:
    # Every red-flag result counts as late here, so the first customer turn puts red flags behind.
    settings = make_settings(tmp_path).model_copy(update={"flags_late_ms": 0.001})
    with TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())) as client:
        with client.websocket_connect("/v1/calls/c-1/stream") as one:
            _one_turn(one)
            with client.websocket_connect("/v1/calls/c-2/stream") as two:
                err = two.receive_json()
                assert err["type"] == "error" and err["reason"] == "worker_full"
                assert "ASSISTANT_FLAGS_LATE_MS" in err["message"]
                with pytest.raises(WebSocketDisconnect) as refused:
                    two.receive_json()
            assert refused.value.code == CloseCode.TRY_AGAIN_LATER
            one.send_json({"seq": 2, "speaker": "customer", "text": "still wrong"})  # the held call goes on
            _processed(one, 2)
        with client.websocket_connect("/v1/calls/c-1/stream") as again:  # and may come back
            assert again.receive_json()["resumed"]
        client.app.state.service.pipeline.degradation.clear(["red_flags"])  # caught up
        with client.websocket_connect("/v1/calls/c-2/stream") as two:
            assert two.receive_json()["type"] == "ready"
        metrics = client.get("/metrics").text
    assert 'assistant_stream_errors_total{reason="worker_full"} 1.0' in metrics


def test_refusing_while_late_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).model_copy(
        update={"flags_late_ms": 0.001, "refuse_calls_when_behind": False}
    )
    app = create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
    with TestClient(app) as client, client.websocket_connect("/v1/calls/c-1/stream") as one:
        _one_turn(one)
        assert "red_flags" in app.state.service.pipeline.degradation.features
        with client.websocket_connect("/v1/calls/c-2/stream") as two:
            assert two.receive_json()["type"] == "ready"
