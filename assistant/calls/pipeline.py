"""The analysis pipeline: what happens to each final chunk of a call once it is in sequence.

One worker task per call takes its chunks in ``seq`` order from ``LiveCall.queue``: score the customer's
utterance in the cross-call micro-batch (the query vector for the advisor is encoded, batched, meanwhile) ->
update the call severity -> ``flag`` / ``severity`` events -> alert episode -> next-step advice in a worker
thread -> ``suggestion`` event -> ``processed``. The one-shot ``POST /v1/analyze`` goes through the same
batcher and advisor threads (``analyze_once``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from assistant.analysis import Analysis, analyze_once
from assistant.calls.alerts import AlertDesk
from assistant.calls.live import CallEvents, LiveCall
from assistant.calls.metrics import ServiceMetrics
from assistant.calls.recorder import CallRecorder, advisor_state_dict
from assistant.calls.redaction import CallRedactor
from assistant.calls.session import ChunkData
from assistant.events.bus import call_topic
from assistant.events.messages import (
    ErrorEvent,
    ErrorReason,
    FlagEvent,
    GuidanceEvent,
    ProcessedEvent,
    SeverityEvent,
    SeverityOut,
    SpanOut,
    SuggestionEvent,
    encode,
)
from assistant.guidance.live import CallGuidance
from assistant.inference import BatcherStopped, BatchStats, MicroBatcher
from assistant.labels import LABEL_TO_GROUP
from assistant.settings import Settings
from assistant.types import NextStepAdvisor, RedFlagAnalyzer, RedFlagResult, Suggestion, Utterance

log = logging.getLogger(__name__)

SEVERITY_EVENT_STEP = 0.05  # a severity event when the level changes or the score moves at least this much


class AnalysisPipeline:
    """Scores, advises and publishes each chunk of every call; owns the batchers and the advisor threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        analyzer: RedFlagAnalyzer,
        advisor: NextStepAdvisor | None,
        events: CallEvents,
        alerts: AlertDesk,
        recorder: CallRecorder,
        metrics: ServiceMetrics,
    ) -> None:
        self.settings = settings
        self.analyzer = analyzer
        self.advisor = advisor
        self.events = events
        self.alerts = alerts
        self.recorder = recorder
        self.metrics = metrics
        self.batcher: MicroBatcher[Utterance, RedFlagResult] = MicroBatcher(
            analyzer,
            max_batch=settings.batch_max_size,
            max_wait_ms=settings.batch_max_wait_ms,
            on_batch=partial(self._on_batch, "redflags"),
        )
        # The advisor's query encoding is a second encoder pass per chunk: batched across calls in its own
        # worker thread when the advisor has an encoder to batch (the real one has; the rule fake has none).
        self.embed_batcher: MicroBatcher[str, Any] | None = None
        encoder = advisor.query_encoder() if advisor is not None and settings.embed_batching else None
        if encoder is not None:
            self.embed_batcher = MicroBatcher(
                encoder,
                max_batch=settings.batch_max_size,
                max_wait_ms=settings.batch_max_wait_ms,
                name="query-encoder",
                on_batch=partial(self._on_batch, "queries"),
            )
        self._advisor_pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        await self.batcher.start()
        if self.embed_batcher is not None:
            await self.embed_batcher.start()
        self._advisor_pool = ThreadPoolExecutor(
            max_workers=self.settings.advisor_threads, thread_name_prefix="advisor"
        )

    async def stop(self) -> None:
        await self.batcher.stop()
        if self.embed_batcher is not None:
            await self.embed_batcher.stop()
        if self._advisor_pool is not None:
            self._advisor_pool.shutdown(wait=False, cancel_futures=True)

    def _on_batch(self, model: str, stats: BatchStats) -> None:
        m = self.metrics
        m.batch_size.labels(model).observe(stats.size)
        m.batch_seconds.labels(model).observe(stats.seconds)
        m.batch_wait.labels(model).observe(stats.waited_s)

    # ---- a live call ------------------------------------------------------------------------------------
    async def run(self, live: LiveCall) -> None:
        """The call's worker: analyse its chunks in order until the queue yields None (the call ended)."""
        while True:
            chunk = await live.queue.get()
            if chunk is None:
                return
            try:
                await self.process(live, chunk)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("analysis failed", extra={"call_id": live.call_id, "seq": chunk.seq})
                self.metrics.errors.labels(ErrorReason.ANALYSIS_FAILED).inc()
                err = ErrorEvent(
                    reason=ErrorReason.ANALYSIS_FAILED,
                    message=f"analysis failed: {type(e).__name__}",
                    seq=chunk.seq,
                )
                await self.events.bus.publish(call_topic(live.call_id), encode(err))
            finally:
                await self.events.emit(
                    live,
                    ProcessedEvent(
                        call_id=live.call_id,
                        seq=chunk.seq,
                        latency_ms=round((time.perf_counter() - chunk.received) * 1000, 3),
                    ),
                )
                self.metrics.latency.observe(time.perf_counter() - chunk.received)
                self.recorder.call_state(live.session)

    async def process(self, live: LiveCall, chunk: ChunkData) -> None:
        """Red flags (customer turns), then next-step advice (every turn) for one chunk."""
        s = live.session
        context = s.context_before(chunk.seq)
        result: RedFlagResult | None = None
        # The query vector is encoded (batched) while the classifier scores the chunk (batched).
        vector: asyncio.Future[Any] | None = None
        if self.embed_batcher is not None and self.advisor is not None and chunk.text.strip():
            vector = asyncio.ensure_future(self.embed_batcher.predict(chunk.text))
        try:
            if chunk.speaker == "customer":
                result = await self.batcher.predict(Utterance(chunk.text, context))
                await self._score(live, chunk, result)
            extra: dict[str, Any] = {"vector": await vector} if vector is not None else {}
        finally:
            if vector is not None and not vector.done():
                vector.cancel()
        if self.advisor is not None and self._advisor_pool is not None:
            advise = partial(
                self.advisor.advise,
                s.advisor_state,
                speaker=chunk.speaker,
                text=chunk.text,
                context=context,
                flags=result,
                **extra,
            )
            suggestions: list[Suggestion] = await asyncio.get_running_loop().run_in_executor(
                self._advisor_pool, advise
            )
            await self._suggest(live, chunk, suggestions)
        if s.guidance is not None:
            await self._guide(live, s.guidance, chunk, result.flagged if result is not None else [])

    async def _score(self, live: LiveCall, chunk: ChunkData, result: RedFlagResult) -> None:
        s = live.session
        call_id = s.call_id
        flagged = result.flagged
        s.customer_turns += 1
        t = chunk.ts if chunk.ts is not None else time.monotonic() - live.started
        probs = {label: result.labels[label].probability for label in flagged}
        before = s.severity.current
        reading = s.severity.observe(probs, turn=s.customer_turns, t=t)
        if flagged:
            for label in flagged:
                s.flag_counts[label] = s.flag_counts.get(label, 0) + 1
                self.metrics.count(self.metrics.flags, label)
            spans = [
                SpanOut(start=sp.start, end=sp.end, text=sp.text, label=label, weight=sp.weight)
                for label in flagged
                for sp in result.labels[label].spans
            ]
            groups = sorted(
                {g for g in result.groups if any(LABEL_TO_GROUP.get(lb, "") == g for lb in flagged)}
            )
            event = FlagEvent(
                call_id=call_id,
                seq=chunk.seq,
                speaker=chunk.speaker,
                text=chunk.text,
                labels=flagged,
                groups=groups,
                scores={label: round(sc.probability, 4) for label, sc in result.labels.items()},
                spans=spans,
                severity=SeverityOut(score=reading.score, level=reading.level),
            )
            await self.events.emit(live, event)
            self.metrics.first_event_latency.observe(time.perf_counter() - chunk.received)
            self.recorder.flag(
                call_id,
                chunk.seq,
                labels=flagged,
                scores=event.scores,
                spans=spans,
                severity=reading.score,
                level=reading.level,
            )
        if reading.level != before.level or abs(reading.score - before.score) >= SEVERITY_EVENT_STEP:
            await self.events.emit(
                live,
                SeverityEvent(
                    call_id=call_id,
                    seq=chunk.seq,
                    score=reading.score,
                    level=reading.level,
                    previous_level=before.level,
                ),
            )
        decision = s.episodes.update(reading, flagged)
        if decision is not None:
            await self.alerts.raise_alert(live, chunk, decision, reading)

    async def _suggest(self, live: LiveCall, chunk: ChunkData, suggestions: list[Suggestion]) -> None:
        s = live.session
        key = tuple((x.procedure_id, x.step_index) for x in suggestions)
        if not suggestions or key == s.shown_suggestions:
            return
        s.shown_suggestions = key
        event = SuggestionEvent(
            call_id=s.call_id,
            seq=chunk.seq,
            suggestions=[x.to_dict() for x in suggestions],
            advisor=advisor_state_dict(s.advisor_state),
        )
        await self.events.emit(live, event)
        self.metrics.first_event_latency.observe(time.perf_counter() - chunk.received)
        self.recorder.suggestions(s.call_id, chunk.seq, event.eid, suggestions)

    async def _guide(
        self, live: LiveCall, guidance: CallGuidance, chunk: ChunkData, flagged: list[str]
    ) -> None:
        """Stages, required steps and the abuse protocol: a ``guidance`` event when the turn moved any of them."""
        s = live.session
        payload = guidance.observe(chunk.seq, chunk.speaker, chunk.text, flagged)
        if payload is None:
            return
        payload.pop("type")
        event = GuidanceEvent(call_id=s.call_id, **payload)
        await self.events.emit(live, event)
        if event.supervisor_alert:
            abusive = [label for label in flagged if label in guidance.policies.protocol.abusive_labels]
            decision = s.episodes.protocol_alert(abusive)
            if decision is not None:
                await self.alerts.raise_alert(live, chunk, decision, s.severity.current)

    # ---- one utterance, outside any call ----------------------------------------------------------------
    async def analyze_once(self, text: str, context: list[str]) -> Analysis:
        """Flags, severity and suggestions for one redacted utterance (``POST /v1/analyze``).

        The one-shot path of ``assistant.analysis``, run on an advisor thread; its red-flag pass goes
        through the service's micro-batcher like every chunk's.
        """
        turns = self.settings.context_turns
        redactor = CallRedactor()  # a name given in the context is redacted in the text too
        ctx = tuple(redactor.redact(c).text for c in context[-max(1, turns) :]) if context else ()
        red = redactor.redact(text).text
        if self._advisor_pool is None:
            raise BatcherStopped(
                "AnalysisPipeline.analyze_once() before start(); start it in the app lifespan"
            )
        loop = asyncio.get_running_loop()
        batched = _ThroughBatcher(self.batcher, loop)
        run = partial(analyze_once, batched, self.advisor, red, ctx)
        return await loop.run_in_executor(self._advisor_pool, run)


class _ThroughBatcher:
    """A ``RedFlagAnalyzer`` for a worker thread that scores through the event loop's micro-batcher."""

    def __init__(
        self, batcher: MicroBatcher[Utterance, RedFlagResult], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._batcher = batcher
        self._loop = loop

    def warm_up(self) -> None:
        return None

    def predict(self, utterances: list[Utterance]) -> list[RedFlagResult]:
        futures = [asyncio.run_coroutine_threadsafe(self._batcher.predict(u), self._loop) for u in utterances]
        return [f.result() for f in futures]
