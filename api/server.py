"""uvicorn with a graceful drain: the first SIGTERM (or Ctrl-C) moves the live calls to other workers.

Draining (``assistant.api.streams.drain``): the worker reports not ready on ``/readyz``, takes no new chunk,
finishes and stores what it holds, then closes every transcript source with 1012 (service restart) so that it
reconnects, through the load balancer, to another worker and resumes there. Then uvicorn's own shutdown runs
(it closes the remaining sockets with 1012 too). A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from assistant.settings import Settings

from .streams import drain

log = logging.getLogger(__name__)


def server_config(app: FastAPI, settings: Settings, *, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn's configuration for the service: address, WebSocket limits and compression from the settings."""
    from assistant.logs import uvicorn_log_config

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=uvicorn_log_config(),
        # uvicorn refuses frames over this with close 1009; ours (ASSISTANT_MAX_FRAME_BYTES) get an error
        # event first, on a socket that stays open.
        ws_max_size=max(1 << 20, 4 * settings.max_frame_bytes),
        ws_per_message_deflate=settings.ws_compression,
    )


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Future[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or self._draining is not None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)  # re-raised by uvicorn after its shutdown, as without a drain
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._draining = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            app = self.config.app
            if not isinstance(app, FastAPI):
                raise TypeError(
                    f"DrainingServer serves the assistant's FastAPI app, got {type(app).__name__}"
                )
            await asyncio.wait_for(drain(app), timeout=self.drain_timeout_s)
        except TimeoutError:
            log.error("draining the live calls took over %s s; shutting down anyway", self.drain_timeout_s)
        except Exception:
            log.exception("draining the live calls failed; shutting down anyway")
        finally:
            self.should_exit = True
