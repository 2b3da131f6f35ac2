"""The analysis pipeline: what happens to each final chunk of a call once it is in sequence.

Two stages per call, each in ``seq`` order, so that a call's red flags never wait for its suggestions:

* **red flags** (the call's worker task, ``run``): a customer chunk is scored in the cross-call micro-batch ->
  call severity -> ``flag`` (or ``scored``) / ``severity`` events -> alert episode; then, for every turn, the
  call's guidance (stages, required steps, the abuse protocol: rules, ``guidance`` events). Never skipped.
* **advice** (the call's advice task, fed through an ``AdviceLane``): the chunk's query vector (encoded,
  batched, while the classifier scores it) -> next-step advice in a worker thread -> ``suggestion`` event;
  step tracking for agent chunks. Under overload this is skipped by priority (``assistant.calls.scheduler``).

Every chunk ends with ``processed`` (naming the work skipped, if any). The one-shot ``POST /v1/analyze`` goes
through the same batcher and advisor threads (``analyze_once``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from assistant.analysis import Analysis, analyze_once
from assistant.calls.alerts import AlertDesk
from assistant.calls.live import CallEvents, LiveCall
from assistant.calls.metrics import ServiceMetrics
from assistant.calls.recorder import CallRecorder, advisor_state_dict
from assistant.calls.redaction import CallRedactor
from assistant.calls.scheduler import (
    FEATURES,
    AdviceLane,
    Change,
    Degradation,
    Feature,
    Turn,
    carry_flags,
    feature_of,
)
from assistant.calls.session import ChunkData
from assistant.calls.snapshot import CallSnapshot
from assistant.events.bus import ALERTS_TOPIC, call_topic
from assistant.events.messages import (
    DegradedEvent,
    ErrorEvent,
    ErrorReason,
    FlagEvent,
    GuidanceEvent,
    ProcessedEvent,
    ScoredEvent,
    ServiceDegradedEvent,
    SeverityEvent,
    SeverityOut,
    SpanOut,
    SuggestionEvent,
    encode,
)
from assistant.guidance.live import CallGuidance
from assistant.inference import BatcherStopped, BatchStats, MicroBatcher, Shed
from assistant.labels import LABEL_TO_GROUP
from assistant.settings import Settings
from assistant.types import (
    NextStepAdvisor,
    RedFlagAnalyzer,
    RedFlagResult,
    Suggestion,
    Utterance,
    shares_query_vectors,
)

log = logging.getLogger(__name__)

# The red-flag batch limit for an int8 classifier. A batch's results come back when its last row is done, and
# int8's cost per row is flat from about 16 rows (AVX2: 2.6-2.8 ms at 16-32), so a longer batch only delays its
# first rows. Capped Zen 4, 500 calls, two alternating pairs: red flags p95 113 / 210 ms with batches of 16,
# 723 / 387 with 64; one call alone 5.1 / 6.5 vs 10.7 / 8.8 ms (docs/benchmarks.md, session 20).
INT8_REDFLAG_BATCH = 16
SEVERITY_EVENT_STEP = 0.05  # a severity event when the level changes or the score moves at least this much


def redflag_batch_size(settings: Settings, analyzer: RedFlagAnalyzer) -> int:
    """The red-flag batcher's limit: ``batch_max_size``, at most ``INT8_REDFLAG_BATCH`` for an int8 model."""
    if getattr(analyzer, "precision", None) == "int8":
        return min(settings.batch_max_size, INT8_REDFLAG_BATCH)
    return settings.batch_max_size


