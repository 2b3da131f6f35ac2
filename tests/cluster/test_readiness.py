"""``/readyz`` says whether a worker should get traffic, and why not; ``/healthz`` stays liveness only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_server import make_settings

from assistant.api.app import create_app
from assistant.cluster.servers import PostgresServer, RedisServer
from assistant.testing import KeywordAnalyzer, RuleAdvisor


def _ready(client: TestClient) -> tuple[int, list[str]]:
    r = client.get("/readyz")
    return r.status_code, r.json()["reasons"]


def _wait_ready(client: TestClient, timeout_s: float = 20.0) -> tuple[int, list[str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, reasons = _ready(client)
        if status == 200 or time.monotonic() > deadline:
            return status, reasons
        time.sleep(0.2)


def test_ready_on_the_embedded_default_and_not_when_the_model_thread_stops(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
    with TestClient(app) as client:
        assert _ready(client) == (200, [])
        client.portal.call(app.state.service.pipeline.batcher.stop)
        status, reasons = _ready(client)
        assert status == 503 and any(r.startswith("models:") for r in reasons)
        assert client.get("/healthz").status_code == 200  # alive, just not ready


@pytest.mark.cluster
@pytest.mark.redis
@pytest.mark.postgres
def test_not_ready_while_redis_or_postgres_is_down_and_ready_again_after(
    tmp_path: Path, postgres_workdir: Path
) -> None:
    if not (RedisServer.available() and PostgresServer.available()):
        pytest.skip("needs redis-server and postgresql (apt-get install redis-server postgresql)")
    redis = RedisServer(tmp_path / "redis")
    postgres = PostgresServer(postgres_workdir)
    with redis, postgres:
        settings = make_settings(tmp_path, database_url=postgres.url, redis_url=redis.url)
        app = create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
        with TestClient(app) as client:
            assert _ready(client) == (200, [])
            redis.stop()
            status, reasons = _ready(client)
            assert status == 503 and "event bus" in [r.split(":")[0] for r in reasons]
            redis.start()
            assert _wait_ready(client) == (200, [])
            postgres.stop()
            status, reasons = _ready(client)
            assert status == 503 and "database" in [r.split(":")[0] for r in reasons]
            postgres.start()
            assert _wait_ready(client) == (200, [])


def test_a_draining_worker_is_not_ready_and_refuses_new_sources_with_503(tmp_path: Path) -> None:
    from starlette.testclient import WebSocketDenialResponse

    app = create_app(make_settings(tmp_path), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
    with TestClient(app) as client:
        client.portal.call(app.state.service.drain)
        status, reasons = _ready(client)
        assert status == 503 and any("draining" in r for r in reasons)
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            client.websocket_connect("/v1/calls/late/stream"),
        ):
            pass
        assert refused.value.status_code == 503
        with client.websocket_connect("/v1/calls/late/events") as sidebar:  # sidebars still served
            sidebar.send_json({"type": "ping"})
            assert sidebar.receive_json()["type"] == "pong"
