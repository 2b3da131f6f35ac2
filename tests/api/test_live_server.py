"""A real uvicorn server on a free port, driven by the `websockets` client and by `assistant replay`."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx
import pytest
from streaming_support import TRANSCRIPTS, LiveServer
from websockets.asyncio.client import connect

from assistant.calls.transcript import load_transcript
from assistant.cli import main as cli_main
from assistant.cli._replay import replay


def test_live_replay_abusive_call_done_when(live_server: LiveServer) -> None:
    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        sup_events: list[dict] = []
        agent_events: list[dict] = []
        async with (
            connect(f"{live_server.ws_url}/v1/alerts") as sup,
            connect(f"{live_server.ws_url}/v1/calls/live-abusive/events") as agent,
        ):
            chunks = load_transcript(TRANSCRIPTS / "billing-dispute-abusive.jsonl")
            src_events = await replay(chunks, url=live_server.ws_url, call_id="live-abusive", speed=0)
            while not agent_events or agent_events[-1]["type"] != "call_ended":
                agent_events.append(json.loads(await asyncio.wait_for(agent.recv(), 5)))
            await sup.send('{"type": "ping"}')
            while not sup_events or sup_events[-1]["type"] != "pong":
                sup_events.append(json.loads(await asyncio.wait_for(sup.recv(), 5)))
        return src_events, agent_events, sup_events

    src_events, agent_events, sup_events = asyncio.run(scenario())
    assert len([e for e in sup_events if e["type"] == "alert"]) == 1
    assert [e["type"] for e in agent_events].count("flag") >= 3
    assert any(e["type"] == "suggestion" for e in agent_events)
    assert src_events[-1]["type"] == "call_ended"
    record = httpx.get(f"{live_server.http_url}/v1/calls/live-abusive").json()
    assert "[CARD]" in json.dumps(record) and len(record["transcript"]) == 18


def test_live_chunk_to_event_latency_one_call(live_server: LiveServer) -> None:
    async def scenario() -> list[float]:
        latencies: list[float] = []
        async with connect(f"{live_server.ws_url}/v1/calls/live-latency/stream") as ws:
            await ws.recv()
            for seq in range(1, 61):
                t0 = time.perf_counter()
                text = "you useless idiot" if seq % 3 == 0 else "my bill is wrong again"
                await ws.send(json.dumps({"seq": seq, "speaker": "customer", "text": text}))
                while True:
                    ev = json.loads(await ws.recv())
                    if ev["type"] == "processed" and ev["seq"] == seq:
                        latencies.append((time.perf_counter() - t0) * 1000)
                        break
        return latencies

    lat = asyncio.run(scenario())
    p50 = statistics.median(lat)
    assert p50 < 25, f"p50 chunk-to-event {p50:.1f} ms over the 25 ms target"


def test_cli_replay_end_to_end(live_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = TRANSCRIPTS / "manager-request.jsonl"
    code = cli_main(
        ["replay", str(path), "--url", live_server.ws_url, "--speed", "0", "--call-id", "cli-mgr"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "FLAG escalation_request" in out and "ALERT to supervisors: escalation" in out
    assert "[PHONE]" in out and "0161 496 0123" not in out
    assert "call ended (source_end)" in out


def test_cli_replay_bad_file_exits_nonzero_with_reason(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"seq": 1, "speaker": "customer", "text": "hi"}\n{"seq": 2, "speaker": "alien"}\n')
    assert cli_main(["replay", str(bad), "--speed", "0"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.jsonl:2" in err[0]
    assert cli_main(["replay", str(tmp_path / "missing.jsonl")]) != 0


def test_cli_replay_no_server_exits_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    from streaming_support import free_port

    path = TRANSCRIPTS / "calm-call.jsonl"
    assert cli_main(["replay", str(path), "--url", f"ws://127.0.0.1:{free_port()}", "--speed", "0"]) != 0
    assert "cannot connect" in capsys.readouterr().err
