"""Small endpoints the browser pages need: demo calls, the feedback export and the latest evaluation report.

* ``GET /v1/demo/transcripts`` and ``POST /v1/demo/calls``: a newcomer starts a demo call from the landing
  page. The server replays one of ``eval/transcripts/*.jsonl`` as the call's transcript source, in process
  (the same ``CallService.attach_source``/``receive`` path the source socket uses, so no loopback socket and
  no source token are needed).
* ``GET /v1/feedback/export``: agents' feedback as labeled JSON Lines in the red-flag evaluation format.
* ``GET /v1/reports/latest``: the newest ``assistant eval redflags --json`` report under ``var/reports/``.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from assistant.api.app import create_app
    >>> from assistant.calls.fakes import KeywordAnalyzer, RuleAdvisor
    >>> with TestClient(create_app(analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())) as c:  # doctest: +SKIP
    ...     c.post("/v1/demo/calls", json={"transcript": "calm-call", "speed": 0}).json()["call_id"]
    'demo-calm-call-...'
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from assistant.auth import Principal, Role
from assistant.calls.service import CallService
from assistant.cli._replay import load_transcript
from assistant.errors import InvalidInputError
from assistant.events.messages import ChunkIn
from assistant.settings import PROJECT_ROOT
from assistant.store.records import CallRecord, FeedbackRecord

from .security import requires

log = logging.getLogger(__name__)
router = APIRouter()

TRANSCRIPTS_DIR = PROJECT_ROOT / "eval" / "transcripts"
MAX_DEMO_CALLS = 20  # running demo replays per process; a demo is for trying the product, not for load


def _service(request: Request) -> CallService:
    return request.app.state.service


def demo_transcripts() -> dict[str, Path]:
    """Demo transcript files by name (the file stem), sorted."""
    if not TRANSCRIPTS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(TRANSCRIPTS_DIR.glob("*.jsonl"))}


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
    _: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> DemoOut:
    """Start replaying a demo transcript server-side as a new live call; returns its id and page links."""
    path = demo_transcripts().get(body.transcript)
    if path is None:
        names = ", ".join(demo_transcripts()) or "none"
        raise HTTPException(404, detail=f"no demo transcript {body.transcript!r}; expected one of: {names}")
    try:
        chunks = load_transcript(path)
    except InvalidInputError as e:
        raise HTTPException(422, detail=str(e)) from e
    tasks: set[asyncio.Task[None]] | None = getattr(request.app.state, "demo_tasks", None)
    if tasks is None:
        tasks = request.app.state.demo_tasks = set()
    if len(tasks) >= MAX_DEMO_CALLS:
        raise HTTPException(
            429, detail=f"{MAX_DEMO_CALLS} demo calls are already running; wait for one to end"
        )
    call_id = f"demo-{body.transcript[:40]}-{secrets.token_hex(3)}"
    task = asyncio.create_task(
        replay_in_process(_service(request), call_id, chunks, speed=body.speed), name=f"demo-{call_id}"
    )
    tasks.add(task)  # keep a reference: the loop only holds weak ones
    task.add_done_callback(tasks.discard)
    log.info("demo call started", extra={"call_id": call_id, "transcript": body.transcript})
    return DemoOut(
        call_id=call_id,
        transcript=body.transcript,
        chunks=len(chunks),
        speed=body.speed,
        agent_url=f"/agent?call={call_id}",
        supervisor_url=f"/supervisor?call={call_id}",
    )


def _discard(_: str) -> None:
    """Acks of the in-process source go nowhere: the events reach sidebars through the bus."""


async def replay_in_process(svc: CallService, call_id: str, chunks: list[ChunkIn], *, speed: float) -> None:
    """Feed ``chunks`` to the service as call ``call_id``, spaced by their ``ts`` divided by ``speed``."""
    conn = object()
    task = asyncio.current_task()

    async def kick() -> None:  # a real source connected for this call: it takes over, the demo stops
        if task is not None:
            task.cancel()

    try:
        live, _ = await svc.attach_source(call_id, conn=conn, kick=kick)
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
            payload = c.model_dump(exclude={"type"}, exclude_none=True) | {"call_id": call_id}
            await svc.receive(live, json.dumps(payload), reply=_discard)
        await svc.receive(live, '{"type": "end"}', reply=_discard)
    except asyncio.CancelledError:
        log.info("demo call stopped", extra={"call_id": call_id})
    except Exception:  # the service shut down under us, or a bug: never crash the loop for a demo
        log.exception("demo call failed", extra={"call_id": call_id})
    finally:
        svc.detach_source(live, conn=conn)


# ---- feedback export -----------------------------------------------------------------------------------


def feedback_rows(record: CallRecord, items: list[FeedbackRecord], *, context_turns: int = 3) -> list[dict]:
    """Red-flag evaluation rows (``text``, ``context``, ``labels``) for one call's feedback.

    A feedback item names the suggestion event (``eid``) it is about; the suggestion's ``seq`` gives the
    customer utterance that drove it (the chunk at that seq, or the last customer chunk before it when an
    agent turn moved the step on). ``labels`` are the labels the model flagged on that utterance when the agent
    said the suggestion was ``useful`` (a confirmed example), and ``[]`` when it was ``wrong`` (a candidate false
    alarm; ``review: true`` asks a trainer to check it before training on it). Items whose suggestion cannot be
    found are left out. Extra keys (``verdict``, ``model_labels``, ...) are ignored by the evaluation reader.
    """
    seq_of_eid = {s.eid: s.seq for s in record.suggestions}
    chunks = record.transcript
    labels_at: dict[int, list[str]] = {}
    for f in record.flags:
        labels_at.setdefault(f.seq, [])
        labels_at[f.seq] += [x for x in f.labels if x not in labels_at[f.seq]]
    rows: list[dict] = []
    for fb in items:
        seq = seq_of_eid.get(fb.eid) if fb.eid is not None else None
        if seq is None:
            continue
        idx = max((i for i, c in enumerate(chunks) if c.seq <= seq and c.speaker == "customer"), default=None)
        if idx is None:
            continue
        utterance = chunks[idx]
        model_labels = labels_at.get(utterance.seq, [])
        rows.append(
            {
                "text": utterance.text,
                "context": [c.text for c in chunks[max(0, idx - context_turns) : idx]],
                "labels": list(model_labels) if fb.verdict == "useful" else [],
                "verdict": fb.verdict,
                "review": fb.verdict != "useful",
                "model_labels": model_labels,
                "call_id": record.id,
                "seq": utterance.seq,
                "procedure_id": fb.procedure_id,
                "step_index": fb.step_index,
                "comment": fb.comment,
                "feedback_id": fb.id,
            }
        )
    return rows


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
        items = await svc.store.list_feedback(limit=limit)
        if verdict:
            items = [f for f in items if f.verdict == verdict]
        by_call: dict[str, list[FeedbackRecord]] = {}
        for f in reversed(items):  # oldest first in the file
            by_call.setdefault(f.call_id, []).append(f)
        for call_id, group in by_call.items():
            record = await svc.store.get_call(call_id)
            if record is not None:
                lines += [json.dumps(r, ensure_ascii=False) for r in feedback_rows(record, group)]
    body = "\n".join(lines) + ("\n" if lines else "")
    return Response(
        body,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="feedback-redflags.jsonl"'},
    )


# ---- evaluation report -----------------------------------------------------------------------------------


def latest_report(reports_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest red-flag evaluation report (a JSON object with ``per_label``) in ``reports_dir``."""
    if not reports_dir.is_dir():
        return None
    for path in sorted(reports_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "per_label" in data:
            return path, data
    return None


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
