"""`assistant cluster` (make run-cluster): Redis, PostgreSQL, two workers in their own processes, nginx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import TRANSCRIPTS
from websockets.sync.client import connect

from assistant.cluster.local import ClusterPorts, LocalCluster
from assistant.cluster.nginx import nginx_config
from assistant.cluster.servers import NginxServer, PostgresServer, RedisServer, free_port, port_open

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DOCS_NGINX = Path(__file__).resolve().parents[2] / "docs" / "nginx.conf"


def test_docs_nginx_conf_is_the_generated_config_and_nginx_accepts_it(tmp_path: Path) -> None:
    assert DOCS_NGINX.read_text() == nginx_config([8001, 8002], listen=8080)
    if NginxServer.binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    NginxServer(tmp_path, DOCS_NGINX, port=8080).check()


@pytest.fixture
def cluster(postgres_workdir: Path) -> Iterator[LocalCluster]:
    if not (RedisServer.available() and PostgresServer.available() and NginxServer.binary()):
        pytest.skip("needs redis-server, postgresql and nginx (make cluster-services)")
    ports = ClusterPorts(
        redis=free_port(), postgres=free_port(), first_worker=free_port(2), proxy=free_port()
    )
    c = LocalCluster(postgres_workdir, workers=2, ports=ports, fake_models=True)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _events_until(ws: Any, last: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while not got or got[-1]["type"] != last:
        got.append(json.loads(ws.recv(timeout=20)))
    return got


def _record_when_ended(port: int, call_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The stored record once the call's worker has written its end (write-behind: within its linger)."""
    deadline = time.monotonic() + timeout_s
    while True:
        record: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/v1/calls/{call_id}", timeout=10).json()
        if record.get("status") == "ended" or time.monotonic() > deadline:
            return record
        time.sleep(0.1)


def test_a_call_through_nginx_reaches_sidebars_and_supervisors_on_every_worker(cluster: LocalCluster) -> None:
    proxy = f"ws://127.0.0.1:{cluster.ports.proxy}"
    w1, w2 = (f"ws://127.0.0.1:{p}" for p in cluster.worker_ports)
    lines = [json.loads(x) for x in (TRANSCRIPTS / "billing-dispute-abusive.jsonl").read_text().splitlines()]
    with (
        connect(f"{w1}/v1/alerts") as sup1,
        connect(f"{w2}/v1/alerts") as sup2,
        connect(f"{w2}/v1/calls/through-proxy/events") as sidebar,
        connect(f"{proxy}/v1/calls/through-proxy/stream") as source,
    ):
        assert json.loads(source.recv(timeout=10))["type"] == "ready"
        for line in lines:
            source.send(json.dumps(line | {"call_id": "through-proxy"}))
        source.send(json.dumps({"type": "end"}))
        events = _events_until(sidebar, "call_ended")
        assert [e["eid"] for e in events] == list(range(1, len(events) + 1))
        assert len([e for e in events if e["type"] == "transcript"]) == len(lines)
        for sup in (sup1, sup2):
            alert = _events_until(sup, "alert")[-1]
            assert alert["call_id"] == "through-proxy" and alert["cursor"]
    for port in cluster.worker_ports:  # every worker reads the one record from PostgreSQL
        record = _record_when_ended(port, "through-proxy")
        assert [c["seq"] for c in record["transcript"]] == [line["seq"] for line in lines]
    assert httpx.get(f"{cluster.entry_url}/readyz", timeout=10).json()["status"] == "ready"


def test_stop_leaves_nothing_running(postgres_workdir: Path) -> None:
    if not (RedisServer.available() and PostgresServer.available()):
        pytest.skip("needs redis-server and postgresql (make cluster-services)")
    ports = ClusterPorts(redis=free_port(), postgres=free_port(), first_worker=free_port(), proxy=0)
    c = LocalCluster(postgres_workdir, workers=1, ports=ports, fake_models=True)
    c.start()
    assert all(port_open(p) for p in (ports.redis, ports.postgres, ports.first_worker))
    c.stop()
    assert not any(port_open(p) for p in (ports.redis, ports.postgres, ports.first_worker))
