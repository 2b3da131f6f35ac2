"""Helpers of the browser tests (a module with a unique name: ``conftest`` is not importable reliably)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from assistant.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
TRANSCRIPTS = ROOT / "eval" / "transcripts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(uvicorn.Server):
    """A uvicorn server that remembers its event loop, so that a test can act inside the service."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


class BrowserServer:
    """The app on a free loopback port, in a thread; ``call_in_loop`` runs a function on its event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = _free_port()
        self.server = _Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def call_in_loop(self, fn: Callable[[], Any]) -> Any:
        assert self.server.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.server.loop).result(timeout=5)

    def __enter__(self) -> BrowserServer:
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


def browser_settings(var_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "var_dir": var_dir,
        "database_url": f"sqlite+aiosqlite:///{var_dir / 'browser.db'}",
        "batch_max_wait_ms": 1.0,
        "reorder_timeout_ms": 300.0,
        "use_fake_models": True,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


AUTH_SECRET = "browser-test-secret"  # a throwaway secret for the auth test server, never a real one

# A small evaluation report in the format of `assistant eval redflags --json`, for the trainer page.
FAKE_REPORT: dict[str, Any] = {
    "n": 120,
    "names": ["insult", "profanity", "abusive"],
    "primary_metric": "macro_f1",
    "per_label": {
        "insult": {"precision": 0.8, "recall": 0.75, "f1": 0.774, "support": 40, "n": 120, "roc_auc": 0.91},
        "profanity": {
            "precision": 0.9,
            "recall": 0.85,
            "f1": 0.874,
            "support": 20,
            "n": 120,
            "roc_auc": 0.95,
        },
        "abusive": {"precision": 0.85, "recall": 0.8, "f1": 0.824, "support": 50, "n": 120, "roc_auc": None},
    },
    "macro_f1": 0.824,
    "baselines": {
        "tfidf-logreg": {
            "per_label": {
                "insult": {
                    "precision": 0.7,
                    "recall": 0.6,
                    "f1": 0.646,
                    "support": 40,
                    "n": 120,
                    "roc_auc": 0.8,
                },
                "profanity": {
                    "precision": 0.8,
                    "recall": 0.7,
                    "f1": 0.747,
                    "support": 20,
                    "n": 120,
                    "roc_auc": 0.85,
                },
                "abusive": {
                    "precision": 0.75,
                    "recall": 0.7,
                    "f1": 0.724,
                    "support": 50,
                    "n": 120,
                    "roc_auc": 0.8,
                },
            },
            "macro_f1": 0.706,
        }
    },
    "device": "cpu",
    "mode": "fp32",
    "latency": {
        "single_p50_ms": 4.2,
        "single_p95_ms": 6.8,
        "batch_size": 64,
        "batch_throughput_per_s": 910.0,
    },
}
