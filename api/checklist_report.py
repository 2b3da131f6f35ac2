"""``GET /v1/reports/checklist/latest``: the newest behavioural-suite report for the trainer page.

The report is a JSON file written by ``assistant eval checklist --json var/reports/FILE.json`` (recognised by
``"suite": "checklist"``); the red-flag evaluation reports beside it are ``GET /v1/reports/latest``'s.

Example:
    >>> from fastapi import FastAPI
    >>> FastAPI().include_router(router)
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from assistant.auth import Principal, Role
from assistant.eval.report import latest_checklist

from .security import requires

router = APIRouter()


@router.get("/v1/reports/checklist/latest", tags=["reports"])
async def get_latest_checklist(
    request: Request, _: Principal = Depends(requires(Role.TRAINER, Role.SUPERVISOR))
) -> dict[str, Any]:
    """The newest ``assistant eval checklist --json`` report in ``var/reports/`` (404 when there is none)."""
    reports_dir = request.app.state.settings.var_dir / "reports"
    found = await asyncio.to_thread(latest_checklist, reports_dir)
    if found is None:
        raise HTTPException(
            404,
            detail=f"no behavioural-suite report in {reports_dir}; run `assistant eval checklist "
            f"--json {reports_dir}/checklist.json`",
        )
    path, data = found
    return {"file": path.name, "modified": path.stat().st_mtime, "report": data}
