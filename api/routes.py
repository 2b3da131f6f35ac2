"""HTTP endpoints: analyze, calls, alert acks, feedback, health and metrics (guidance: ``api/guidance.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from assistant.auth import Principal, Role
from assistant.calls.alerts import UnknownAlert
from assistant.calls.redaction import redact
from assistant.calls.service import CallService
from assistant.events.messages import CALL_ID_PATTERN
from assistant.store.records import CallRecord, CallSummary, FeedbackRecord

from .access import (
    alert_call_id,
    audit,
    call_agent,
    check_call_access,
    feedback_for_trainer,
    for_trainer,
    may_read,
)
from .limits import unprocessable
from .security import requires

router = APIRouter()
CallId = Annotated[str, Path(pattern=CALL_ID_PATTERN, description="a safe call identifier")]


def _service(request: Request) -> CallService:
    return request.app.state.service


class AnalyzeIn(BaseModel):
    # Hard caps in the schema; the configured limits (ASSISTANT_MAX_CHUNK_CHARS, ASSISTANT_MAX_CONTEXT_ITEMS)
    # are checked in the route and are usually tighter.
    text: str = Field(min_length=1, max_length=20_000)
    context: list[Annotated[str, Field(max_length=20_000)]] = Field(default_factory=list, max_length=50)


class AckIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class FeedbackIn(BaseModel):
    verdict: Literal["useful", "wrong"]
    eid: int | None = Field(
        default=None, ge=1, le=2**53 - 1, description="eid of the suggestion event the feedback is about"
    )
    procedure_id: str | None = Field(default=None, max_length=128)
    step_index: int | None = Field(default=None, ge=0, le=10_000)
    comment: str | None = Field(default=None, max_length=2000)


@router.get("/healthz", tags=["ops"], responses={503: {"description": "degraded: the store takes no writes"}})
async def healthz(request: Request) -> JSONResponse:
    """200 ``ok``; 503 ``degraded`` while the database takes no writes (they are held in memory and retried;
    ``store`` says since when, how many are waiting and for which calls). Probes treat 503 as a failure."""
    svc = _service(request)
    writer = svc.recorder.writer
    health = writer.health if writer is not None else None
    degraded = health is not None and not health.healthy
    body: dict[str, Any] = {
        "status": "degraded" if degraded else "ok",
        "live_calls": svc.live_count(),
    }
    if health is not None:
        body["store"] = {**health.to_dict(), "backlog": svc.recorder.backlog}
    return JSONResponse(body, status_code=503 if degraded else 200)


@router.get("/metrics", tags=["ops"], responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    svc = _service(request)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/analyze", tags=["analysis"])
async def analyze(
    body: AnalyzeIn,
    request: Request,
    _: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> dict[str, Any]:
    """Flags and suggestions for one utterance (text is redacted first)."""
    limits = request.app.state.settings
    if len(body.text) > limits.max_chunk_chars:
        raise unprocessable(
            ["body", "text"],
            f"text has {len(body.text)} characters; at most {limits.max_chunk_chars} (ASSISTANT_MAX_CHUNK_CHARS)",
        )
    if len(body.context) > limits.max_context_items:
        raise unprocessable(
            ["body", "context"],
            f"context has {len(body.context)} items; at most {limits.max_context_items} "
            "(ASSISTANT_MAX_CONTEXT_ITEMS)",
        )
    for i, item in enumerate(body.context):
        if len(item) > limits.max_chunk_chars:
            raise unprocessable(
                ["body", "context", i],
                f"context[{i}] has {len(item)} characters; at most {limits.max_chunk_chars} "
                "(ASSISTANT_MAX_CHUNK_CHARS)",
            )
    analysis = await _service(request).pipeline.analyze_once(body.text, body.context)
    return analysis.to_response()


@router.get("/v1/calls", tags=["calls"], response_model=list[CallSummary])
async def list_calls(
    request: Request,
    status: Literal["live", "ended"] | None = None,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(requires(Role.SUPERVISOR, Role.TRAINER)),
) -> list[CallSummary]:
    """Live and recent calls with their risk, newest activity first: a supervisor's teams' calls, or every
    call for a trainer (agents as pseudonyms)."""
    svc = _service(request)
    await svc.flush()
    calls = await svc.store.list_calls(limit=limit, status=status) if svc.store is not None else []
    teams = request.app.state.settings.agent_teams
    calls = [c for c in calls if may_read(principal, c.agent, teams)]
    for c in calls:
        view = svc.live_view(c.id)
        if view is not None:
            c.live = bool(view["live"])
            c.severity, c.severity_level = view["severity"], view["severity_level"]
    audit(principal, None, f"list {len(calls)} calls", allowed=True)
    return [for_trainer(c) for c in calls] if principal.role is Role.TRAINER else calls


async def _record(request: Request, call_id: str) -> CallRecord:
    svc = _service(request)
    await svc.flush()
    rec = await svc.store.get_call(call_id) if svc.store is not None else None
    if rec is None:
        raise HTTPException(404, detail=f"no call {call_id!r}; stream it first on /v1/calls/{call_id}/stream")
    view = svc.live_view(call_id)
    if view is not None:
        rec.live = bool(view["live"])
    return rec


@router.get("/v1/calls/{call_id}", tags=["calls"], response_model=CallRecord)
async def get_call(
    call_id: CallId,
    request: Request,
    principal: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> CallRecord:
    """The stored call: redacted transcript, flags, alerts with acknowledgements, suggestions, feedback.

    Agents read their own calls, supervisors their teams' calls, trainers every call with people's ids as
    pseudonyms."""
    await check_call_access(request, principal, call_id, "record")
    rec = await _record(request, call_id)
    return for_trainer(rec) if principal.role is Role.TRAINER else rec


@router.post("/v1/alerts/{alert_id}/ack", tags=["alerts"])
async def ack_alert(
    alert_id: Annotated[str, Path(max_length=64)],
    request: Request,
    body: AckIn | None = None,
    principal: Principal = Depends(requires(Role.SUPERVISOR)),
) -> dict[str, Any]:
    """Acknowledge an alert (idempotent: a second ack returns ``already_acked: true``); the supervisors of
    the call's team. The note is redacted."""
    svc = _service(request)
    call_id = await alert_call_id(svc, alert_id)
    if call_id is not None:
        await check_call_access(request, principal, call_id, "alert_ack")
    note = redact(body.note).text if body is not None and body.note else None
    try:
        return await svc.alerts.ack(alert_id, subject=principal.subject, note=note)
    except UnknownAlert as e:
        raise HTTPException(404, detail=str(e)) from e


