"""The WebSockets: the transcript source, the agent's sidebar, and the supervisors' alert feed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from assistant.auth import Principal, Role
from assistant.calls.alerts import UnknownAlert
from assistant.calls.live import LiveCall, Outcome
from assistant.calls.redaction import redact
from assistant.calls.service import CallEnded, CallService, CallTaken, Draining, WorkerFull
from assistant.events.bus import (
    ALERTS_TOPIC,
    BusMessage,
    Subscription,
    after_cursor,
    call_topic,
    parse_cursor,
)
from assistant.events.frames import FrameError, parse_frame, preview
from assistant.events.messages import (
    AlertAckIn,
    ChunkIn,
    CloseCode,
    ErrorEvent,
    ErrorReason,
    PongEvent,
    encode,
    is_safe_call_id,
)

from .access import alert_call_id, audit, call_agent, may_read
from .security import close_on_expiry, refuse_accepted, socket_principal

log = logging.getLogger(__name__)
router = APIRouter()

MAX_CONSECUTIVE_ERRORS = 50
# What a transcript source may ask to receive besides its replies (docs/protocol.md, "What the server sends").
SOURCE_EVENTS = ("all", "replies")


def _service(ws: WebSocket) -> CallService:
    return ws.app.state.service


# ---- frames ----------------------------------------------------------------------------------------------
async def source_frame(
    svc: CallService,
    live: LiveCall,
    raw: str | bytes,
    *,
    reply: Callable[[str], None],
    received: float | None = None,
) -> Outcome:
    """Decode one frame from the source and hand it to the service; bad input is answered, never raised."""
    received = time.perf_counter() if received is None else received
    out = Outcome(reply=reply)
    limits = svc.settings
    try:
        obj = parse_frame(raw, max_bytes=limits.max_frame_bytes, max_depth=limits.max_json_depth)
    except FrameError as e:
        return svc.reject(out, e.reason, str(e))
    if not isinstance(obj, dict):
        return svc.reject(out, ErrorReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type", "chunk")
    if kind == "ping":
        out.send(encode(PongEvent()))
        return out
    if kind == "end":
        await svc.end_call(live, reason="source_end")
        out.close = CloseCode.NORMAL
        return out
    if kind != "chunk":
        return svc.reject(
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
        return svc.reject(out, ErrorReason.INVALID_CHUNK, f"invalid chunk: {problems}", seq=seq)
    return await svc.ingest(live, chunk, reply=reply, received=received)


async def supervisor_frame(
    svc: CallService,
    raw: str,
    *,
    subject: str,
    may_ack: Callable[[str], Awaitable[bool]] | None = None,
) -> str | None:
    """A supervisor's message on WS /v1/alerts (``ack`` or ``ping``); returns an error/pong reply, or None."""
    limits = svc.settings
    try:
        obj = parse_frame(raw, max_bytes=limits.max_frame_bytes, max_depth=limits.max_json_depth)
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
    call_id = await alert_call_id(svc, msg.id)
    if call_id is not None and may_ack is not None and not await may_ack(call_id):
        return encode(ErrorEvent(reason="forbidden", message="this alert's call is not in your teams"))
    try:
        await svc.alerts.ack(msg.id, subject=subject, note=redact(msg.note).text if msg.note else None)
    except UnknownAlert as e:
        return encode(ErrorEvent(reason=ErrorReason.UNKNOWN_ALERT, message=str(e)))
    return None


# ---- socket helpers --------------------------------------------------------------------------------------


async def _close(ws: WebSocket, code: CloseCode, reason: str = "") -> None:
    if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.close(code=int(code), reason=reason[:120])


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a socket's sender task and wait for it; whatever it raised no longer matters."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _pump(ws: WebSocket, sub: Subscription, *, skip_upto: int = 0) -> None:
    """Send the subscription's messages in order; close with SLOW_CONSUMER when it overflowed."""
    while True:
        msg = await sub.get()
        if msg is None:
            if sub.overflowed:
                await _close(ws, CloseCode.SLOW_CONSUMER, "client too slow; reconnect with ?after=<last eid>")
            return
        if msg.eid and msg.eid <= skip_upto:
            continue  # already sent from history
        await ws.send_text(msg.data)


async def _bad_call_id(ws: WebSocket, call_id: str) -> bool:
    if is_safe_call_id(call_id):
        return False
    await ws.accept()
    await ws.send_text(
        encode(
            ErrorEvent(
                reason=ErrorReason.BAD_CALL_ID,
                message=f"call id {call_id[:80]!r} is not a safe identifier: use 1-64 of A-Z a-z 0-9 . _ - "
                "starting with a letter or digit",
            )
        )
    )
    await ws.close(code=int(CloseCode.BAD_CALL_ID), reason="bad call id")
    return True