@dataclass(slots=True)
class _Advice:
    """A chunk on its way to advice: its red-flag result and its query vector (being encoded, or None)."""

    chunk: ChunkData
    context: tuple[str, ...]
    flags: RedFlagResult | None
    vector: asyncio.Future[Any] | None
    failed: bool = False  # its red-flag pass failed (an error event went out): no advice
    state: CallSnapshot | None = (
        None  # the call's red-flag state once this chunk was scored (for the snapshot)
    )


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
            max_batch=redflag_batch_size(settings, analyzer),
            max_wait_ms=settings.batch_max_wait_ms,
            on_batch=partial(self._on_batch, "redflags"),
            workers=settings.redflag_workers,
            helper_backlog=settings.redflag_helper_backlog,
        )
        # A classifier with a query map returns each customer chunk's query vector from its own pass
        # (assistant.redflags.querymap): no second encoder pass for those chunks.
        self.shared_queries = shares_query_vectors(analyzer, advisor)
        # Otherwise the advisor's query encoding is a second encoder pass per customer chunk: batched across calls
        # in its own worker thread when the advisor has an encoder to batch (the real one has; the rule fake has
        # none). It yields to the red flags' batcher and its queue is bounded (docs/protocol.md, "Overload").
        self.embed_batcher: MicroBatcher[str, Any] | None = None
        encoder = advisor.query_encoder() if advisor is not None and settings.embed_batching else None
        if encoder is not None:
            self.embed_batcher = MicroBatcher(
                encoder,
                max_batch=settings.batch_max_size,
                max_wait_ms=settings.batch_max_wait_ms,
                name="query-encoder",
                on_batch=partial(self._on_batch, "queries"),
                max_queued=settings.query_queue_max,
                yield_to=self.batcher,
                yield_backlog=settings.query_yield_backlog,
            )
        self._advisor_pool: ThreadPoolExecutor | None = None
        self.degradation = Degradation(recover_s=settings.degraded_recover_s)
        self._call_behind: dict[str, set[Feature]] = {}  # call id -> features behind for that call
        self._carried: dict[str, RedFlagResult] = {}  # call id -> red flags of its skipped customer turns
        self._shed_total: dict[str, int] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.batcher.start()
        if self.embed_batcher is not None:
            await self.embed_batcher.start()
        self._advisor_pool = ThreadPoolExecutor(
            max_workers=self.settings.advisor_threads, thread_name_prefix="advisor"
        )
        self._watcher = asyncio.create_task(self._watch_recovery(), name="degraded-watch")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
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
        m.batch_cpu.labels(model).inc(stats.cpu_s)

    # ---- a live call ------------------------------------------------------------------------------------
    async def run(self, live: LiveCall) -> None:
        """The call's worker: red flags for its chunks in order until the queue yields None (the call ended);
        advice follows in the call's advice task, which this waits for before returning."""
        lane: AdviceLane[_Advice] = AdviceLane(max_pending=self.settings.advice_queue_max)
        advice = asyncio.create_task(self._advise_all(live, lane), name=f"advice-{live.call_id}")
        try:
            while True:
                chunk = await live.queue.get()
                if chunk is None:
                    break
                item = await self._red_flags(live, chunk)
                # The severity, episodes and flag counts as of this chunk: stage one runs ahead of the advice,
                # so the snapshot published with this chunk's ``processed`` must not take them later.
                item.state = CallSnapshot.of(
                    live.session,
                    last_seq=chunk.seq,
                    last_eid=0,
                    alert_updates=live.alert_updates,
                    advisor_state={},
                )
                lane.put(Turn(chunk.seq, chunk.speaker, chunk.received, item))
            lane.close()
            await advice
        finally:
            if not advice.done():
                advice.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await advice
            self._call_behind.pop(live.call_id, None)
            self._carried.pop(live.call_id, None)

    async def _red_flags(self, live: LiveCall, chunk: ChunkData) -> _Advice:
        """Stage one: the customer chunk's red flags (never skipped), with its query vector started alongside."""
        s = live.session
        context = s.context_before(chunk.seq)
        item = _Advice(chunk, context, None, None)
        advisor, encoder = self.advisor, self.embed_batcher
        if (
            advisor is not None
            and encoder is not None
            and chunk.text.strip()
            and advisor.needs_vector(chunk.speaker)
            and not (self.shared_queries and chunk.speaker == "customer")
        ):
            # Encoded while the classifier scores the chunk; skipped by the batcher if it cannot start in time.
            deadline = chunk.received + self.settings.suggestion_max_age_ms / 1000.0
            item.vector = asyncio.ensure_future(encoder.predict(chunk.text, deadline=deadline))
            item.vector.add_done_callback(_consume_exception)
        if chunk.speaker != "customer":
            await self._guide_turn(live, chunk, [])
            return item
        try:
            item.flags = await self.batcher.predict(Utterance(chunk.text, context))
            await self._score(live, chunk, item.flags)
            await self._guide_turn(live, chunk, item.flags.flagged)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            item.failed = True
            if item.vector is not None:
                item.vector.cancel()  # no advice for a chunk whose analysis failed
            await self._failed(live, chunk, e)
            return item
        late = time.perf_counter() - chunk.received > self.settings.flags_late_ms / 1000.0
        await self._call_feature(live, "red_flags", behind=late)
        return item

    async def _advise_all(self, live: LiveCall, lane: AdviceLane[_Advice]) -> None:
        """Stage two: advice for the call's turns in order, skipping by priority (``AdviceLane``)."""
        while True:
            taken = await lane.wait()
            for turn in taken.shed:
                await self._shed(live, turn.payload, turn.feature)
            if taken.turn is None:
                if not taken.shed:
                    return  # closed and drained
                continue
            item = taken.turn.payload
            if item is None:
                continue
            skipped: Feature | None = None
            advised = False
            try:
                if not item.failed:
                    skipped = await self._advise(live, item)
                    advised = skipped is None
            except asyncio.CancelledError:
                raise
            except Exception as e:
                await self._failed(live, item.chunk, e)
            if skipped is not None:
                await self._shed(live, item, skipped)
                continue
            await self._processed(live, item.chunk, state=item.state)
            if advised:
                await self._call_feature(live, feature_of(item.chunk.speaker), behind=False)

    async def _advise(self, live: LiveCall, item: _Advice) -> Feature | None:
        """Next-step advice for one turn; the feature skipped (its vector came too late), or None when done."""
        if self.advisor is None or self._advisor_pool is None:
            return None
        chunk = item.chunk
        extra: dict[str, Any] = {}
        if item.vector is not None:
            # Not past the deadline: the encoder thread may be paused for red flags and would say Shed late.
            left = chunk.received + self.settings.suggestion_max_age_ms / 1000.0 - time.perf_counter()
            try:
                extra["vector"] = await asyncio.wait_for(asyncio.shield(item.vector), timeout=max(left, 0.0))
            except (Shed, TimeoutError):
                return feature_of(chunk.speaker)
        elif (
            chunk.speaker == "customer"
            and time.perf_counter() - chunk.received > self.settings.suggestion_max_age_ms / 1000.0
        ):
            return "suggestions"  # no encoder pass to wait for (the red-flag pass's vector, fakes): the age alone
        shared = item.flags.query_vector if self.shared_queries and item.flags is not None else None
        if "vector" not in extra and shared is not None:
            extra["vector"] = shared
        flags = item.flags
        if chunk.speaker == "customer":
            flags = carry_flags(self._carried.pop(live.call_id, None), flags)
        advise = partial(
            self.advisor.advise,
            live.session.advisor_state,
            speaker=chunk.speaker,
            text=chunk.text,
            context=item.context,
            flags=flags,
            **extra,
        )
        suggestions: list[Suggestion]
        if "vector" in extra or not self.advisor.needs_vector(chunk.speaker):
            # No encoder pass left: retrieval over the given vector or the agent's script matching, a median
            # 0.21 / 0.03 ms of Python (bench lines), less than a hop to an advisor thread and back costs.
            suggestions = advise()
        else:
            suggestions = await asyncio.get_running_loop().run_in_executor(self._advisor_pool, advise)
        await self._suggest(live, chunk, suggestions)
        return None

    async def _processed(
        self,
        live: LiveCall,
        chunk: ChunkData,
        shed: list[str] | None = None,
        *,
        state: CallSnapshot | None = None,
    ) -> None:
        """``processed``, published together with the call's snapshot as of this chunk (what a call resumes from,
        on any worker): the red-flag state taken when the chunk was scored, the advice state now."""
        s = live.session
        snapshot = None
        if state is not None:
            state.advisor_state = advisor_state_dict(s.advisor_state)
            state.shown_suggestions = [(p, i) for p, i in s.shown_suggestions]
            state.last_eid = s.last_eid
            snapshot = state.to_json()
        try:
            await self.events.emit(
                live,
                ProcessedEvent(
                    call_id=live.call_id,
                    seq=chunk.seq,
                    latency_ms=round((time.perf_counter() - chunk.received) * 1000, 3),
                    shed=shed,
                ),
                state=snapshot,
            )
        except Exception:
            log.exception(
                "the event bus refused a chunk's processed event and state",
                extra={"call_id": live.call_id, "seq": chunk.seq},
            )
            self.metrics.errors.labels("bus_publish_failed").inc()
        self.metrics.latency.observe(time.perf_counter() - chunk.received)
        self.recorder.call_state(s, snapshot=snapshot)

    async def _shed(self, live: LiveCall, item: _Advice | None, feature: Feature) -> None:
        """Account a turn whose advice was skipped: counted, its ``processed`` names it, ``degraded`` if new."""
        if item is None:
            return
        if item.vector is not None and not item.vector.done():
            item.vector.cancel()  # the batcher drops a cancelled item before its pass
        self.metrics.count(self.metrics.shed, feature)
        if item.chunk.speaker == "customer" and item.flags is not None and item.flags.flagged:
            self._carried[live.call_id] = (
                carry_flags(self._carried.get(live.call_id), item.flags) or item.flags
            )
        self._shed_total[feature] = self._shed_total.get(feature, 0) + 1
        await self._processed(live, item.chunk, shed=[feature], state=item.state)
        await self._call_feature(live, feature, behind=True)

    async def _failed(self, live: LiveCall, chunk: ChunkData, e: Exception) -> None:
        log.error(
            "analysis failed",
            exc_info=(type(e), e, e.__traceback__),
            extra={"call_id": live.call_id, "seq": chunk.seq},
        )
        self.metrics.errors.labels(ErrorReason.ANALYSIS_FAILED).inc()
        err = ErrorEvent(
            reason=ErrorReason.ANALYSIS_FAILED, message=f"analysis failed: {type(e).__name__}", seq=chunk.seq
        )
        await self.events.bus.publish(call_topic(live.call_id), encode(err))

    # ---- degraded ---------------------------------------------------------------------------------------
    async def _call_feature(self, live: LiveCall, feature: Feature, *, behind: bool) -> None:
        """Tell the call's sidebar when one of its features falls behind or is whole again; the service's
        state follows (supervisors)."""
        call = self._call_behind.setdefault(live.call_id, set())
        if behind:
            change = self.degradation.behind(feature, now=time.monotonic())
            if change is not None:
                await self._announce(change)
            if feature in call:
                return
            call.add(feature)
            recovered: list[str] = []
        else:
            if feature not in call:
                return
            call.discard(feature)
            recovered = [feature]
        features: list[str] = [f for f in FEATURES if f in call]
        await self.events.emit(
            live, DegradedEvent(call_id=live.call_id, features=features, recovered=recovered)
        )

    async def _announce(self, change: Change) -> None:
        for f in FEATURES:
            self.metrics.degraded.labels(f).set(1 if f in change.behind else 0)
        event = self.service_degraded(change)
        self.metrics.count(self.metrics.events, event.type)
        await self.events.bus.publish(ALERTS_TOPIC, encode(event))
        log.warning(
            "service degraded" if change.behind else "service recovered",
            extra={
                "behind": list(change.behind),
                "recovered": list(change.recovered),
                "shed": self._shed_total,
            },
        )

    def service_degraded(self, change: Change | None = None) -> ServiceDegradedEvent:
        """The service-wide ``degraded`` event (now, or for ``change``), for supervisors."""
        behind = change.behind if change is not None else self.degradation.features
        recovered = change.recovered if change is not None else ()
        return ServiceDegradedEvent(
            features=list(behind), recovered=list(recovered), shed=dict(self._shed_total)
        )

    async def _watch_recovery(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            change = self.degradation.check(now=time.monotonic())
            if change is not None:
                await self._announce(change)

    # ---- events of one chunk ----------------------------------------------------------------------------
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
        else:
            severity = SeverityOut(score=reading.score, level=reading.level)
            await self.events.emit(live, ScoredEvent(call_id=call_id, seq=chunk.seq, severity=severity))
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

    async def _guide_turn(self, live: LiveCall, chunk: ChunkData, flagged: list[str]) -> None:
        """Guidance (stages, required steps, the abuse protocol) in stage one: rules only, in order, and the
        protocol may alert a supervisor, so it is never skipped."""
        if live.session.guidance is not None:
            await self._guide(live, live.session.guidance, chunk, flagged)

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
        batched = _ThroughBatcher(self.batcher, loop, getattr(self.analyzer, "query_space", None))
        run = partial(analyze_once, batched, self.advisor, red, ctx)
        return await loop.run_in_executor(self._advisor_pool, run)


class _ThroughBatcher:
    """A ``RedFlagAnalyzer`` for a worker thread that scores through the event loop's micro-batcher."""

    def __init__(
        self,
        batcher: MicroBatcher[Utterance, RedFlagResult],
        loop: asyncio.AbstractEventLoop,
        query_space: str | None = None,
    ) -> None:
        self._batcher = batcher
        self._loop = loop
        self.query_space = query_space  # the batched analyzer's: its results carry query vectors

    def warm_up(self) -> None:
        return None

    def predict(self, utterances: list[Utterance]) -> list[RedFlagResult]:
        futures = [asyncio.run_coroutine_threadsafe(self._batcher.predict(u), self._loop) for u in utterances]
        return [f.result() for f in futures]


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    """Mark a vector future's exception (Shed, a shutdown) as seen when nobody awaits it (a coalesced turn)."""
    if not fut.cancelled():
        fut.exception()