@router.get("/v1/alerts", tags=["alerts"])
async def open_alerts(
    request: Request, principal: Principal = Depends(requires(Role.SUPERVISOR))
) -> list[dict[str, Any]]:
    """Unacknowledged alerts known to this worker, oldest first (of the supervisor's teams' calls)."""
    svc = _service(request)
    teams = request.app.state.settings.agent_teams
    if may_read(principal, None, teams):
        return svc.alerts.open_alerts()  # teams not used, or "*": no call needs looking up
    out = []
    for alert in svc.alerts.open_alerts():
        _, agent = await call_agent(svc, str(alert.get("call_id")))
        if may_read(principal, agent, teams):
            out.append(alert)
    return out


@router.post("/v1/calls/{call_id}/feedback", tags=["calls"], status_code=201, response_model=FeedbackRecord)
async def feedback(
    call_id: CallId,
    body: FeedbackIn,
    request: Request,
    principal: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR)),
) -> FeedbackRecord:
    """An agent marks a suggestion useful or wrong (stored for trainers); the comment is redacted before it
    is stored."""
    svc = _service(request)
    if svc.store is None:
        raise HTTPException(503, detail="no store configured")
    await check_call_access(request, principal, call_id, "feedback")
    return await svc.store.add_feedback(
        call_id=call_id,
        verdict=body.verdict,
        subject=principal.subject,
        eid=body.eid,
        procedure_id=body.procedure_id,
        step_index=body.step_index,
        comment=redact(body.comment).text if body.comment else body.comment,
    )


@router.get("/v1/feedback", tags=["calls"], response_model=list[FeedbackRecord])
async def list_feedback(
    request: Request,
    limit: int = Query(1000, ge=1, le=10_000),
    principal: Principal = Depends(requires(Role.TRAINER, Role.SUPERVISOR)),
) -> list[FeedbackRecord]:
    """Feedback agents gave, newest first (trainers). Comments are served redacted (also those stored before
    comments were redacted on the way in); trainers see who gave it as a pseudonym."""
    svc = _service(request)
    items = await svc.store.list_feedback(limit=limit) if svc.store is not None else []
    audit(principal, None, f"feedback list {len(items)}", allowed=True)
    out = []
    for item in items:
        clean = item.model_copy(
            update={"comment": redact(item.comment).text if item.comment else item.comment}
        )
        out.append(feedback_for_trainer(clean) if principal.role is Role.TRAINER else clean)
    return out
