"""Call guidance over HTTP: QA per call, the post-call summary, incident records, the supervisor report.

* ``GET /v1/calls/{call_id}/qa``: script adherence with evidence (agents, supervisors, trainers).
* ``GET /v1/calls/{call_id}/summary``: the post-call summary for the call log.
* ``GET|PUT|PATCH /v1/calls/{call_id}/incident-report``: the incident record (supervisors only when auth is
  on); JSON with ``Accept: application/json``, PDF with ``Accept: application/pdf`` or ``?format=pdf``,
  Markdown otherwise. A supervisor's edits are stored and kept over the draft.
* ``GET /v1/reports/supervisor``: the report over a period as JSON, CSV or a PNG chart (supervisors).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from assistant.auth import Principal, Role
from assistant.calls.service import CallService
from assistant.events.frames import preview
from assistant.events.messages import CALL_ID_PATTERN
from assistant.guidance.facts import facts_from_record
from assistant.guidance.incident import IncidentEdit, IncidentRecord, apply_edit, draft_incident
from assistant.guidance.live import CallGuidance
from assistant.guidance.periods import report_from_store
from assistant.guidance.policies import GuidancePolicies
from assistant.guidance.qa import QAResult
from assistant.guidance.render import incident_markdown, incident_pdf
from assistant.guidance.report import SupervisorReport, report_chart, report_csv
from assistant.guidance.summary import CallSummaryNote, summarise_call
from assistant.store.records import CallRecord

from .access import audit, check_call_access, may_read
from .limits import unprocessable
from .security import requires

router = APIRouter(tags=["guidance"])
CallId = Annotated[str, Path(pattern=CALL_ID_PATTERN, description="a safe call identifier")]
MAX_REPORT_CALLS = 10_000  # the oldest calls of the period, if it holds more


def _service(request: Request) -> CallService:
    return request.app.state.service


def _policies(request: Request) -> GuidancePolicies:
    return request.app.state.guidance


async def _record(request: Request, call_id: str) -> CallRecord:
    svc = _service(request)
    await svc.flush()
    rec = await svc.store.get_call(call_id) if svc.store is not None else None
    if rec is None:
        raise HTTPException(404, detail=f"no call {call_id!r}; stream it first on /v1/calls/{call_id}/stream")
    return rec


def _wants(request: Request, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    accept = request.headers.get("accept", "")
    if "application/pdf" in accept:
        return "pdf"
    if "application/json" in accept:
        return "json"
    return "markdown"


@router.get("/v1/calls/{call_id}/qa", response_model=QAResult)
async def call_qa(
    call_id: CallId,
    request: Request,
    principal: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> QAResult:
    """Which required steps the agent carried out, when, and the line that did it; ``score`` in [0, 1]."""
    await check_call_access(request, principal, call_id, "qa")
    rec = await _record(request, call_id)
    policies = _policies(request)
    if rec.guidance_state:
        guidance = CallGuidance(policies, rec.guidance_state)
    else:  # a call recorded before guidance was tracked: replay its stored turns (same result)
        guidance = CallGuidance(policies)
        for t in facts_from_record(rec).turns:
            guidance.observe(t.seq, t.speaker, t.text, list(t.labels))
    return guidance.qa(call_id=call_id, agent=rec.agent)


@router.get("/v1/calls/{call_id}/summary", response_model=CallSummaryNote)
async def call_summary(
    call_id: CallId,
    request: Request,
    principal: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> CallSummaryNote:
    """The post-call summary for the call log: reason, what was done, outcome, follow-ups."""
    await check_call_access(request, principal, call_id, "summary")
    policies = _policies(request)
    return summarise_call(
        facts_from_record(await _record(request, call_id)), policies.stages, policies.protocol
    )


async def _incident(request: Request, call_id: str) -> IncidentRecord:
    """The stored (edited) record when there is one, else a fresh draft from the call."""
    rec = await _record(request, call_id)
    if rec.incident_report:
        return IncidentRecord.model_validate(rec.incident_report)
    policies = _policies(request)
    return draft_incident(
        facts_from_record(rec),
        policies.stages,
        policies.protocol,
        customer_name=request.app.state.settings.incident_customer_name,
    )


async def _render(record: IncidentRecord, kind: str) -> Response:
    if kind == "pdf":
        return Response(
            await asyncio.to_thread(incident_pdf, record),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="incident-{record.call_id}.pdf"'},
        )
    if kind == "json":
        return Response(record.model_dump_json(), media_type="application/json")
    return Response(incident_markdown(record), media_type="text/markdown; charset=utf-8")


@router.get(
    "/v1/calls/{call_id}/incident-report",
    responses={200: {"content": {"application/json": {}, "text/markdown": {}, "application/pdf": {}}}},
)
async def get_incident_report(
    call_id: CallId,
    request: Request,
    format: Literal["json", "markdown", "pdf"] | None = Query(
        None, description="overrides the Accept header"
    ),
    principal: Principal = Depends(requires(Role.SUPERVISOR)),
) -> Response:
    """The call's incident record: JSON, Markdown (default) or PDF (supervisors of the call's team)."""
    await check_call_access(request, principal, call_id, "incident_report")
    return await _render(await _incident(request, call_id), _wants(request, format))


async def _save(request: Request, call_id: str, record: IncidentRecord, *, by: str) -> IncidentRecord:
    svc = _service(request)
    if svc.store is None:
        raise HTTPException(503, detail="no store configured; incident edits need ASSISTANT_DATABASE_URL")
    await svc.store.save_incident_report(call_id, record.model_dump(mode="json"), by=by)
    return record


@router.patch("/v1/calls/{call_id}/incident-report", response_model=IncidentRecord)
async def patch_incident_report(
    call_id: CallId,
    body: IncidentEdit,
    request: Request,
    principal: Principal = Depends(requires(Role.SUPERVISOR)),
) -> IncidentRecord:
    """Change some fields of the record (description, follow-up, supervisor involvement, status, customer)."""
    await check_call_access(request, principal, call_id, "incident_edit")
    record = apply_edit(await _incident(request, call_id), body, by=principal.subject, at=datetime.now(UTC))
    return await _save(request, call_id, record, by=principal.subject)


@router.put("/v1/calls/{call_id}/incident-report", response_model=IncidentRecord)
async def put_incident_report(
    call_id: CallId,
    body: IncidentEdit,
    request: Request,
    principal: Principal = Depends(requires(Role.SUPERVISOR)),
) -> IncidentRecord:
    """Replace every editable field; fields left out are reset to the fresh draft's values."""
    await check_call_access(request, principal, call_id, "incident_edit")
    rec = await _record(request, call_id)
    policies = _policies(request)
    draft = draft_incident(
        facts_from_record(rec),
        policies.stages,
        policies.protocol,
        customer_name=request.app.state.settings.incident_customer_name,
    )
    if rec.incident_report:
        draft.edits = IncidentRecord.model_validate(rec.incident_report).edits
    full = IncidentEdit.model_validate(
        {k: getattr(draft, k) for k in IncidentEdit.model_fields} | body.model_dump(exclude_unset=True)
    )
    record = apply_edit(draft, full, by=principal.subject, at=datetime.now(UTC))
    return await _save(request, call_id, record, by=principal.subject)