def _agent_name(raw: str | None) -> str | None:
    """A printable agent name or id of at most 128 characters; anything else is dropped, not stored."""
    if raw is None:
        return None
    name = raw.strip()
    return name if 0 < len(name) <= 128 and name.isprintable() else None


# ---- draining (SIGTERM: assistant.api.server) ----------------------------------------------------------
def _sources(app: FastAPI) -> set[WebSocket]:
    """This worker's transcript-source sockets (closed with SERVICE_RESTART when it drains)."""
    sources: set[WebSocket] | None = getattr(app.state, "sources", None)
    if sources is None:
        sources = app.state.sources = set()
    return sources


async def drain(app: FastAPI) -> None:
    """Hand this worker's live calls over: no new chunk, what is held finished and stored, sources told to
    reconnect (1012), and through the load balancer they resume on another worker."""
    svc: CallService = app.state.service
    await svc.drain()
    sockets = list(_sources(app))
    log.info("drained; closing the transcript sources", extra={"sources": len(sockets)})
    await asyncio.gather(
        *(
            _close(ws, CloseCode.SERVICE_RESTART, "worker shutting down: reconnect and resume")
            for ws in sockets
        )
    )


async def _refuse_while_draining(ws: WebSocket) -> bool:
    """A draining worker takes no new source: HTTP 503 (a proxy tries another worker), or a 1012 close."""
    if not _service(ws).draining:
        return False
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(
            JSONResponse({"detail": "this worker is shutting down; connect to another"}, status_code=503)
        )
    else:
        await ws.accept()
        await _close(ws, CloseCode.SERVICE_RESTART, "worker shutting down: reconnect and resume")
    return True


# ---- sockets ---------------------------------------------------------------------------------------------
@router.websocket("/v1/calls/{call_id}/stream")
async def stream(ws: WebSocket, call_id: str) -> None:
    """Transcript source: send chunks, receive ``ready``, ``ack`` and every call event (docs/protocol.md)."""
    if await _bad_call_id(ws, call_id):
        return
    principal = await socket_principal(ws, Role.SOURCE)
    if principal is None or await _refuse_while_draining(ws):
        return
    svc = _service(ws)
    await ws.accept()
    events = ws.query_params.get("events", "all")
    if events not in SOURCE_EVENTS:
        await refuse_accepted(
            ws,
            CloseCode.BAD_PARAMETER,
            ErrorReason.BAD_PARAMETER,
            f"?events={preview(events)} is not one of {', '.join(SOURCE_EVENTS)}",
        )
        return
    conn = object()
    # Who handles the call: `?agent=` from the telephony side (recorded when the call is opened).
    agent = _agent_name(ws.query_params.get("agent"))

    async def kick() -> None:
        await _close(ws, CloseCode.SOURCE_REPLACED, "another source connected for this call")

    # `?events=replies`: a telephony connector that only streams transcripts gets its own replies (ready,
    # ack, stored, error, pong) and not the call's events, which the sidebar reads on its own socket: every
    # event then costs the worker one send instead of two.
    sub = (
        svc.bus.subscribe(call_topic(call_id), maxsize=10_000)
        if events == "all"
        else Subscription(call_topic(call_id), maxsize=10_000)
    )
    try:
        live, ready = await svc.attach_source(
            call_id, conn=conn, kick=kick, agent=agent, subject=principal.subject
        )
    except CallEnded as e:
        svc.bus.unsubscribe(sub)
        await ws.send_text(encode(ErrorEvent(reason=ErrorReason.CALL_ENDED, message=str(e))))
        await _close(ws, CloseCode.CALL_ENDED, "call ended")
        return
    except Draining:
        svc.bus.unsubscribe(sub)
        await _close(ws, CloseCode.SERVICE_RESTART, "worker shutting down: reconnect and resume")
        return
    except WorkerFull as e:
        svc.bus.unsubscribe(sub)
        await refuse_accepted(ws, CloseCode.TRY_AGAIN_LATER, ErrorReason.WORKER_FULL, str(e))
        return
    except CallTaken as e:
        svc.bus.unsubscribe(sub)
        log.warning(
            "source refused: call owned by another source",
            extra={"call_id": call_id, "by": principal.subject},
        )
        await refuse_accepted(ws, CloseCode.FORBIDDEN, ErrorReason.CALL_TAKEN, str(e))
        return
    expiry = close_on_expiry(ws, principal)
    sub.put_local(encode(ready))
    _sources(ws.app).add(ws)
    svc.metrics.clients.labels("source").inc()
    pump = asyncio.create_task(_pump(ws, sub), name=f"source-pump-{call_id}")
    errors = 0
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if svc.draining:
                continue  # not acknowledged: the source sends it again to the worker it resumes on
            received = time.perf_counter()
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            outcome = await source_frame(svc, live, raw, received=received, reply=sub.put_local)
            errors = errors + 1 if outcome.error else 0
            if errors >= MAX_CONSECUTIVE_ERRORS:
                outcome.close = CloseCode.TOO_MANY_ERRORS
            if outcome.close is not None:
                await _drain(sub, pump)
                await _close(
                    ws, outcome.close, "call ended" if outcome.close is CloseCode.NORMAL else "closing"
                )
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    except Exception:  # a bug must not drop the socket without a close frame, nor log the frame's text
        log.exception("source socket failed", extra={"call_id": call_id})
        await _close(ws, CloseCode.INTERNAL_ERROR, "internal error; reconnect and resume")
    finally:
        _sources(ws.app).discard(ws)
        if expiry is not None:
            await _stop(expiry)
        await _stop(pump)
        svc.bus.unsubscribe(sub)
        svc.detach_source(live, conn=conn)
        svc.metrics.clients.labels("source").dec()


