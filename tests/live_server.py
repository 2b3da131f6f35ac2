"""Shared test helpers: a real uvicorn server on a free loopback port, and settings for a test service.

Imported by the API, browser and bench tests (``tests/`` is on sys.path because it holds the root conftest).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from assistant.api.server import server_config
from assistant.eval.bench import free_port  # the one helper, shared with the bench
from assistant.settings import Settings

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "eval" / "transcripts"


def make_settings(var_dir: Path, *, db_name: str = "test.db", **overrides: object) -> Settings:
    """Settings of a fast test service: a temporary SQLite file, short waits, stand-in models by default."""
    base: dict[str, object] = {
        "var_dir": var_dir,
        "database_url": f"sqlite+aiosqlite:///{var_dir / db_name}",
        "batch_max_wait_ms": 1.0,
        "reorder_timeout_ms": 300.0,
        "use_fake_models": True,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


class _Server(uvicorn.Server):
    """A uvicorn server that remembers its event loop, so that a test can act inside the service."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


class LiveServer:
    """The app on a free loopback port, in a thread; ``call_in_loop`` runs a function on its event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        settings: Settings | None = getattr(app.state, "settings", None)
        if settings is None:  # a bare app of a test
            config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        else:  # the service's own uvicorn configuration (WebSocket limits, compression), on this port
            config = server_config(app, settings.model_copy(update={"host": "127.0.0.1", "port": self.port}))
        self.server = _Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    url = http_url

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def call_in_loop(self, fn: Callable[[], Any]) -> Any:
        if self.server.loop is None:
            raise RuntimeError("the server is not running")

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.server.loop).result(timeout=5)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
