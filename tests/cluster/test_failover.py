"""Two workers in separate processes on real Redis and PostgreSQL: spread calls, one alert feed, failover."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_support import (
    drain_until_pong,
    fresh_database,
    read_until,
    recv,
    scripted_call,
    send_chunk,
    stream_and_wait,
    worker_env,
    workers,
    ws,
)
from websockets.exceptions import ConnectionClosed

from assistant.cluster.servers import PostgresServer, RedisServer
from assistant.eval.bench import ServerProcess

pytestmark = [pytest.mark.cluster, pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def env(postgres_server: PostgresServer, tmp_path: Path) -> Any:
    """A fresh Redis and a fresh PostgreSQL database for each test's workers."""
    if not RedisServer.available():  # postgres_server skips by itself when PostgreSQL is missing
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis") as redis:
        yield worker_env(redis.url, fresh_database(postgres_server))


def _record(server: ServerProcess, call_id: str) -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{server.port}/v1/calls/{call_id}", timeout=10)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


def _ended_ids(server: ServerProcess) -> set[str]:
    listed = httpx.get(f"http://127.0.0.1:{server.port}/v1/calls?status=ended", timeout=10).json()
    return {c["id"] for c in listed}


def _eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _reference(server: ServerProcess, call_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The same call streamed with no failure: its events and its record."""
    events: list[dict[str, Any]] = []
    with ws(server, f"/v1/calls/{call_id}/stream") as source:
        recv(source)
        for chunk in scripted_call():
            events += stream_and_wait(source, chunk)
        source.send(json.dumps({"type": "end"}))
        events += read_until(source, "call_ended")
    return [e for e in events if "eid" in e], _record(server, call_id)


# The events every run of the call has, load or not (advice may be skipped under load: docs/protocol.md).
_CORE = ("transcript", "flag", "severity", "alert", "guidance", "processed", "call_ended")


def _kinds(events: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    return [(e["type"], e.get("seq")) for e in events if e["type"] in _CORE]


def _alerts(feed: list[dict[str, Any]], call_id: str) -> list[tuple[int, bool, str]]:
    return [
        (a["episode"], a["update"], a["level"])
        for a in feed
        if a["type"] == "alert" and a["call_id"] == call_id
    ]


def test_calls_spread_over_both_workers_and_a_supervisor_sees_every_alert_once(env: dict[str, str]) -> None:
    with workers(env, 2) as (w1, w2), ws(w1, "/v1/alerts") as supervisor:
        calls = [(f"spread-{i}", (w1, w2)[i % 2]) for i in range(6)]
        for call_id, server in calls:  # one after the other: each call's alerts are in a known order
            with ws(server, f"/v1/calls/{call_id}/stream") as source:
                assert recv(source)["type"] == "ready"
                for chunk in scripted_call()[:18]:
                    send_chunk(source, chunk)
                source.send(json.dumps({"type": "end"}))
                read_until(source, "call_ended")
        feed = drain_until_pong(supervisor)
        ids = Counter(a["id"] for a in feed if a["type"] == "alert" and not a["update"])
        assert sorted(a["call_id"] for a in feed if a["type"] == "alert" and not a["update"]) == sorted(
            c for c, _ in calls
        )
        assert set(ids.values()) == {1}  # every alert exactly once, whichever worker raised it
        for server in (w1, w2):  # one shared record (each worker writes behind: wait for the other's batch)
            assert _eventually(lambda s=server: _ended_ids(s) >= {c for c, _ in calls})


def _resume(server: ServerProcess, call_id: str, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A source reconnecting to ``server``: resend everything after ``ready.last_seq``, then end."""
    with ws(server, f"/v1/calls/{call_id}/stream") as source:
        ready = recv(source)
        assert ready["type"] == "ready" and ready["resumed"] is True
        events = []
        for chunk in chunks:
            if chunk["seq"] > ready["last_seq"]:
                events += stream_and_wait(source, chunk)
        source.send(json.dumps({"type": "end"}))
        events += read_until(source, "call_ended")
    return events


def _check_same_call(
    sidebar: list[dict[str, Any]],
    record: dict[str, Any],
    reference: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    ref_events, ref_record = reference
    eids = [e["eid"] for e in sidebar]
    assert eids == list(range(1, len(eids) + 1))  # no hole, no repeat
    # Every chunk analysed exactly once, and the call's events are the uninterrupted call's events.
    assert _kinds(sidebar) == _kinds(ref_events)
    assert [c["seq"] for c in record["transcript"]] == [c["seq"] for c in ref_record["transcript"]]
    assert [(f["seq"], f["labels"]) for f in record["flags"]] == [
        (f["seq"], f["labels"]) for f in ref_record["flags"]
    ]
    for key in ("severity", "severity_level", "peak_severity", "peak_level", "flag_counts", "status"):
        assert record[key] == ref_record[key], key
    assert [(a["episode"], a["level"]) for a in record["alerts"]] == [
        (a["episode"], a["level"]) for a in ref_record["alerts"]
    ]


def test_a_worker_killed_mid_call_its_call_resumes_on_the_other(env: dict[str, str]) -> None:
    """Worker 1 writes nothing to the database before it dies (its write-behind batch lingers a minute): all
    it leaves is in Redis, and worker 2 rebuilds the call and its record from there."""
    chunks = scripted_call()
    with workers(env, 2, first={"ASSISTANT_STORE_LINGER_MS": "60000"}) as (w1, w2):
        reference = _reference(w2, "failover-reference")
        with ws(w2, "/v1/alerts") as supervisor, ws(w2, "/v1/calls/failover/events") as sidebar:
            with ws(w1, "/v1/calls/failover/stream") as source:
                recv(source)
                for chunk in chunks[:12]:  # the first alert has fired by seq 12
                    stream_and_wait(source, chunk)
                for chunk in chunks[12:15]:  # in flight when the worker dies
                    send_chunk(source, chunk)
                w1.kill()
                with pytest.raises((ConnectionClosed, TimeoutError)):
                    while True:
                        recv(source, timeout=5)
            _resume(w2, "failover", chunks)
            events = read_until(sidebar, "call_ended")
            feed = drain_until_pong(supervisor)
        _check_same_call(events, _record(w2, "failover"), reference)
        assert _alerts(feed, "failover") == _alerts(reference[0], "failover-reference")


def test_sigterm_drains_a_worker_and_its_call_resumes_on_the_other(env: dict[str, str]) -> None:
    chunks = scripted_call()
    with workers(env, 2) as (w1, w2):
        reference = _reference(w2, "drain-reference")
        with ws(w2, "/v1/alerts") as supervisor, ws(w2, "/v1/calls/drain/events") as sidebar:
            with ws(w1, "/v1/calls/drain/stream") as source:
                recv(source)
                for chunk in chunks[:12]:
                    stream_and_wait(source, chunk)
                for chunk in chunks[12:15]:
                    send_chunk(source, chunk)
                w1.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        recv(source, timeout=20)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
            assert w1.terminate(timeout_s=30) is not None
            _resume(w2, "drain", chunks)
            events = read_until(sidebar, "call_ended")
            feed = drain_until_pong(supervisor)
        _check_same_call(events, _record(w2, "drain"), reference)
        assert _alerts(feed, "drain") == _alerts(reference[0], "drain-reference")
