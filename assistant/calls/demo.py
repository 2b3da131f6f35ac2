"""Demo calls: a transcript file replayed server-side as a live call, for a newcomer on the landing page.

The replay goes through the same ``CallService.attach_source`` / ``ingest`` path the source socket uses, in
process, so no loopback socket and no source token are needed. At most ``MAX_DEMO_CALLS`` run at once: a
demo is for trying the product, not for load.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from assistant.calls.service import CallService
from assistant.calls.transcript import demo_transcripts, load_transcript
from assistant.errors import AssistantError, InvalidInputError
from assistant.events.messages import ChunkIn

log = logging.getLogger(__name__)

MAX_DEMO_CALLS = 20  # running demo replays per process


class UnknownTranscript(InvalidInputError):
    """No demo transcript of that name."""


class TooManyDemos(AssistantError):
    """``MAX_DEMO_CALLS`` demo calls are already running."""


def _discard(_: str) -> None:
    """Acks of the in-process source go nowhere: the events reach sidebars through the bus."""


async def replay_in_process(
    svc: CallService, call_id: str, chunks: list[ChunkIn], *, speed: float, agent: str | None = None
) -> None:
    """Feed ``chunks`` to the service as call ``call_id``, spaced by their ``ts`` divided by ``speed``;
    ``agent`` (who started the demo) is the call's agent, so that they may watch it."""
    conn = object()
    task = asyncio.current_task()

    async def kick() -> None:  # a real source connected for this call: it takes over, the demo stops
        if task is not None:
            task.cancel()

    try:
        live, _ = await svc.attach_source(call_id, conn=conn, kick=kick, agent=agent)
    except Exception:
        log.exception("demo call could not start", extra={"call_id": call_id})
        return
    t0 = chunks[0].ts or 0.0
    started = time.monotonic()
    try:
        for c in chunks:
            if speed > 0 and c.ts is not None:
                delay = (c.ts - t0) / speed - (time.monotonic() - started)
                if delay > 0:
                    await asyncio.sleep(delay)
            await svc.ingest(live, c.model_copy(update={"call_id": call_id}), reply=_discard)
        await svc.end_call(live, reason="source_end")
    except asyncio.CancelledError:
        log.info("demo call stopped", extra={"call_id": call_id})
    except Exception:  # the service shut down under us, or a bug: never crash the loop for a demo
        log.exception("demo call failed", extra={"call_id": call_id})
    finally:
        svc.detach_source(live, conn=conn)


class DemoCalls:
    """The demo replays running in this process."""

    def __init__(self, svc: CallService, *, limit: int = MAX_DEMO_CALLS) -> None:
        self.svc = svc
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, transcript: str, *, speed: float, agent: str | None = None) -> tuple[str, list[ChunkIn]]:
        """Start replaying the named transcript as a new call; returns its call id and chunks."""
        path = demo_transcripts().get(transcript)
        if path is None:
            names = ", ".join(demo_transcripts()) or "none"
            raise UnknownTranscript(f"no demo transcript {transcript!r}; expected one of: {names}")
        chunks = load_transcript(path)
        if len(self._tasks) >= self.limit:
            raise TooManyDemos(f"{self.limit} demo calls are already running; wait for one to end")
        call_id = f"demo-{transcript[:40]}-{secrets.token_hex(3)}"
        task = asyncio.create_task(
            replay_in_process(self.svc, call_id, chunks, speed=speed, agent=agent), name=f"demo-{call_id}"
        )
        self._tasks.add(task)  # keep a reference: the loop only holds weak ones
        task.add_done_callback(self._tasks.discard)
        log.info("demo call started", extra={"call_id": call_id, "transcript": transcript})
        return call_id, chunks
