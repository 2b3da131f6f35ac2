"""``GET /v1/reports/checklist/latest``: the newest behavioural-suite report for the trainer page.

The report is a JSON file written by ``assistant eval checklist --json var/reports/FILE.json`` (recognised by
``"suite": "checklist"``); the red-flag evaluation reports beside it are ``GET /v1/reports/latest``'s.

Example:
    >>> from fastapi import FastAPI
    >>> FastAPI().include_router(router)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from assistant.auth import Principal, Role

from .security import requires

router = APIRouter()


def latest_checklist(reports_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest behavioural-suite report (a JSON object with ``"suite": "checklist"``) in ``reports_dir``."""
    if not reports_dir.is_dir():
        return None
    for path in sorted(reports_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("suite") == "checklist" and "capabilities" in data:
            return path, data
    return None


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