def _day_or_time(text: str, *, end: bool) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise unprocessable(
            ["query"], f"cannot read {preview(text)} as a date or time (e.g. 2026-11-30)"
        ) from e
    if len(text) <= 10 and end:  # a plain date as the end means the whole of that day
        dt = datetime.combine(dt.date(), time.min) + timedelta(days=1)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


@router.get(
    "/v1/reports/supervisor",
    responses={200: {"content": {"application/json": {}, "text/csv": {}, "image/png": {}}}},
)
async def supervisor_report(
    request: Request,
    since: str = Query(..., description="start: ISO date or time (UTC unless a zone is given)"),
    until: str | None = Query(None, description="end: ISO date (that whole day) or time; default now"),
    agent: str | None = Query(None, max_length=128),
    format: Literal["json", "csv", "png"] = "json",
    principal: Principal = Depends(requires(Role.SUPERVISOR)),
) -> Response:
    """Handle time, time to first response, red flags, escalations and adherence per call and per agent (the
    agents of the supervisor's teams when ``ASSISTANT_AGENT_TEAMS`` is set)."""
    start = _day_or_time(since, end=False)
    stop = _day_or_time(until, end=True) if until else datetime.now(UTC)
    if stop <= start:
        raise unprocessable(["query", "until"], "until must be after since")
    svc = _service(request)
    await svc.flush()
    if svc.store is None:
        report = SupervisorReport(since=start, until=stop, calls=[], agents=[])
    else:
        report = await report_from_store(
            svc.store, _policies(request), since=start, until=stop, agent=agent, limit=MAX_REPORT_CALLS
        )
    teams = request.app.state.settings.agent_teams
    report = report.model_copy(
        update={
            "calls": [c for c in report.calls if may_read(principal, c.agent, teams)],
            "agents": [a for a in report.agents if may_read(principal, a.agent, teams)],
        }
    )
    audit(principal, None, f"supervisor report {len(report.calls)} calls", allowed=True)
    if format == "csv":
        name = f"supervisor-report-{start:%Y%m%d}-{stop:%Y%m%d}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if format == "png":
        # matplotlib takes ~0.1 s: off the event loop, so live calls are not held up
        return Response(await asyncio.to_thread(report_chart, report), media_type="image/png")
    return Response(report.model_dump_json(), media_type="application/json")
