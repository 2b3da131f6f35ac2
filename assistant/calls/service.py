"""The call service: live call sessions, the analysis pipeline, events, alerts and the write-behind record.

One ``CallService`` per process. For each final chunk, in seq order per call: redact -> publish the
``transcript`` event -> score the customer's utterance in the cross-call micro-batch -> update the call
severity -> ``flag`` / ``severity`` events -> alert episode -> next-step advice in a worker thread ->
``suggestion`` event -> ``processed``. Store writes are queued behind the events (never awaited on the hot
path). The transport (assistant.api) only moves text frames in and out.

Example:
    >>> from assistant.calls.fakes import KeywordAnalyzer, RuleAdvisor
    >>> from assistant.settings import Settings
    >>> svc = CallService(Settings(), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())  # cheap
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import ValidationError

from assistant.calls.metrics import ServiceMetrics
from assistant.calls.redaction import CallRedactor
from assistant.calls.session import CallSession, CallState, ChunkData, Gap, TranscriptLine
from assistant.calls.severity import intensity, level_of
from assistant.errors import AssistantError, InvalidInputError
from assistant.events.bus import ALERTS_TOPIC, BusMessage, EventBus, Subscription, call_topic
from assistant.events.frames import FrameError, parse_frame, preview
from assistant.events.memory import InProcessBus
from assistant.events.messages import (
    AckEvent,
    AlertAckEvent,
    AlertAckIn,
    AlertEvent,
    CallEndedEvent,
    CallEvent,
    ChunkIn,
    CloseCode,
    ErrorEvent,
    ErrorReason,
    FlagEvent,
    GapEvent,
    PongEvent,
    ProcessedEvent,
    ReadyEvent,
    SeverityEvent,
    SeverityOut,
    SpanOut,
    SuggestionEvent,
    TranscriptEvent,
    encode,
    is_safe_call_id,
)
from assistant.events.webhook import AlertWebhook
from assistant.inference import BatchStats, MicroBatcher, QueryEncoder
from assistant.labels import LABEL_TO_GROUP
from assistant.settings import Settings
from assistant.store import Insert, Store, StoreWriter, Update, Upsert, utcnow
from assistant.types import NextStepAdvisor, RedFlagAnalyzer, RedFlagResult, Suggestion, Utterance

log = logging.getLogger(__name__)

_ALERT_INDEX_SIZE = 10_000
_ENDED_KEEP_S = (
    600.0  # ended calls stay in memory this long (replay for late sidebars), then only in the store
)


class CallEnded(AssistantError):
    """The call has ended; it accepts no more chunks (close 4410)."""


class UnknownAlert(InvalidInputError):
    """No alert with this id."""


@dataclass(slots=True)
class Outcome:
    """What the transport sends back on the source's own socket, and whether to close it."""

    replies: list[str] = field(default_factory=list)
    close: CloseCode | None = None
    error: bool = False
    reply: Callable[[str], None] | None = None  # sends at once (acks go out before the chunk's events)

    def send(self, message: str) -> None:
        if self.reply is not None:
            self.reply(message)
        else:
            self.replies.append(message)


@dataclass(slots=True)
class LiveCall:
    session: CallSession
    queue: asyncio.Queue[ChunkData | None]
    started: float  # monotonic, for calls whose chunks carry no ts
    worker: asyncio.Task[None] | None = None
    source: object | None = None  # the connection currently streaming
    kick: Callable[[], Awaitable[None]] | None = None  # closes that connection (SOURCE_REPLACED)
    gap_timer: asyncio.TimerHandle | None = None
    detached_at: float | None = None
    ended_at: float | None = None
    alert_updates: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class AlertState:
    data: dict[str, Any]
    acked_by: str | None = None