async def _drain(sub: Subscription, pump: asyncio.Task[None], timeout_s: float = 2.0) -> None:
    """Let the pump send what is queued (the call's last events) before the socket closes."""
    deadline = time.monotonic() + timeout_s
    while sub.pending and not pump.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


async def _events_access(ws: WebSocket, svc: CallService, principal: Principal, call_id: str) -> bool:
    """Whether ``principal`` may watch the call; refuses (4403) otherwise. A sidebar may connect before the
    call is opened: then it waits (answering pings) until the source opens it and names the agent."""
    teams = svc.settings.agent_teams
    if may_read(principal, None, teams) and principal.role is not Role.AGENT:
        audit(principal, call_id, "events", allowed=True)
        return True  # admins, trainers, and supervisors of every team need not know the call
    deadline = time.monotonic() + svc.settings.call_idle_timeout_s
    while time.monotonic() < deadline:
        exists, agent = await call_agent(svc, call_id)
        if exists:
            allowed = may_read(principal, agent, teams)
            audit(principal, call_id, "events", allowed=allowed)
            if not allowed:
                await refuse_accepted(
                    ws,
                    CloseCode.FORBIDDEN,
                    "forbidden",
                    f"call {call_id} is not assigned to {principal.subject!r}",
                )
            return allowed
        try:
            message = await asyncio.wait_for(ws.receive(), 0.5)
        except TimeoutError:
            continue
        if message["type"] == "websocket.disconnect":
            return False
        if '"ping"' in (message.get("text") or ""):
            await ws.send_text('{"type":"pong"}')
    await refuse_accepted(ws, CloseCode.FORBIDDEN, "forbidden", f"call {call_id} was not opened in time")
    return False


@router.websocket("/v1/calls/{call_id}/events")
async def call_events(ws: WebSocket, call_id: str) -> None:
    """Agent sidebar: the call's events so far (or after ``?after=EID``), then live ones, in ``eid`` order."""
    if await _bad_call_id(ws, call_id):
        return
    principal = await socket_principal(ws, Role.AGENT, Role.SUPERVISOR, Role.TRAINER)
    if principal is None:
        return
    svc = _service(ws)
    try:
        after = max(0, int(ws.query_params.get("after", "0")))
    except ValueError:
        after = 0
    await ws.accept()
    if not await _events_access(ws, svc, principal, call_id):
        return
    expiry = close_on_expiry(ws, principal)
    sub = svc.bus.subscribe(call_topic(call_id), maxsize=10_000)
    svc.metrics.clients.labels("events").inc()
    last = after
    pump: asyncio.Task[None] | None = None
    try:
        for msg in await svc.events_since(call_id, after=after):
            await ws.send_text(msg.data)
            last = max(last, msg.eid)
        pump = asyncio.create_task(_pump(ws, sub, skip_upto=last), name=f"events-pump-{call_id}")
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text") or ""
            if '"ping"' in text:
                sub.put_local('{"type":"pong"}')
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if expiry is not None:
            await _stop(expiry)
        if pump is not None:
            await _stop(pump)
        svc.bus.unsubscribe(sub)
        svc.metrics.clients.labels("events").dec()


