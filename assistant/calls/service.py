"""The call service: the registry of this process's live calls and their lifecycle.

One ``CallService`` per process. A source attaches (open or resume the call), its chunks are ingested
(redact -> sequence -> ``ack`` -> ``transcript`` events -> recorded -> queued for the analysis pipeline), and
the call ends (``call_ended``, record closed) on the source's ``end`` or after its source stayed away too long.
The parts it wires together, one job each:

* ``pipeline.AnalysisPipeline``: red flags, severity, alerts and suggestions per chunk, and one-shot analysis;
* ``alerts.AlertDesk``: raising alerts, the index of open alerts, acknowledgements;
* ``recorder.CallRecorder``: the write-behind call record;
* ``live.CallEvents``: every call event's ``eid`` and topic; ``sweeper.sweep``: ending and forgetting calls.

The transport (``assistant.api``) parses frames and hands over validated ``ChunkIn`` s.

Example:
    >>> from assistant.testing import KeywordAnalyzer, RuleAdvisor
    >>> from assistant.settings import Settings
    >>> svc = CallService(Settings(), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())  # cheap
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from assistant.calls.alerts import AlertDesk
from assistant.calls.live import CallEvents, LiveCall, Outcome, replay_key
from assistant.calls.metrics import ServiceMetrics
from assistant.calls.pipeline import AnalysisPipeline
from assistant.calls.recorder import CallRecorder
from assistant.calls.session import CallSession, CallState, ChunkData, Gap, TranscriptLine
from assistant.calls.snapshot import CallSnapshot, SnapshotError
from assistant.calls.sweeper import sweep
from assistant.errors import AssistantError
from assistant.events.bus import BusMessage, EventBus, call_topic
from assistant.events.memory import InProcessBus
from assistant.events.messages import (
    AckEvent,
    AlertEvent,
    CallEndedEvent,
    ChunkIn,
    CloseCode,
    ErrorEvent,
    ErrorReason,
    FlagEvent,
    GapEvent,
    ReadyEvent,
    StoredEvent,
    TranscriptEvent,
    encode,
    is_safe_call_id,
)
from assistant.events.webhook import AlertWebhook
from assistant.guidance.live import CallGuidance
from assistant.guidance.policies import GuidancePolicies
from assistant.settings import Settings
from assistant.store import Store
from assistant.store.records import ResumeState
from assistant.types import NextStepAdvisor, RedFlagAnalyzer

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 1.0


class CallTaken(AssistantError):
    """Another source owns this call; it cannot be taken over (close 4403)."""


class CallEnded(AssistantError):
    """The call has ended; it accepts no more chunks (close 4410)."""


class Draining(AssistantError):
    """This worker is shutting down; the source should connect to another (close 1012)."""


class WorkerFull(AssistantError):
    """This worker holds ``max_live_calls`` calls; a new one goes to another worker (close 1013)."""


@dataclass(slots=True)
class Resumable:
    """What is known of a call this worker does not hold: its record, its snapshot and its event history."""

    stored: ResumeState | None
    snapshot: CallSnapshot | None
    history: list[BusMessage]


class CallService:
    """Owns the live calls of this process and wires the parts that analyse, alert and record them."""

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
        guidance: GuidancePolicies | None = None,
    ) -> None:
        self.settings = settings
        self.advisor = advisor
        # Call stages, QA and the abuse protocol (the policy files, validated at start-up); None: not tracked.
        self.guidance = guidance
        self.bus: EventBus = bus or InProcessBus(history=settings.event_history)
        self.metrics = metrics or ServiceMetrics()
        self.webhook = webhook
        self.recorder = CallRecorder(
            store,
            linger_ms=settings.store_linger_ms,
            retry_s=settings.store_retry_s,
            buffer_max=settings.store_buffer_max,
        )
        self.events = CallEvents(self.bus, self.metrics)
        self.calls: dict[str, LiveCall] = {}
        self.alerts = AlertDesk(
            bus=self.bus,
            events=self.events,
            recorder=self.recorder,
            metrics=self.metrics,
            find_call=self.calls.get,
            webhook=webhook,
        )
        self.pipeline = AnalysisPipeline(
            settings,
            analyzer=analyzer,
            advisor=advisor,
            events=self.events,
            alerts=self.alerts,
            recorder=self.recorder,
            metrics=self.metrics,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.draining = False  # set by drain(): no new source, no new chunk
        self.metrics.store_backlog.set_function(lambda: self.recorder.backlog)
        if self.recorder.writer is not None:
            writer = self.recorder.writer
            self.metrics.watch_store(lambda: writer.health)

    @property
    def store(self) -> Store | None:
        return self.recorder.store

    # ---- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.bus.start()
        await self.recorder.start()
        if self.webhook is not None:
            await self.webhook.start()
        await self.pipeline.start()
        self.alerts.subscribe()
        await self.alerts.load_open()
        self._tasks = [
            asyncio.create_task(self.alerts.run_index(), name="alert-index"),
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
        await self.pipeline.stop()
        if self.webhook is not None:
            await self.webhook.close()
        for live in self.calls.values():
            if live.session.state is not CallState.ENDED:  # an ended call's state was stored when it ended
                self.recorder.call_state(live.session)
        await self.recorder.close()
        await self.bus.close()

    # ---- source side -----------------------------------------------------------------------------------
    async def attach_source(
        self,
        call_id: str,
        *,
        conn: object,
        kick: Callable[[], Awaitable[None]] | None = None,
        agent: str | None = None,
        subject: str | None = None,
    ) -> tuple[LiveCall, ReadyEvent]:
        """Open or resume the call for a source connection; raise CallEnded for an ended call.

        ``agent`` (the agent's name or id, from the source) is recorded when the call is opened, for the call
        record, the incident report and who may read the call. ``subject`` (the source token's subject) owns
        the call: a connection of another subject raises CallTaken instead of taking it over; the same subject
        may reconnect and replace its old connection (close 4409).
        """
        if self.draining:
            raise Draining("this worker is shutting down; connect to another")
        live = self.calls.get(call_id)
        resumed = live is not None
        if live is None:
            found = await self._find_resumable(call_id)
            live = self.calls.get(call_id)  # another connection may have opened it meanwhile
            if live is None:
                self._admit(call_id)
                live = self._new_call(call_id)
                if found is not None:
                    self._restore(live, found)
                    resumed = True
                else:
                    self.recorder.call_opened(call_id, agent=agent)
                self.calls[call_id] = live
                live.worker = asyncio.create_task(self.pipeline.run(live), name=f"call-{call_id}")
        if live.session.state is CallState.ENDED:
            raise CallEnded(f"call {call_id} has ended; stream a new call under a new call id")
        if live.owner is not None and subject is not None and subject != live.owner:
            raise CallTaken(f"call {call_id} belongs to another source; stream under your own call id")
        if live.owner is None:
            live.owner = subject
        if live.agent is None and agent is not None and not resumed:
            live.agent = agent
        if live.source is not None and live.source is not conn and live.kick is not None:
            old_kick = live.kick
            live.source = None
            await old_kick()
        live.session.transition(CallState.LIVE)
        live.source, live.kick, live.detached_at = conn, kick, None
        self.metrics.connected_calls.inc()
        self._count_live()
        log.info("source attached", extra={"call_id": call_id, "last_seq": live.session.last_seq})
        ready = ReadyEvent(
            call_id=call_id,
            last_seq=live.session.last_seq,
            stored_seq=live.stored_seq,
            state=live.session.state.value,
            resumed=resumed,
        )
        return live, ready

    async def _find_resumable(self, call_id: str) -> Resumable | None:
        """What another worker (or this one before a restart) left of the call; raise CallEnded if it ended.

        The snapshot comes from the event bus when it keeps one (Redis: written with the call's last events),
        else from the store (written behind them); the history is the call's published events.
        """
        stored = await self.store.resume_state(call_id) if self.store is not None else None
        if stored is not None and stored.ended:
            raise CallEnded(f"call {call_id} has ended; stream a new call under a new call id")
        topic = call_topic(call_id)
        text = await self.bus.state(topic)
        if text is None and stored is not None:
            text = stored.live_state
        snapshot = None
        if text is not None:
            try:
                snapshot = CallSnapshot.from_json(text)
            except SnapshotError as e:
                log.warning(
                    "call snapshot unreadable; resuming from the record only", extra={"error": str(e)}
                )
        history = await self.bus.history(topic) if snapshot is not None else []
        if snapshot is None and stored is None:
            return None
        return Resumable(stored, snapshot, history)

    def _restore(self, live: LiveCall, found: Resumable) -> None:
        """Continue the call where it was: watermarks, severity, episodes, alerts, advisor, context lines."""
        s, stored, snap = live.session, found.stored, found.snapshot
        if stored is None:
            self.recorder.call_opened(live.call_id, agent=None, if_absent=True)
        else:
            live.stored_seq = stored.last_seq  # what the store holds is committed (the durability watermark)
        lines = {
            c.seq: TranscriptLine(c.seq, c.speaker, c.text, c.call_ts)
            for c in (stored.chunks if stored else [])
        }
        events = [json.loads(m.data) for m in found.history]
        last_eid = max([m.eid for m in found.history] + [stored.last_eid if stored else 0])
        if self.guidance is not None:
            saved = snap.guidance_state if snap is not None and snap.guidance_state else None
            s.guidance = CallGuidance(self.guidance, saved or (stored.guidance_state if stored else {}))
        if snap is None:  # a record written before snapshots existed: its seq watermark only, as before
            s.restore(
                last_seq=stored.last_seq if stored else -1, lines=list(lines.values()), last_eid=last_eid
            )
            return
        for e in events:
            key = replay_key(e)
            if key is not None and key[1] > snap.last_seq:
                live.published.add(key)  # published for a chunk analysed again here: not published twice
                continue
            if e.get("type") == "transcript" and e.get("is_final", True):
                seq = int(e["seq"])
                lines.setdefault(seq, TranscriptLine(seq, e["speaker"], e["text"], e.get("call_ts")))
                # Its row may not have been written before the other worker died: write it (once).
                self.recorder.chunk(
                    live.call_id,
                    ChunkData(seq, e["speaker"], e["text"], True, e.get("call_ts"), time.perf_counter()),
                )
            elif e.get("type") == "flag" and int(e["seq"]) <= snap.last_seq:
                flag = FlagEvent.model_validate(e)
                self.recorder.flag(
                    live.call_id,
                    flag.seq,
                    labels=flag.labels,
                    scores=flag.scores,
                    spans=flag.spans,
                    severity=flag.severity.score,
                    level=flag.severity.level,
                )
            elif e.get("type") == "alert" and not e.get("update"):
                self.recorder.alert_raised(AlertEvent.model_validate(e))
        kept = sorted((ln for ln in lines.values() if ln.seq <= snap.last_seq), key=lambda ln: ln.seq)
        s.restore(last_seq=snap.last_seq, lines=kept, last_eid=max(last_eid, snap.last_eid))
        snap.apply(s)
        live.alert_updates = dict(snap.alert_updates)
        restore = getattr(self.advisor, "restore_call", None)
        if callable(restore):
            s.advisor_state = restore(snap.advisor_state)
        log.info(
            "call resumed from its snapshot",
            extra={"call_id": live.call_id, "last_seq": snap.last_seq, "severity": snap.severity[1]},
        )

    async def _taken_over(self, live: LiveCall) -> bool:
        """Whether another worker published events of this call after this one last did."""
        try:
            newer = await self.bus.history(call_topic(live.call_id), after=live.session.last_eid)
        except Exception:
            log.warning("could not read the call's history; ending it here", extra={"call_id": live.call_id})
            return False
        return any(m.eid > live.session.last_eid for m in newer)

    async def drain(self) -> None:
        """Stop taking chunks, finish what every live call holds, publish and store its state, flush.

        The transport then closes the sources (SERVICE_RESTART); they resume on another worker from the state
        written here.
        """
        self.draining = True
        live_calls = [lv for lv in self.calls.values() if lv.session.state is not CallState.ENDED]
        for live in live_calls:
            if live.gap_timer is not None:
                live.gap_timer.cancel()
                live.gap_timer = None
            if live.worker is not None and not live.worker.done():
                live.queue.put_nowait(None)  # the worker finishes the chunks before it, then stops
        workers = [lv.worker for lv in live_calls if lv.worker is not None]
        if workers:
            await asyncio.wait(workers)
        for live in live_calls:
            self.recorder.call_state(live.session)
        await self.recorder.flush()
        log.info("drained", extra={"calls": len(live_calls)})

    def detach_source(self, live: LiveCall, *, conn: object) -> None:
        """The source connection closed (not ended): keep the call for a resume."""
        self.metrics.connected_calls.dec()
        if live.source is not conn:
            return  # replaced by a newer connection
        live.source, live.kick, live.reply = None, None, None
        if live.session.state is CallState.LIVE:
            live.session.transition(CallState.DETACHED)
            live.detached_at = time.monotonic()
            log.info("source detached", extra={"call_id": live.call_id, "last_seq": live.session.last_seq})

    def _admit(self, call_id: str) -> None:
        """Raise WorkerFull when a new call would exceed ``max_live_calls``, or while red flags run late
        (``refuse_calls_when_behind``). A call this worker holds, live or detached, may always reconnect.

        Why refuse while late: red flags are never skipped, so past capacity every call's results arrive later
        and later; one more call would make all of them later still (README, capacity per CPU class).
        """
        limit = self.settings.max_live_calls
        if limit and self.live_count() >= limit:
            self._refuse(call_id, "worker full", {"max_live_calls": limit})
            raise WorkerFull(
                f"this worker holds its maximum of {limit} live calls (ASSISTANT_MAX_LIVE_CALLS); "
                "connect to another worker"
            )
        if self.settings.refuse_calls_when_behind and "red_flags" in self.pipeline.degradation.features:
            self._refuse(call_id, "red flags behind", {"live_calls": self.live_count()})
            raise WorkerFull(
                "this worker's red flags are running late (over ASSISTANT_FLAGS_LATE_MS) with the calls it "
                "holds; connect to another worker, or retry once it has caught up"
            )

    def _refuse(self, call_id: str, why: str, extra: dict[str, object]) -> None:
        self.metrics.errors.labels(str(ErrorReason.WORKER_FULL)).inc()
        log.warning(f"new call refused: {why}", extra={"call_id": call_id, **extra})

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
        if self.guidance is not None:
            session.guidance = CallGuidance(self.guidance)
        return LiveCall(session=session, queue=asyncio.Queue(), started=time.monotonic())

    def _count_live(self) -> None:
        self.metrics.live_calls.set(
            sum(1 for c in self.calls.values() if c.session.state is not CallState.ENDED)
        )

    def reject(self, out: Outcome, reason: str, message: str, *, seq: int | None = None) -> Outcome:
        """Answer the source with an error event (counted); the call goes on."""
        self.metrics.errors.labels(str(reason)).inc()
        out.send(encode(ErrorEvent(reason=str(reason), message=message, seq=seq)))
        out.error = True
        return out

    async def ingest(
        self, live: LiveCall, chunk: ChunkIn, *, reply: Callable[[str], None], received: float | None = None
    ) -> Outcome:
        """One validated chunk from the source: redact, sequence, ack, publish and queue what is in order."""
        received = time.perf_counter() if received is None else received
        out = Outcome(reply=reply)
        live.reply = reply
        s = live.session
        limit = self.settings.max_chunk_chars
        if len(chunk.text) > limit:
            return self.reject(
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
            return self.reject(
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
            return self.reject(out, why, message, seq=chunk.seq)
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
            await self.events.emit(live, _transcript(s.call_id, res.partial))
        await self._release(live, res.gaps, res.ready)
        self._arm_gap_timer(live)
        return out

    async def _release(self, live: LiveCall, gaps: list[Gap], ready: list[ChunkData]) -> None:
        call_id = live.call_id
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
            await self.events.emit(
                live,
                GapEvent(
                    call_id=call_id,
                    first_missing=gap.first_missing,
                    last_missing=gap.last_missing,
                    reason=gap.reason,
                ),
            )
        for chunk in ready:
            await self.events.emit(live, _transcript(call_id, chunk))
            self.recorder.chunk(call_id, chunk)
            live.queue.put_nowait(chunk)
        if ready:
            top = ready[-1].seq
            self.recorder.notify(lambda: self._stored(live, top))

    @staticmethod
    def _stored(live: LiveCall, seq: int) -> None:
        """The chunks up to ``seq`` are committed: tell the source (it may forget them)."""
        if seq <= live.stored_seq:
            return
        live.stored_seq = seq
        if live.reply is not None:
            live.reply(encode(StoredEvent(call_id=live.call_id, seq=seq)))

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
        # The record says "ended" before anyone can hear ``call_ended``: publishing awaits (Redis), and a client on
        # another worker that fetched the record on the event found it "live" (a CI flake, session 23). Written
        # again after, for the event's eid.
        self.recorder.call_state(s, ended=True)
        await self.events.emit(live, CallEndedEvent(call_id=s.call_id, reason=reason, last_seq=s.last_seq))
        self.recorder.call_state(s, ended=True)
        s.release_analysis_state()  # stored above; the call stays in memory ENDED_KEEP_S for late sidebars
        live.worker = None  # done: its coroutine and context need not stay with the call
        self._count_live()
        log.info("call ended", extra={"call_id": s.call_id, "reason": reason, "last_seq": s.last_seq})

    # ---- reads -----------------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Wait until everything queued for the store is written."""
        await self.recorder.flush()

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

    def live_count(self) -> int:
        return sum(1 for c in self.calls.values() if c.session.state is not CallState.ENDED)

    async def events_since(self, call_id: str, *, after: int = 0) -> list[BusMessage]:
        return await self.bus.history(call_topic(call_id), after=after)

    # ---- housekeeping ----------------------------------------------------------------------------------
    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            todo = sweep(self.calls, now=time.monotonic(), idle_timeout_s=self.settings.call_idle_timeout_s)
            for live in todo.to_end:
                if await self._taken_over(live):
                    # Its source resumed it on another worker, which now holds it: forget it here, not end it.
                    log.info("call taken over by another worker", extra={"call_id": live.call_id})
                    live.queue.put_nowait(None)
                    del self.calls[live.call_id]
                    self._count_live()
                    continue
                await self.end_call(live, reason="source_timeout")
            for call_id in todo.to_forget:
                del self.calls[call_id]
                await self.bus.forget(call_topic(call_id))


def _transcript(call_id: str, chunk: ChunkData) -> TranscriptEvent:
    return TranscriptEvent(
        call_id=call_id,
        seq=chunk.seq,
        speaker=chunk.speaker,
        text=chunk.text,
        is_final=chunk.is_final,
        call_ts=chunk.ts,
    )