class CallService:
    """Owns the live calls of this process and everything they publish."""

    def __init__(
        self,
        settings: Settings,
        *,
        analyzer: RedFlagAnalyzer,
        advisor: NextStepAdvisor | None,
        bus: EventBus | None = None,
        store: Store | None = None,
        webhook: AlertWebhook | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.analyzer = analyzer
        self.advisor = advisor
        self.bus: EventBus = bus or InProcessBus(history=settings.event_history)
        self.store = store
        self.writer = (
            StoreWriter(
                store,
                linger_ms=settings.store_linger_ms,
                retry_s=settings.store_retry_s,
                buffer_max=settings.store_buffer_max,
            )
            if store is not None
            else None
        )
        self.webhook = webhook
        self.metrics = metrics or ServiceMetrics()
        self.batcher: MicroBatcher[Utterance, RedFlagResult] = MicroBatcher(
            analyzer,
            max_batch=settings.batch_max_size,
            max_wait_ms=settings.batch_max_wait_ms,
            on_batch=partial(self._on_batch, "redflags"),
        )
        # The advisor's query encoding is a second encoder pass per chunk: batched across calls in its own
        # worker thread when the advisor can encode a batch (the real one can; the rule fake has no encoder).
        self.embed_batcher: MicroBatcher[str, Any] | None = None
        if settings.embed_batching and callable(getattr(advisor, "encode_queries", None)):
            self.embed_batcher = MicroBatcher(
                QueryEncoder(advisor),
                max_batch=settings.batch_max_size,
                max_wait_ms=settings.batch_max_wait_ms,
                name="query-encoder",
                on_batch=partial(self._on_batch, "queries"),
            )
        self.calls: dict[str, LiveCall] = {}
        self.alerts: OrderedDict[str, AlertState] = OrderedDict()
        self._advisor_pool: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._alert_sub: Subscription | None = None
        self.metrics.store_backlog.set_function(lambda: self.writer.backlog if self.writer else 0)
        if self.writer is not None:
            writer = self.writer
            self.metrics.watch_store(lambda: writer.health)

    # ---- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.bus.start()
        if self.store is not None and self.store._engine is None:
            await self.store.start()
        if self.writer is not None:
            await self.writer.start()
        if self.webhook is not None:
            await self.webhook.start()
        await self.batcher.start()
        if self.embed_batcher is not None:
            await self.embed_batcher.start()
        self._advisor_pool = ThreadPoolExecutor(
            max_workers=self.settings.advisor_threads, thread_name_prefix="advisor"
        )
        self._alert_sub = self.bus.subscribe(ALERTS_TOPIC, maxsize=100_000)
        self._tasks = [
            asyncio.create_task(self._index_alerts(), name="alert-index"),
            asyncio.create_task(self._sweep(), name="call-sweeper"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for live in list(self.calls.values()):
            if live.worker is not None and not live.worker.done():
                live.queue.put_nowait(None)
        workers = [lv.worker for lv in self.calls.values() if lv.worker is not None]
        if workers:
            await asyncio.wait(workers, timeout=5)
        await self.batcher.stop()
        if self.embed_batcher is not None:
            await self.embed_batcher.stop()
        if self._advisor_pool is not None:
            self._advisor_pool.shutdown(wait=False, cancel_futures=True)
        if self.webhook is not None:
            await self.webhook.close()
        if self.writer is not None:
            for live in self.calls.values():
                self._store_call_state(live)
            await self.writer.close()
        if self.store is not None:
            await self.store.close()
        await self.bus.close()

    def _on_batch(self, model: str, stats: BatchStats) -> None:
        m = self.metrics
        m.batch_size.labels(model).observe(stats.size)
        m.batch_seconds.labels(model).observe(stats.seconds)
        m.batch_wait.labels(model).observe(stats.waited_s)

    # ---- source side -----------------------------------------------------------------------------------
    async def attach_source(
        self,
        call_id: str,
        *,
        conn: object,
        kick: Callable[[], Awaitable[None]] | None = None,
        agent: str | None = None,
    ) -> tuple[LiveCall, ReadyEvent]:
        """Open or resume the call for a source connection; raise CallEnded for an ended call.

        ``agent`` (the agent's name or id, from the source) is recorded when the call is opened, for the call
        record and the incident report.
        """
        live = self.calls.get(call_id)
        resumed = live is not None
        if live is None:
            stored = await self.store.resume_state(call_id) if self.store is not None else None
            if stored is not None and stored[0] == "ended":
                raise CallEnded(f"call {call_id} has ended; stream a new call under a new call id")
            live = self.calls.get(call_id)  # another connection may have opened it meanwhile
            if live is None:
                live = self._new_call(call_id)
                if stored is not None:
                    _, last_seq, last_eid, chunks = stored
                    lines = [TranscriptLine(c.seq, c.speaker, c.text, c.call_ts) for c in chunks]
                    live.session.restore(last_seq=last_seq, lines=lines, last_eid=last_eid)
                    resumed = True
                else:
                    self._store_new_call(call_id, agent=agent)
                self.calls[call_id] = live
                live.worker = asyncio.create_task(self._work(live), name=f"call-{call_id}")
        if live.session.state is CallState.ENDED:
            raise CallEnded(f"call {call_id} has ended; stream a new call under a new call id")
        if live.source is not None and live.source is not conn and live.kick is not None:
            old_kick = live.kick
            live.source = None
            await old_kick()
        live.session.transition(CallState.LIVE)
        live.source, live.kick, live.detached_at = conn, kick, None
        self.metrics.connected_calls.inc()
        self.metrics.live_calls.set(
            sum(1 for c in self.calls.values() if c.session.state is not CallState.ENDED)
        )
        log.info("source attached", extra={"call_id": call_id, "last_seq": live.session.last_seq})
        ready = ReadyEvent(
            call_id=call_id, last_seq=live.session.last_seq, state=live.session.state.value, resumed=resumed
        )
        return live, ready

    def detach_source(self, live: LiveCall, *, conn: object) -> None:
        """The source connection closed (not ended): keep the call for a resume."""
        self.metrics.connected_calls.dec()
        if live.source is not conn:
            return  # replaced by a newer connection
        live.source, live.kick = None, None
        if live.session.state is CallState.LIVE:
            live.session.transition(CallState.DETACHED)
            live.detached_at = time.monotonic()
            log.info(
                "source detached", extra={"call_id": live.session.call_id, "last_seq": live.session.last_seq}
            )

    def _new_call(self, call_id: str) -> LiveCall:
        s = self.settings
        session = CallSession(
            call_id,
            reorder_window=s.reorder_window,
            reorder_timeout_s=s.reorder_timeout_ms / 1000.0,
            max_seq_jump=s.max_seq_jump,
            context_turns=s.context_turns,
            half_life_s=s.severity_half_life_s,
            turn_decay=s.severity_turn_decay,
            alert_level=s.alert_level,
        )
        if self.advisor is not None:
            session.advisor_state = self.advisor.start_call()
        return LiveCall(session=session, queue=asyncio.Queue(), started=time.monotonic())

    async def receive(
        self,
        live: LiveCall,
        raw: str | bytes,
        *,
        received: float | None = None,
        reply: Callable[[str], None] | None = None,
    ) -> Outcome:
        """Handle one frame from the source; never raises for bad input (answers with an error event).

        ``reply`` sends a message on the source's own socket; without it replies collect in the outcome.
        """
        received = time.perf_counter() if received is None else received
        out = Outcome(reply=reply)
        try:
            obj = parse_frame(
                raw, max_bytes=self.settings.max_frame_bytes, max_depth=self.settings.max_json_depth
            )
        except FrameError as e:
            return self._error(out, e.reason, str(e))
        if not isinstance(obj, dict):
            return self._error(
                out, ErrorReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(obj).__name__}"
            )
        kind = obj.get("type", "chunk")
        if kind == "ping":
            out.send(encode(PongEvent()))
            return out
        if kind == "end":
            await self.end_call(live, reason="source_end")
            out.close = CloseCode.NORMAL
            return out
        if kind != "chunk":
            return self._error(
                out,
                ErrorReason.UNKNOWN_TYPE,
                f"unknown message type {preview(str(kind))}; expected chunk, end or ping",
            )
        try:
            chunk = ChunkIn.model_validate(obj)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}" for err in e.errors()
            )
            seq = obj.get("seq") if isinstance(obj.get("seq"), int) else None
            return self._error(out, ErrorReason.INVALID_CHUNK, f"invalid chunk: {problems}", seq=seq)
        return await self._ingest(live, chunk, received, out)

    async def _ingest(self, live: LiveCall, chunk: ChunkIn, received: float, out: Outcome) -> Outcome:
        s = live.session
        limit = self.settings.max_chunk_chars
        if len(chunk.text) > limit:
            return self._error(
                out,
                ErrorReason.TEXT_TOO_LONG,
                f"text has {len(chunk.text)} characters, the limit is {limit} (ASSISTANT_MAX_CHUNK_CHARS); "
                "split it into several chunks",
                seq=chunk.seq,
            )
        if chunk.call_id is not None and chunk.call_id != s.call_id:
            reason = (
                ErrorReason.CALL_ID_MISMATCH if is_safe_call_id(chunk.call_id) else ErrorReason.BAD_CALL_ID
            )
            return self._error(
                out,
                reason,
                f"chunk call_id does not match this stream's call {s.call_id}; omit it or fix it",
                seq=chunk.seq,
            )
        data = ChunkData(
            seq=chunk.seq,
            speaker=chunk.speaker,
            text=s.redactor.redact(chunk.text).text,
            is_final=chunk.is_final,
            ts=chunk.ts,
            received=received,
        )
        res = s.ingest(data, now=time.monotonic())
        if res.error is not None:
            why, message = res.error
            if why == "call_ended":
                out.close = CloseCode.CALL_ENDED
            return self._error(out, why, message, seq=chunk.seq)
        kind = (
            "duplicate"
            if res.duplicate
            else ("buffered" if res.buffered else ("final" if chunk.is_final else "partial"))
        )
        self.metrics.count(self.metrics.chunks, kind)
        out.send(
            encode(
                AckEvent(
                    seq=chunk.seq, is_final=chunk.is_final, duplicate=res.duplicate, buffered=res.buffered
                )
            )
        )
        if res.partial is not None:
            await self._emit(live, self._transcript(s.call_id, res.partial))
        await self._release(live, res.gaps, res.ready)
        self._arm_gap_timer(live)
        return out

    def _error(self, out: Outcome, reason: str, message: str, *, seq: int | None = None) -> Outcome:
        self.metrics.errors.labels(str(reason)).inc()
        out.send(encode(ErrorEvent(reason=str(reason), message=message, seq=seq)))
        out.error = True
        return out

    async def _release(self, live: LiveCall, gaps: list[Gap], ready: list[ChunkData]) -> None:
        call_id = live.session.call_id
        for gap in gaps:
            self.metrics.gaps.labels(gap.reason).inc()
            log.warning(
                "sequence gap skipped",
                extra={
                    "call_id": call_id,
                    "first": gap.first_missing,
                    "last": gap.last_missing,
                    "reason": gap.reason,
                },
            )
            await self._emit(
                live,
                GapEvent(
                    call_id=call_id,
                    first_missing=gap.first_missing,
                    last_missing=gap.last_missing,
                    reason=gap.reason,
                ),
            )
        for chunk in ready:
            await self._emit(live, self._transcript(call_id, chunk))
            if self.writer is not None:
                self.writer.put(
                    Insert(
                        "chunks",
                        {
                            "call_id": call_id,
                            "seq": chunk.seq,
                            "speaker": chunk.speaker,
                            "text": chunk.text,
                            "call_ts": chunk.ts,
                            "received_at": utcnow(),
                        },
                        ignore_conflict=("call_id", "seq"),
                    )
                )
            live.queue.put_nowait(chunk)

    @staticmethod
    def _transcript(call_id: str, chunk: ChunkData) -> TranscriptEvent:
        return TranscriptEvent(
            call_id=call_id,
            seq=chunk.seq,
            speaker=chunk.speaker,
            text=chunk.text,
            is_final=chunk.is_final,
            call_ts=chunk.ts,
        )

    def _arm_gap_timer(self, live: LiveCall) -> None:
        deadline = live.session.gap_deadline
        if live.gap_timer is not None:
            live.gap_timer.cancel()
            live.gap_timer = None
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.monotonic())
        live.gap_timer = loop.call_later(delay, lambda: self._spawn(self._expire_gap(live)))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _expire_gap(self, live: LiveCall) -> None:
        live.gap_timer = None
        res = live.session.expire_gap(now=time.monotonic())
        await self._release(live, res.gaps, res.ready)
        self._arm_gap_timer(live)

    async def end_call(self, live: LiveCall, *, reason: str) -> None:
        """Process what is held, then end the call: ``call_ended`` event, record closed."""
        s = live.session
        if s.state is CallState.ENDED:
            return
        if s.pending_count:
            held = s.release_all()
            await self._release(live, held.gaps, held.ready)
        if live.gap_timer is not None:
            live.gap_timer.cancel()
            live.gap_timer = None
        live.queue.put_nowait(None)
        if live.worker is not None:
            await asyncio.shield(live.worker)
        s.end_reason = reason
        s.transition(CallState.ENDED)
        live.ended_at = time.monotonic()
        await self._emit(live, CallEndedEvent(call_id=s.call_id, reason=reason, last_seq=s.last_seq))
        self._store_call_state(live, ended=True)
        self.metrics.live_calls.set(
            sum(1 for c in self.calls.values() if c.session.state is not CallState.ENDED)
        )
        log.info("call ended", extra={"call_id": s.call_id, "reason": reason, "last_seq": s.last_seq})

    # ---- the analysis pipeline ------------------------------------------------------------------------
    async def _work(self, live: LiveCall) -> None:
        while True:
            chunk = await live.queue.get()
            if chunk is None:
                return
            try:
                await self._analyze(live, chunk)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("analysis failed", extra={"call_id": live.session.call_id, "seq": chunk.seq})
                self.metrics.errors.labels(ErrorReason.ANALYSIS_FAILED).inc()
                err = ErrorEvent(
                    reason=ErrorReason.ANALYSIS_FAILED,
                    message=f"analysis failed: {type(e).__name__}",
                    seq=chunk.seq,
                )
                await self.bus.publish(call_topic(live.session.call_id), encode(err))
            finally:
                await self._emit(
                    live,
                    ProcessedEvent(
                        call_id=live.session.call_id,
                        seq=chunk.seq,
                        latency_ms=round((time.perf_counter() - chunk.received) * 1000, 3),
                    ),
                )
                self.metrics.latency.observe(time.perf_counter() - chunk.received)
                self._store_call_state(live)

    async def _analyze(self, live: LiveCall, chunk: ChunkData) -> None:
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
                {g for g, score in result.groups.items() if any(_group_of(lb) == g for lb in flagged)}
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
            await self._emit(live, event)
            self.metrics.first_event_latency.observe(time.perf_counter() - chunk.received)
            if self.writer is not None:
                self.writer.put(
                    Insert(
                        "flags",
                        {
                            "call_id": call_id,
                            "seq": chunk.seq,
                            "labels": flagged,
                            "scores": event.scores,
                            "spans": [sp.model_dump() for sp in spans],
                            "severity": reading.score,
                            "level": reading.level,
                            "created_at": utcnow(),
                        },
                    )
                )
        if reading.level != before.level or abs(reading.score - before.score) >= 0.05:
            await self._emit(
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
            await self._alert(
                live,
                chunk,
                decision.kind,
                decision.episode,
                decision.reason,
                list(decision.labels),
                reading.score,
                reading.level,
            )

    async def _alert(
        self,
        live: LiveCall,
        chunk: ChunkData,
        kind: str,
        episode: int,
        reason: str,
        labels: list[str],
        score: float,
        level: str,
    ) -> None:
        s = live.session
        if kind == "new":
            alert_id = uuid.uuid4().hex[:20]
            s.alert_ids[episode] = alert_id
        else:
            alert_id = s.alert_ids[episode]
        event = AlertEvent(
            call_id=s.call_id,
            id=alert_id,
            episode=episode,
            severity=score,
            level=level,
            labels=labels,
            reason=reason,
            text=chunk.text,
            seq=chunk.seq,
            update=kind == "update",
        )
        await self._emit(live, event)
        await self.bus.publish(ALERTS_TOPIC, encode(event), eid=event.eid)
        self.metrics.alerts.labels(reason, kind).inc()
        log.info(
            "alert",
            extra={
                "call_id": s.call_id,
                "seq": chunk.seq,
                "alert_id": alert_id,
                "kind": kind,
                "level": level,
            },
        )
        now = utcnow()
        if self.writer is not None:
            if kind == "new":
                self.writer.put(
                    Insert(
                        "alerts",
                        {
                            "id": alert_id,
                            "call_id": s.call_id,
                            "episode": episode,
                            "seq": chunk.seq,
                            "reason": reason,
                            "level": level,
                            "severity": score,
                            "labels": labels,
                            "text": chunk.text,
                            "updates": 0,
                            "created_at": now,
                            "updated_at": now,
                        },
                    )
                )
            else:
                n = live.alert_updates[alert_id] = live.alert_updates.get(alert_id, 0) + 1
                self.writer.put(
                    Update(
                        "alerts",
                        {"id": alert_id},
                        {
                            "level": level,
                            "severity": score,
                            "labels": labels,
                            "reason": reason,
                            "updates": n,
                            "updated_at": now,
                        },
                    )
                )
        if self.webhook is not None:
            self.webhook.send(event.model_dump(mode="json"))

    async def _suggest(self, live: LiveCall, chunk: ChunkData, suggestions: list[Suggestion]) -> None:
        s = live.session
        key = tuple((x.procedure_id, x.step_index) for x in suggestions)
        if not suggestions or key == s.shown_suggestions:
            return
        s.shown_suggestions = key
        state = _state_dict(s.advisor_state)
        event = SuggestionEvent(
            call_id=s.call_id, seq=chunk.seq, suggestions=[x.to_dict() for x in suggestions], advisor=state
        )
        await self._emit(live, event)
        self.metrics.first_event_latency.observe(time.perf_counter() - chunk.received)
        if self.writer is not None:
            now = utcnow()
            for rank, x in enumerate(suggestions):
                row = {k: v for k, v in x.to_dict().items() if k != "stage"}
                self.writer.put(
                    Insert(
                        "suggestions",
                        {
                            "call_id": s.call_id,
                            "seq": chunk.seq,
                            "eid": event.eid,
                            "rank": rank,
                            "created_at": now,
                            **row,
                        },
                    )
                )

    async def _emit(self, live: LiveCall, event: CallEvent) -> None:
        event.eid = live.session.next_eid()
        self.metrics.count(self.metrics.events, event.type)
        await self.bus.publish(call_topic(live.session.call_id), encode(event), eid=event.eid)

    # ---- store -----------------------------------------------------------------------------------------
    def _store_new_call(self, call_id: str, *, agent: str | None = None) -> None:
        if self.writer is None:
            return
        now = utcnow()
        self.writer.put(
            Upsert(
                "calls",
                {
                    "id": call_id,
                    "agent": agent,
                    "status": "live",
                    "started_at": now,
                    "updated_at": now,
                    "end_reason": "",
                    "last_seq": -1,
                    "last_eid": 0,
                    "severity": 0.0,
                    "severity_level": "none",
                    "peak_severity": 0.0,
                    "peak_level": "none",
                    "flag_counts": {},
                    "advisor_state": {},
                },
            )
        )

    def _store_call_state(self, live: LiveCall, *, ended: bool = False) -> None:
        if self.writer is None:
            return
        s = live.session
        now = utcnow()
        values: dict[str, Any] = {
            "status": "ended" if s.state is CallState.ENDED else "live",
            "updated_at": now,
            "last_seq": s.last_seq,
            "last_eid": s.last_eid,
            "severity": s.severity.current.score,
            "severity_level": s.severity.current.level,
            "peak_severity": s.severity.peak.score,
            "peak_level": s.severity.peak.level,
            "flag_counts": dict(s.flag_counts),
            "advisor_state": _state_dict(s.advisor_state),
        }
        if ended:
            values.update(ended_at=now, end_reason=s.end_reason)
        self.writer.put(Update("calls", {"id": s.call_id}, values))

    # ---- alerts ----------------------------------------------------------------------------------------
    async def _index_alerts(self) -> None:
        sub = self._alert_sub
        if sub is None:
            return
        while True:
            msg = await sub.get()
            if msg is None:
                return
            self._index(msg)

    def _index(self, msg: BusMessage) -> None:
        data = json.loads(msg.data)
        alert_id = data.get("id")
        if not alert_id:
            return
        if data.get("type") == "alert":
            prev = self.alerts.get(alert_id)
            self.alerts[alert_id] = AlertState(data, prev.acked_by if prev else None)
            self.alerts.move_to_end(alert_id)
            while len(self.alerts) > _ALERT_INDEX_SIZE:
                self.alerts.popitem(last=False)
        elif data.get("type") == "alert_ack" and alert_id in self.alerts:
            self.alerts[alert_id].acked_by = data.get("acked_by")

    def open_alerts(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The latest unacknowledged alerts (newest last), for a supervisor who just connected."""
        items = [a.data for a in self.alerts.values() if a.acked_by is None]
        return items[-limit:]

    async def ack_alert(self, alert_id: str, *, subject: str, note: str | None = None) -> dict[str, Any]:
        """Record a supervisor's acknowledgement (idempotent) and tell every supervisor and the sidebar."""
        state = self.alerts.get(alert_id)
        call_id: str | None = state.data.get("call_id") if state else None
        if state is None and self.store is not None:
            if self.writer is not None:
                await self.writer.flush()
            rec = await self.store.get_alert(alert_id)
            if rec is not None:
                call_id = rec.call_id
                if rec.acked_by is not None:
                    return {
                        "id": alert_id,
                        "call_id": call_id,
                        "acked_by": rec.acked_by,
                        "already_acked": True,
                    }
        if call_id is None:
            raise UnknownAlert(f"no alert with id {alert_id!r}; use an id from an alert event")
        if state is not None and state.acked_by is not None:
            return {"id": alert_id, "call_id": call_id, "acked_by": state.acked_by, "already_acked": True}
        if state is not None:
            state.acked_by = subject
        if self.writer is not None:
            now = utcnow()
            self.writer.put(
                Insert(
                    "alert_acks",
                    {
                        "alert_id": alert_id,
                        "call_id": call_id,
                        "subject": subject,
                        "note": note,
                        "created_at": now,
                    },
                ),
                Update(
                    "alerts",
                    {"id": alert_id},
                    {"acked_at": now, "acked_by": subject},
                    only_if_null="acked_at",
                ),
            )
        event = AlertAckEvent(call_id=call_id, id=alert_id, acked_by=subject, note=note)
        live = self.calls.get(call_id)
        if live is not None:
            await self._emit(live, event)
        await self.bus.publish(ALERTS_TOPIC, encode(event), eid=event.eid)
        self.metrics.alert_acks.inc()
        log.info("alert acknowledged", extra={"call_id": call_id, "alert_id": alert_id, "by": subject})
        return {"id": alert_id, "call_id": call_id, "acked_by": subject, "already_acked": False}

    async def ack_from_socket(self, raw: str, *, subject: str) -> str | None:
        """A supervisor's message on WS /v1/alerts; returns an error/pong reply, or None."""
        try:
            obj = parse_frame(
                raw, max_bytes=self.settings.max_frame_bytes, max_depth=self.settings.max_json_depth
            )
        except FrameError as e:
            return encode(ErrorEvent(reason=e.reason, message=str(e)))
        if isinstance(obj, dict) and obj.get("type") == "ping":
            return encode(PongEvent())
        try:
            msg = AlertAckIn.model_validate(obj)
        except ValidationError:
            return encode(
                ErrorEvent(
                    reason=ErrorReason.UNKNOWN_TYPE,
                    message='expected {"type": "ack", "id": "<alert id>"} or ping',
                )
            )
        try:
            await self.ack_alert(msg.id, subject=subject, note=msg.note)
        except UnknownAlert as e:
            return encode(ErrorEvent(reason=ErrorReason.UNKNOWN_ALERT, message=str(e)))
        return None

    # ---- reads -----------------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Wait until everything queued for the store is written."""
        if self.writer is not None:
            await self.writer.flush()

    async def analyze(self, text: str, context: list[str]) -> dict[str, Any]:
        """Flags and suggestions for one utterance, outside any call (POST /v1/analyze)."""
        redactor = CallRedactor()  # a name given in the context is redacted in the text too
        ctx = (
            tuple(redactor.redact(c).text for c in context[-max(1, self.settings.context_turns) :])
            if context
            else ()
        )
        red = redactor.redact(text).text
        result = await self.batcher.predict(Utterance(red, ctx))
        suggestions: list[Suggestion] = []
        if self.advisor is not None and self._advisor_pool is not None:
            state = self.advisor.start_call()
            advise = partial(
                self.advisor.advise, state, speaker="customer", text=red, context=ctx, flags=result
            )
            suggestions = await asyncio.get_running_loop().run_in_executor(self._advisor_pool, advise)
        probs = {label: result.labels[label].probability for label in result.flagged}
        score = round(1 - math.exp(-intensity(probs)), 4)
        return {
            "text": red,
            "flags": result.to_dict(),
            "severity": {"score": score, "level": level_of(score)},
            "suggestions": [x.to_dict() for x in suggestions],
        }

    def live_view(self, call_id: str) -> dict[str, Any] | None:
        live = self.calls.get(call_id)
        if live is None:
            return None
        s = live.session
        return {
            "state": s.state.value,
            "live": s.state in (CallState.LIVE, CallState.DETACHED),
            "severity": s.severity.current.score,
            "severity_level": s.severity.current.level,
            "last_seq": s.last_seq,
        }

    async def events_since(self, call_id: str, *, after: int = 0) -> list[BusMessage]:
        return await self.bus.history(call_topic(call_id), after=after)

    # ---- housekeeping ----------------------------------------------------------------------------------
    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for call_id, live in list(self.calls.items()):
                s = live.session
                if s.state is CallState.DETACHED and live.detached_at is not None:
                    if now - live.detached_at >= self.settings.call_idle_timeout_s:
                        await self.end_call(live, reason="source_timeout")
                elif (
                    s.state is CallState.ENDED
                    and live.ended_at is not None
                    and now - live.ended_at >= _ENDED_KEEP_S
                ):
                    del self.calls[call_id]
                    await self.bus.forget(call_topic(call_id))


def _group_of(label: str) -> str:
    return LABEL_TO_GROUP.get(label, "")


def _state_dict(state: Any) -> dict[str, Any]:
    if state is None:
        return {}
    try:
        return dict(state.to_dict())
    except Exception:  # advisor state must never break the call; it is only shown and stored
        log.warning("advisor state is not serialisable", exc_info=True)
        return {}
