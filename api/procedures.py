"""`GET /v1/procedures/{id}`: an SOP's ordered steps, so the sidebar checklist can name every step."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from assistant.auth import Principal, Role
from assistant.types import NextStepAdvisor

from .security import requires

router = APIRouter()


@router.get("/v1/procedures/{procedure_id:path}", tags=["knowledge"])
async def get_procedure(
    procedure_id: str,
    request: Request,
    _: Principal = Depends(requires(Role.AGENT, Role.SUPERVISOR, Role.TRAINER)),
) -> dict[str, Any]:
    """Title, stage and ordered steps (what to do and what to say) of one procedure of the knowledge base."""
    advisor: NextStepAdvisor | None = request.app.state.service.advisor
    if advisor is None:
        raise HTTPException(404, "this service runs without a knowledge base (no advisor)")
    proc = advisor.procedure(procedure_id)
    if proc is None:
        raise HTTPException(404, f"no procedure {procedure_id!r}; `assistant kb list` shows the ids")
    return {
        "id": proc.id,
        "title": proc.title,
        "stage": proc.stage,
        "steps": [
            {"index": s.index, "title": s.title, "action": s.action, "script": s.script} for s in proc.steps
        ],
    }
