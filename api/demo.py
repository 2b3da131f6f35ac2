"""Endpoints the browser pages need: demo calls, the feedback export and the latest evaluation report.

* ``GET /v1/demo/transcripts`` and ``POST /v1/demo/calls``: a newcomer starts a demo call from the landing
  page (``assistant.calls.demo`` replays the transcript server-side).
* ``GET /v1/feedback/export``: agents' feedback as labeled JSON Lines (``assistant.eval.feedback``).
* ``GET /v1/reports/latest``: the newest ``assistant eval redflags --json`` report under ``var/reports/``.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from assistant.api.app import create_app
    >>> from assistant.testing import KeywordAnalyzer, RuleAdvisor
    >>> with TestClient(create_app(analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())) as c:  # doctest: +SKIP
    ...     c.post("/v1/demo/calls", json={"transcript": "calm-call", "speed": 0}).json()["call_id"]
    'demo-calm-call-...'
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from assistant.auth import Principal, Role
from assistant.calls.demo import DemoCalls, TooManyDemos, UnknownTranscript
from assistant.calls.service import CallService
from assistant.calls.transcript import demo_transcripts, load_transcript
from assistant.errors import InvalidInputError
from assistant.eval.feedback import export_lines
from assistant.eval.report import latest_report

from .limits import unprocessable
from .security import requires

router = APIRouter()


def _service(request: Request) -> CallService:
    return request.app.state.service


class DemoIn(BaseModel):
    transcript: str = Field(
        default="billing-dispute-abusive", max_length=64, description="a name from /v1/demo/transcripts"
    )
    speed: float = Field(default=2.0, ge=0, le=100, description="real-time multiple; 0: as fast as possible")


class DemoOut(BaseModel):
    call_id: str
    transcript: str
    chunks: int
    speed: float
    agent_url: str
    supervisor_url: str


@router.get("/v1/demo/transcripts", tags=["demo"])
async def list_demo_transcripts(
    _: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> list[dict[str, Any]]:
    """The demo transcripts a newcomer can replay (name, number of chunks, length in seconds)."""
    out = []
    for name, path in demo_transcripts().items():
        try:
            chunks = load_transcript(path)
        except InvalidInputError:
            continue  # a broken demo file is left out rather than breaking the landing page
        out.append({"name": name, "chunks": len(chunks), "duration_s": chunks[-1].ts or 0.0})
    return out


@router.post("/v1/demo/calls", tags=["demo"], status_code=201, response_model=DemoOut)
async def start_demo_call(
    body: DemoIn,
    request: Request,
    principal: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> DemoOut:
    """Start replaying a demo transcript server-side as a new live call; returns its id and page links."""
    demos: DemoCalls = request.app.state.demos
    try:
        call_id, chunks = demos.start(body.transcript, speed=body.speed, agent=principal.subject)
    except UnknownTranscript as e:
        raise HTTPException(404, detail=str(e)) from e
    except InvalidInputError as e:
        raise unprocessable(["body", "transcript"], str(e)) from e
    except TooManyDemos as e:
        raise HTTPException(429, detail=str(e)) from e
    return DemoOut(
        call_id=call_id,
        transcript=body.transcript,
        chunks=len(chunks),
        speed=body.speed,
        agent_url=f"/agent?call={call_id}",
        supervisor_url=f"/supervisor?call={call_id}",
    )


@router.get(
    "/v1/feedback/export",
    tags=["calls"],
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def export_feedback(
    request: Request,
    verdict: str | None = Query(None, pattern="^(useful|wrong)$"),
    limit: int = Query(10_000, ge=1, le=100_000),
    _: Principal = Depends(requires(Role.TRAINER, Role.SUPERVISOR)),
) -> Response:
    """Agents' feedback as labeled JSON Lines (``{"text", "context", "labels", ...}``) for retraining."""
    svc = _service(request)
    lines: list[str] = []
    if svc.store is not None:
        await svc.flush()
        lines = await export_lines(svc.store, verdict=verdict, limit=limit)
    body = "\n".join(lines) + ("\n" if lines else "")
    return Response(
        body,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="feedback-redflags.jsonl"'},
    )


@router.get("/v1/reports/latest", tags=["reports"])
async def get_latest_report(
    request: Request, _: Principal = Depends(requires(Role.TRAINER, Role.SUPERVISOR))
) -> dict[str, Any]:
    """The newest ``assistant eval redflags --json`` report in ``var/reports/`` (404 when there is none)."""
    reports_dir = request.app.state.settings.var_dir / "reports"
    found = await asyncio.to_thread(latest_report, reports_dir)
    if found is None:
        raise HTTPException(
            404,
            detail=f"no evaluation report in {reports_dir}; run `assistant eval redflags --data FILE.jsonl "
            f"--json {reports_dir}/redflags.json`",
        )
    path, data = found
    return {"file": path.name, "modified": path.stat().st_mtime, "report": data}
