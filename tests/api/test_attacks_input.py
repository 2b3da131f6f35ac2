"""Issue 17's attacks on input: each is refused or contained, the socket stays usable, other calls go on."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from streaming_support import make_settings

from assistant.api.app import create_app
from assistant.cli._serve import check_open_mode
from assistant.errors import ConfigurationError
from assistant.logs import RedactingFormatter, redacted_record
from assistant.testing import KeywordAnalyzer, RuleAdvisor


def _send(ws: WebSocketTestSession, frame: str) -> dict:
    ws.send_text(frame)
    while True:
        ev = ws.receive_json()
        if ev["type"] in ("ack", "error"):
            return ev


def _chunk(seq: int, text: str) -> str:
    return json.dumps({"seq": seq, "speaker": "customer", "text": text})


def _processed(ws: WebSocketTestSession, seq: int) -> list[dict]:
    got = []
    while True:
        ev = ws.receive_json()
        got.append(ev)
        if ev["type"] == "processed" and ev["seq"] == seq:
            return got


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("[" * 1000 + "]" * 1000, "too_deep"),
        ('{"seq": 2, "speaker": "customer", "text": ' + "[" * 100 + "]" * 100 + "}", "too_deep"),
        ('{"seq": 2, "speaker": "customer", "text": "hi \\ud800 there"}', "invalid_text"),
        ('{"seq": 2, "speaker": "customer", "text": "ok", "\\udfff": 1}', "invalid_text"),
        ('{"seq": 2, "speaker": "customer", "text": "' + "x" * 70_000 + '"}', "frame_too_large"),
        ('{"seq": 2, "speaker": "customer", "text": "hi", "ts": Infinity}', "invalid_chunk"),
        (_chunk(10**30, "huge seq"), "seq_out_of_range"),
        (_chunk(20_000_000, "far ahead"), "seq_too_far_ahead"),
        ('{"type": "call me on 07700 900123 or mail jo@example.com"}', "unknown_type"),
    ],
    ids=[
        "nested-1000",
        "nested-text",
        "lone-surrogate",
        "surrogate-key",
        "frame-70k",
        "inf-ts",
        "seq-1e30",
        "seq-jump",
        "type-echo",
    ],
)
def test_bad_frame_gets_error_event_socket_stays_open_nothing_echoed(
    client: TestClient, frame: str, reason: str
) -> None:
    with client.websocket_connect("/v1/calls/t-attack/stream") as src:
        src.receive_json()
        assert _send(src, _chunk(1, "first"))["type"] == "ack"
        err = _send(src, frame)
        assert err["type"] == "error" and err["reason"] == reason, err
        assert "07700" not in err["message"] and "jo@example.com" not in err["message"]
        assert len(err["message"]) < 400  # never the frame itself
        assert _send(src, _chunk(2, "still usable"))["type"] == "ack"
        _processed(src, 2)
    record = client.get("/v1/calls/t-attack").json()
    assert [c["seq"] for c in record["transcript"]] == [1, 2]
    # The store took a seq of 10**30 nowhere: it was refused before anything was queued.
    assert client.get("/healthz").json()["status"] == "ok"


def test_huge_seq_on_one_call_does_not_lose_another_calls_chunks(client: TestClient) -> None:
    with (
        client.websocket_connect("/v1/calls/t-victim/stream") as victim,
        client.websocket_connect("/v1/calls/t-attacker/stream") as attacker,
    ):
        victim.receive_json()
        attacker.receive_json()
        for seq in range(1, 41):
            assert _send(victim, _chunk(seq, f"victim line {seq}"))["type"] == "ack"
            if seq == 20:
                assert _send(attacker, _chunk(10**30, "boom"))["reason"] == "seq_out_of_range"
        _processed(victim, 40)
    assert len(client.get("/v1/calls/t-victim").json()["transcript"]) == 40


def test_analyze_bounds_and_error_never_echoes_input(client: TestClient) -> None:
    big = "call me on 07700 900123 " + "x" * 1_000_000
    r = client.post("/v1/analyze", json={"text": big})
    assert r.status_code in (413, 422)
    assert len(r.content) < 2000 and b"07700" not in r.content
    r = client.post("/v1/analyze", json={"text": "jo@example.com " + "y" * 30_000})
    assert r.status_code == 422 and b"jo@example.com" not in r.content and len(r.content) < 2000
    r = client.post("/v1/analyze", json={"text": "hello", "context": ["x" * 80_000]})
    assert r.status_code in (413, 422) and len(r.content) < 2000
    limit = client.app.state.settings.max_chunk_chars  # type: ignore[attr-defined]
    r = client.post("/v1/analyze", json={"text": "hello", "context": ["x" * (limit + 1)]})
    assert r.status_code == 422 and "context[0]" in r.text
    r = client.post("/v1/analyze", json={"text": "hello", "context": ["a"] * 21})
    assert r.status_code == 422 and "ASSISTANT_MAX_CONTEXT_ITEMS" in r.text
    r = client.post(
        "/v1/analyze", content='{"text": "hi \\ud800"}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "unicode" in r.text  # pydantic refuses a lone surrogate
    r = client.post(
        "/v1/analyze",
        content='{"text": ' + "[" * 1000 + "]" * 1000 + "}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (400, 422)
    # The service answered everything above quickly and is healthy.
    t0 = time.perf_counter()
    assert (
        client.post("/v1/analyze", json={"text": "hello", "context": ["x" * limit] * 20}).status_code == 200
    )
    assert time.perf_counter() - t0 < 5.0
    assert client.get("/healthz").status_code == 200


def test_websocket_origin_checked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, allowed_origins=["https://desk.example.com"])
    with TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())) as c:
        with c.websocket_connect("/v1/calls/o1/stream", headers={"origin": "https://evil.example"}) as ws:
            assert ws.receive_json()["reason"] == "forbidden_origin"
            with pytest.raises(Exception) as closed:
                ws.receive_json()
            assert getattr(closed.value, "code", None) == 4403
        with c.websocket_connect("/v1/calls/o1/stream", headers={"origin": "https://desk.example.com"}) as ws:
            assert ws.receive_json()["type"] == "ready"
        with c.websocket_connect("/v1/calls/o1/events") as ws:  # no Origin: not a browser
            ws.send_json({"type": "ping"})


def test_websocket_origin_same_origin_by_default(client: TestClient) -> None:
    with client.websocket_connect("/v1/alerts", headers={"origin": "http://testserver"}) as ws:
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
    with client.websocket_connect("/v1/alerts", headers={"origin": "http://attacker.test"}) as ws:
        assert ws.receive_json()["reason"] == "forbidden_origin"


def test_open_mode_only_on_loopback_unless_insecure(capsys: pytest.CaptureFixture[str]) -> None:
    check_open_mode("127.0.0.1", has_secret=False, insecure=False)
    assert "authentication is OFF" in capsys.readouterr().err
    check_open_mode("::1", has_secret=False, insecure=False)
    with pytest.raises(ConfigurationError, match="ASSISTANT_AUTH_SECRET"):
        check_open_mode("0.0.0.0", has_secret=False, insecure=False)
    with pytest.raises(ConfigurationError):
        check_open_mode("10.1.2.3", has_secret=False, insecure=False)
    check_open_mode("0.0.0.0", has_secret=False, insecure=True)
    assert "--insecure" in capsys.readouterr().err
    check_open_mode("0.0.0.0", has_secret=True, insecure=False)


def test_serve_refuses_open_mode_on_all_interfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.cli import main
    from assistant.settings import get_settings

    monkeypatch.delenv("ASSISTANT_AUTH_SECRET", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["serve", "--host", "0.0.0.0", "--fake-models"]) == 2
    finally:
        get_settings.cache_clear()


def test_logs_redacted_at_every_level_and_no_transcript_at_info(client: TestClient) -> None:
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            extra = getattr(redacted_record(record), "call_id", "")
            records.append(f"{record.levelno} {self.format(record)} {extra}")

    handler = Collect(level=logging.DEBUG)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with client.websocket_connect("/v1/calls/t-logs/stream?token=eyJhbGciOi.secretpart.sig") as src:
            src.receive_json()
            assert (
                _send(src, _chunk(1, "zebracorn here, call me on 07700 900123, you idiot"))["type"] == "ack"
            )
            _processed(src, 1)
            src.send_text('{"seq": 2, "speaker": "customer", "text": "x \\ud800"}')
            _send(src, _chunk(3, "fine"))
        # A debug record such as a server's frame log, and an error with personal data in it.
        logging.getLogger("websockets.server").debug("< TEXT %r [%d bytes]", '{"text": "jo@example.com"}', 27)
        logging.getLogger("assistant.test").error("failed for 07700 900123", extra={"call_id": "SW1A 2AA"})
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = "\n".join(records)
    assert "07700" not in text and "jo@example.com" not in text and "SW1A 2AA" not in text
    assert "content not logged" in text
    info = [r for r in records if int(r.split(" ", 1)[0]) >= logging.INFO]
    assert not any("zebracorn" in r for r in info), "transcript text logged at INFO or above"


def test_redacting_formatter_masks_tokens_in_access_lines() -> None:
    from assistant.logs import redact_log_text

    line = "GET /v1/calls/c1/events?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abc&after=3 HTTP/1.1"
    assert "eyJ" not in redact_log_text(line) and "after=3" in redact_log_text(line)
    assert redact_log_text("Authorization: Bearer abc.def.ghi") == "Authorization: Bearer [TOKEN]"


def test_personal_data_never_reaches_record_events_or_database(client: TestClient, tmp_path: Path) -> None:
    """Issue 17, case 5: UK phone, postcode, street address and a name given in the call, on every way out."""
    import sqlite3

    said = [
        "my name is Jonathan Pemberton and my number is 07700 900123",
        "I live at 221B Baker Street, postcode SW1A 2AA",
        "Jonathan again, mail jo@example.com",
    ]
    secrets = ["Jonathan", "Pemberton", "07700", "900123", "Baker", "SW1A", "jo@example.com"]
    with (
        client.websocket_connect("/v1/calls/t-pii/events") as sidebar,
        client.websocket_connect("/v1/calls/t-pii/stream") as src,
    ):
        src.receive_json()
        for seq, text in enumerate(said, start=1):
            assert _send(src, _chunk(seq, text))["type"] == "ack"
        _processed(src, len(said))
        seen = []
        while not any(e.get("type") == "processed" and e.get("seq") == len(said) for e in seen):
            seen.append(sidebar.receive_json())
    record = client.get("/v1/calls/t-pii").json()
    db = sqlite3.connect(client.app.state.settings.resolved_database_url().split("///", 1)[1])  # type: ignore[attr-defined]
    stored = json.dumps(db.execute("SELECT text FROM chunks").fetchall())
    for out in (json.dumps(seen), json.dumps(record), stored):
        assert not [s for s in secrets if s in out], out[:400]
    assert "[NAME]" in stored and "[POSTCODE]" in stored and "[ADDRESS]" in stored and "[PHONE]" in stored
