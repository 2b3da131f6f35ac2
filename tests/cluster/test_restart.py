"""One worker on the embedded default (SQLite, in-process bus) killed and restarted: the call's state survives.

Severity keeps its level and peak, the flag counts stay, an unacknowledged alert stays open on GET /v1/alerts
and on the alerts socket, and the next alert continues the episode numbering.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_support import drain_until_pong, read_until, recv, stream_and_wait, ws

from assistant.eval.bench import ServerProcess

pytestmark = pytest.mark.slow

ABUSE = [
    ("customer", "This is the third time I call, it's ridiculous."),
    ("customer", "You useless idiot, this damn company is pathetic."),
    ("customer", "You stupid clown, I'm fed up with this shit."),
]
CALM = [("customer", "Okay. Thank you for checking that."), ("agent", "You're welcome.")]
THREAT = [("customer", "I know where you live and you will regret this.")]


def _chunks(
    turns: list[tuple[str, str]], *, first_seq: int, first_ts: float, gap_s: float
) -> list[dict[str, Any]]:
    return [
        {"seq": first_seq + i, "speaker": sp, "text": text, "ts": first_ts + i * gap_s}
        for i, (sp, text) in enumerate(turns)
    ]


def _server(tmp_path: Path) -> ServerProcess:
    return ServerProcess(
        {
            "ASSISTANT_USE_FAKE_MODELS": "1",
            "ASSISTANT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}",
            "ASSISTANT_VAR_DIR": str(tmp_path),
            "ASSISTANT_BATCH_MAX_WAIT_MS": "1",
        },
        start_timeout_s=60,
    )


def _get(server: ServerProcess, path: str) -> Any:
    r = httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=10)
    r.raise_for_status()
    return r.json()


def test_a_restart_keeps_severity_flags_open_alerts_and_episode_numbering(tmp_path: Path) -> None:
    before = _chunks(ABUSE, first_seq=1, first_ts=0.0, gap_s=5.0)
    first = _server(tmp_path)
    first.start()
    try:
        events: list[dict[str, Any]] = []
        with ws(first, "/v1/calls/restart-1/stream") as source:
            recv(source)
            for chunk in before:
                events += stream_and_wait(source, chunk)
        alert = next(e for e in events if e["type"] == "alert")
        levels = [e for e in events if e["type"] == "severity"]
        assert levels[-1]["level"] in ("high", "critical")  # crash in the middle of an open episode
        stored = _get(first, "/v1/calls/restart-1")  # reads flush the write-behind queue
        first.kill()  # a crash: no shutdown, no final write
    finally:
        first.stop()

    second = _server(tmp_path)
    second.start()
    try:
        assert [a["id"] for a in _get(second, "/v1/alerts")] == [alert["id"]]
        with ws(second, "/v1/alerts") as supervisor:
            opened = drain_until_pong(supervisor)
            assert [(a["id"], a["episode"]) for a in opened] == [(alert["id"], 1)]
            with ws(second, "/v1/calls/restart-1/stream") as source:
                ready = recv(source)
                assert ready["resumed"] is True and ready["last_seq"] == before[-1]["seq"]
                seq, ts = ready["last_seq"] + 1, 20.0
                # More abuse at once: the open episode goes on (no new alert), from the level before the crash.
                more = stream_and_wait(source, _chunks(ABUSE[1:2], first_seq=seq, first_ts=ts, gap_s=5)[0])
                severity = next(e for e in more if e["type"] == "severity")
                assert severity["previous_level"] == levels[-1]["level"]
                assert severity["score"] >= levels[-1]["score"]
                assert not [e for e in more if e["type"] == "alert" and not e["update"]]
                # Quiet time and calm turns close the episode; a threat then opens the second one.
                calm = _chunks(CALM * 3, first_seq=seq + 1, first_ts=ts + 400, gap_s=60.0)
                for chunk in calm:
                    stream_and_wait(source, chunk)
                threat = _chunks(THREAT, first_seq=calm[-1]["seq"] + 1, first_ts=ts + 1200, gap_s=5.0)[0]
                resumed = stream_and_wait(source, threat)
                source.send(json.dumps({"type": "end"}))
                read_until(source, "call_ended")
            new_alert = next(e for e in resumed if e["type"] == "alert")
            assert new_alert["episode"] == 2 and new_alert["id"] != alert["id"]
            fed = [a for a in drain_until_pong(supervisor) if a["type"] == "alert" and not a["update"]]
            assert [a["id"] for a in fed] == [new_alert["id"]]
        record = _get(second, "/v1/calls/restart-1")
        assert record["peak_severity"] >= stored["peak_severity"] > 0
        for label, n in stored["flag_counts"].items():
            assert record["flag_counts"][label] >= n  # counted on from before the crash
        assert record["flag_counts"]["threat"] == 1
        assert [a["episode"] for a in record["alerts"]] == [1, 2]
        assert [c["seq"] for c in record["transcript"]] == list(range(1, threat["seq"] + 1))
    finally:
        second.stop()
