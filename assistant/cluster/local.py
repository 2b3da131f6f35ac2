"""A cluster on one machine: Redis, PostgreSQL, N ``assistant serve`` workers and nginx in front.

``LocalCluster(...).start()`` brings everything up (PostgreSQL migrated once before the workers start, each
worker ready on ``/readyz``), ``supervise()`` restarts a worker that died, ``stop()`` stops the workers first
(SIGTERM: each drains its live calls, whose sources reconnect through nginx to another worker), then nginx,
PostgreSQL and Redis. Data and logs stay under ``root`` (``var/cluster/`` for ``make run-cluster``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from assistant.cluster.nginx import nginx_config
from assistant.cluster.servers import (
    HOST,
    NginxServer,
    PostgresServer,
    RedisServer,
    ServiceUnavailable,
    port_open,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ClusterPorts:
    redis: int = 6380
    postgres: int = 5440
    first_worker: int = 8001
    proxy: int = 8080  # 0: no nginx


class WorkerProcess:
    """One ``assistant serve`` on ``port`` with the cluster's Redis and PostgreSQL; its log in ``log_path``."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path, *, fake_models: bool) -> None:
        self.port = port
        self.env = env
        self.log_path = log_path
        self.fake_models = fake_models
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if port_open(self.port):
            raise ServiceUnavailable(f"port {self.port} is taken; choose another first worker port")
        cmd = [sys.executable, "-m", "assistant", "serve", "--host", HOST, "--port", str(self.port)]
        if self.fake_models:
            cmd.append("--fake-models")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ServiceUnavailable(
                    f"worker on port {self.port} exited; see {self.log_path}: {_tail(self.log_path)}"
                )
            try:
                if httpx.get(f"http://{HOST}:{self.port}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise ServiceUnavailable(
            f"worker on port {self.port} not ready in {timeout_s:g} s; see {self.log_path}"
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive and self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("worker did not stop in time; killing it", extra={"port": self.port})
            self.proc.kill()
            self.proc.wait(5)


def _tail(path: Path, n: int = 600) -> str:
    try:
        return " ".join(path.read_text(errors="replace")[-n:].split())
    except OSError:
        return ""


@dataclass
class LocalCluster:
    root: Path
    workers: int = 2
    ports: ClusterPorts = field(default_factory=ClusterPorts)
    fake_models: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ServiceUnavailable(f"a cluster needs at least one worker, got {self.workers}")
        self.redis = RedisServer(self.root / "redis", port=self.ports.redis, persist=True)
        self.postgres = PostgresServer(self.root / "postgres", port=self.ports.postgres, database="assistant")
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        env = {
            "ASSISTANT_REDIS_URL": self.redis.url,
            "ASSISTANT_DATABASE_URL": self.postgres.url,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **self.extra_env,
        }
        self.procs = [
            WorkerProcess(port, env, self.root / "logs" / f"worker-{port}.log", fake_models=self.fake_models)
            for port in self.worker_ports
        ]
        self.nginx: NginxServer | None = None
        if self.ports.proxy:
            config = self.root / "nginx" / "nginx.conf"
            self.nginx = NginxServer(self.root / "nginx", config, port=self.ports.proxy)

    @property
    def worker_ports(self) -> list[int]:
        return [self.ports.first_worker + i for i in range(self.workers)]

    @property
    def entry_url(self) -> str:
        port = self.ports.proxy or self.ports.first_worker
        return f"http://{HOST}:{port}"

    def start(self) -> None:
        try:
            self.redis.start()
            self.postgres.start()
            self._migrate()
            for w in self.procs:
                w.start()
            for w in self.procs:
                w.wait_ready()
            if self.nginx is not None:
                if NginxServer.binary() is None:
                    log.warning("nginx is not installed: no proxy; connect to the workers' ports")
                    self.nginx = None
                else:
                    self.nginx.config.parent.mkdir(parents=True, exist_ok=True)
                    self.nginx.config.write_text(nginx_config(self.worker_ports, listen=self.ports.proxy))
                    self.nginx.start()
        except BaseException:
            self.stop()
            raise

    def _migrate(self) -> None:
        from assistant.store import Store

        async def run() -> None:
            store = Store(self.postgres.url)
            await store.start(migrate=True)
            await store.close()

        asyncio.run(run())

    def supervise_once(self) -> list[int]:
        """Restart workers that died; returns their ports."""
        restarted = []
        for w in self.procs:
            if w.proc is not None and not w.alive:
                log.warning(
                    "worker exited; restarting it", extra={"port": w.port, "status": w.proc.returncode}
                )
                w.start()
                restarted.append(w.port)
        return restarted

    def stop(self, *, drain_timeout_s: float = 30.0) -> None:
        for w in self.procs:
            w.terminate()
        for w in self.procs:
            w.wait(drain_timeout_s)
        if self.nginx is not None:
            self.nginx.stop()
        self.postgres.stop()
        self.redis.stop()