@router.websocket("/v1/alerts")
async def alerts(ws: WebSocket) -> None:
    """Supervisors: open alerts on connect (or, with ``?after=CURSOR``, every alert and acknowledgement since
    that cursor), then every alert and acknowledgement; send ``ack`` to acknowledge."""
    principal = await socket_principal(ws, Role.SUPERVISOR)
    if principal is None:
        return
    svc = _service(ws)
    await ws.accept()
    expiry = close_on_expiry(ws, principal)
    sub = svc.bus.subscribe(ALERTS_TOPIC, maxsize=10_000)
    svc.metrics.clients.labels("alerts").inc()
    agents: dict[str, str | None] = {}

    async def visible(call_id: str) -> bool:
        """Only the alerts of the supervisor's teams' calls (all of them when teams are not used)."""
        if may_read(principal, None, svc.settings.agent_teams):
            return True
        if call_id not in agents:
            agents[call_id] = (await call_agent(svc, call_id))[1]
        return may_read(principal, agents[call_id], svc.settings.agent_teams)

    sent: set[tuple[str, bool]] = set()
    replay = await _alerts_since(svc, ws.query_params.get("after", ""))
    last = parse_cursor(replay[-1].cursor) if replay else parse_cursor(ws.query_params.get("after", ""))
    if not replay and not _cursor_kept(await svc.bus.history(ALERTS_TOPIC), last):
        last = None  # no cursor, or one older than what is kept: start from the open alerts
        for data in svc.alerts.open_alerts():
            if not await visible(str(data.get("call_id"))):
                continue
            sent.add((data["id"], bool(data.get("update"))))
            await ws.send_text(json.dumps(data))
    for msg in replay:
        d = json.loads(msg.data)
        if "call_id" in d and not await visible(str(d["call_id"])):
            continue
        await ws.send_text(_with_cursor(msg.data, msg.cursor))
    if svc.pipeline.degradation.features:  # the service is behind now: say so before anything new
        await ws.send_text(encode(svc.pipeline.service_degraded()))

    async def pump() -> None:
        while True:
            msg = await sub.get()
            if msg is None:
                if sub.overflowed:
                    await _close(
                        ws, CloseCode.SLOW_CONSUMER, "client too slow; reconnect with ?after=<cursor>"
                    )
                return
            pos = parse_cursor(msg.cursor)  # None: a reply on this socket only (pong, error)
            if last is not None and pos is not None and pos <= last:
                continue  # already sent from history
            d = json.loads(msg.data)
            if "call_id" in d and not await visible(str(d["call_id"])):
                continue  # replies to this socket (pong, error) have no call
            if sent and d.get("type") == "alert" and (d.get("id"), bool(d.get("update"))) in sent:
                sent.discard((d["id"], bool(d.get("update"))))
                continue
            await ws.send_text(_with_cursor(msg.data, msg.cursor))

    task = asyncio.create_task(pump(), name=f"alerts-pump-{uuid.uuid4().hex[:6]}")
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            reply = await supervisor_frame(
                svc, message.get("text") or "", subject=principal.subject, may_ack=visible
            )
            if reply is not None:
                sub.put_local(reply)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if expiry is not None:
            await _stop(expiry)
        await _stop(task)
        svc.bus.unsubscribe(sub)
        svc.metrics.clients.labels("alerts").dec()


async def _alerts_since(svc: CallService, after: str) -> list[BusMessage]:
    """The alerts feed after a supervisor's last cursor; empty when there is none or it is no longer kept."""
    pos = parse_cursor(after)
    if pos is None:
        return []
    kept = await svc.bus.history(ALERTS_TOPIC)
    return after_cursor(kept, after) if _cursor_kept(kept, pos) else []


def _cursor_kept(kept: list[BusMessage], pos: tuple[int, int] | None) -> bool:
    """Whether everything after ``pos`` is still in the kept history (nothing trimmed in between)."""
    if pos is None or not kept:
        return False
    oldest = parse_cursor(kept[0].cursor)
    return oldest is not None and oldest <= pos


def _with_cursor(data: str, cursor: str) -> str:
    """An alerts-feed frame with its ``cursor``, which the supervisor sends back as ``?after=`` to resume."""
    if not cursor:
        return data
    obj = json.loads(data)
    obj["cursor"] = cursor
    return json.dumps(obj)
