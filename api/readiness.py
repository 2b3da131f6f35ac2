"""``GET /readyz``: whether this worker should get traffic (``/healthz`` only says the process is alive).

Ready means: the models are loaded and their threads run, the database answers, the event bus (Redis when
configured) answers, and the worker is not shutting down. A load balancer takes a worker that answers 503 out
of rotation; the body says why.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from assistant.calls.service import CallService

router = APIRouter()

CHECK_TIMEOUT_S = 2.0


async def _probe(name: str, check: Any) -> str | None:
    """None when ``check`` (an awaitable) succeeds within the timeout, else the reason."""
    try:
        await asyncio.wait_for(check, timeout=CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"{name}: no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as e:
        return f"{name}: {type(e).__name__}: {str(e)[:200]}"
    return None


async def _database(svc: CallService) -> None:
    if svc.store is None:
        return
    async with svc.store.engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")


async def readiness(svc: CallService | None) -> list[str]:
    """Why this worker is not ready (empty: ready)."""
    if svc is None:
        return ["service: not started yet"]
    reasons: list[str] = []
    if svc.draining:
        reasons.append("service: shutting down, draining live calls")
    if not svc.pipeline.batcher.running:
        reasons.append("models: the red-flag model is not loaded")
    if svc.pipeline.embed_batcher is not None and not svc.pipeline.embed_batcher.running:
        reasons.append("models: the query encoder is not loaded")
    checks = await asyncio.gather(_probe("database", _database(svc)), _probe("event bus", svc.bus.ping()))
    reasons.extend(r for r in checks if r is not None)
    return reasons


@router.get("/readyz", tags=["ops"])
async def readyz(request: Request) -> JSONResponse:
    """200 ``{"status": "ready"}``, or 503 ``{"status": "not_ready", "reasons": [...]}``."""
    reasons = await readiness(getattr(request.app.state, "service", None))
    if reasons:
        return JSONResponse({"status": "not_ready", "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready", "reasons": []})
