"""HTTP endpoints: analyze, calls, incident reports, alert acks, feedback, health and metrics."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from assistant.auth import Principal, Role
from assistant.calls.alerts import UnknownAlert
from assistant.calls.incident import build_report, to_markdown
from assistant.calls.service import CallService
from assistant.events.messages import CALL_ID_PATTERN
from assistant.store.records import CallRecord, CallSummary, FeedbackRecord

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
    eid: int | None = Field(default=None, description="eid of the suggestion event the feedback is about")
    procedure_id: str | None = Field(default=None, max_length=128)
    step_index: int | None = Field(default=None, ge=0)
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


@router.get("/metrics", tags=["ops"])
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
        raise HTTPException(
            422,
            detail=f"text has {len(body.text)} characters; at most {limits.max_chunk_chars} (ASSISTANT_MAX_CHUNK_CHARS)",
        )
    if len(body.context) > limits.max_context_items:
        raise HTTPException(
            422,
            detail=f"context has {len(body.context)} items; at most {limits.max_context_items} "
            "(ASSISTANT_MAX_CONTEXT_ITEMS)",
        )
    for i, item in enumerate(body.context):
        if len(item) > limits.max_chunk_chars:
            raise HTTPException(
                422,
                detail=f"context[{i}] has {len(item)} characters; at most {limits.max_chunk_chars} "
                "(ASSISTANT_MAX_CHUNK_CHARS)",
            )
    analysis = await _service(request).pipeline.analyze_once(body.text, body.context)
    return analysis.to_response()


@router.get("/v1/calls", tags=["calls"], response_model=list[CallSummary])
async def list_calls(
    request: Request,
    status: Literal["live", "ended"] | None = None,
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(requires(Role.SUPERVISOR, Role.TRAINER)),
) -> list[CallSummary]:
    """Live and recent calls with their risk, newest activity first (supervisor dashboard)."""
    svc = _service(request)
    await svc.flush()
    calls = await svc.store.list_calls(limit=limit, status=status) if svc.store is not None else []
    for c in calls:
        view = svc.live_view(c.id)
        if view is not None:
            c.live = bool(view["live"])
            c.severity, c.severity_level = view["severity"], view["severity_level"]
    return calls


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
    _: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> CallRecord:
    """The stored call: redacted transcript, flags, alerts with acknowledgements, suggestions, feedback."""
    return await _record(request, call_id)


@router.get(
    "/v1/calls/{call_id}/incident-report",
    tags=["calls"],
    responses={200: {"content": {"application/json": {}, "text/markdown": {}}}},
)
async def incident_report(
    call_id: CallId,
    request: Request,
    _: Principal = Depends(requires(Role.SUPERVISOR, Role.TRAINER, Role.AGENT)),
) -> Response:
    """A drafted incident report (JSON; Markdown with ``Accept: text/markdown``)."""
    report = build_report(await _record(request, call_id))
    if "text/markdown" in request.headers.get("accept", ""):
        return Response(to_markdown(report), media_type="text/markdown; charset=utf-8")
    return Response(json.dumps(report), media_type="application/json")


@router.post("/v1/alerts/{alert_id}/ack", tags=["alerts"])
async def ack_alert(
    alert_id: Annotated[str, Path(max_length=64)],
    request: Request,
    body: AckIn | None = None,
    principal: Principal = Depends(requires(Role.SUPERVISOR)),
) -> dict[str, Any]:
    """Acknowledge an alert (idempotent: a second ack returns ``already_acked: true``)."""
    try:
        return await _service(request).alerts.ack(
            alert_id, subject=principal.subject, note=body.note if body else None
        )
    except UnknownAlert as e:
        raise HTTPException(404, detail=str(e)) from e


@router.get("/v1/alerts", tags=["alerts"])
async def open_alerts(
    request: Request, _: Principal = Depends(requires(Role.SUPERVISOR))
) -> list[dict[str, Any]]:
    """Unacknowledged alerts known to this worker, oldest first."""
    return _service(request).alerts.open_alerts()


@router.post("/v1/calls/{call_id}/feedback", tags=["calls"], status_code=201, response_model=FeedbackRecord)
async def feedback(
    call_id: CallId,
    body: FeedbackIn,
    request: Request,
    principal: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR)),
) -> FeedbackRecord:
    """An agent marks a suggestion useful or wrong (stored for trainers)."""
    svc = _service(request)
    if svc.store is None:
        raise HTTPException(503, detail="no store configured")
    return await svc.store.add_feedback(
        call_id=call_id,
        verdict=body.verdict,
        subject=principal.subject,
        eid=body.eid,
        procedure_id=body.procedure_id,
        step_index=body.step_index,
        comment=body.comment,
    )


@router.get("/v1/feedback", tags=["calls"], response_model=list[FeedbackRecord])
async def list_feedback(
    request: Request,
    limit: int = Query(1000, ge=1, le=10_000),
    _: Principal = Depends(requires(Role.TRAINER, Role.SUPERVISOR)),
) -> list[FeedbackRecord]:
    """Feedback agents gave, newest first (trainers)."""
    svc = _service(request)
    return await svc.store.list_feedback(limit=limit) if svc.store is not None else []
