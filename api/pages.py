"""The browser pages: landing, agent sidebar, supervisor dashboard, trainer page, and their static files.

Plain HTML, CSS and JavaScript modules under ``api/static/`` (shipped as package data): no build step, nothing
fetched from the internet. The pages themselves need no token; the data they load does. A page opened with
``?token=`` passes it on to its fetches (``Authorization: Bearer``) and sockets (``?token=``).

Example:
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.include_router(router)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse

from assistant.events.messages import CALL_ID_PATTERN

from .checklist_report import router as checklist_router
from .demo import router as demo_router

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter()
router.include_router(demo_router)
router.include_router(checklist_router)

# Media types by suffix; JavaScript modules must be served as text/javascript or the browser refuses them.
_MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# The pages change with every release; make the browser check again rather than run a stale script.
_NO_CACHE = {"Cache-Control": "no-cache"}


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type=_MEDIA[".html"], headers=_NO_CACHE)


@router.get("/", include_in_schema=False)
async def landing() -> FileResponse:
    return _page("index.html")


@router.get("/agent", include_in_schema=False)
async def agent_sidebar() -> FileResponse:
    """The agent's sidebar; the call comes from ``?call=CALL_ID``."""
    return _page("agent.html")


@router.get("/agent/{call_id}", include_in_schema=False)
async def agent_sidebar_for(
    call_id: Annotated[str, PathParam(pattern=CALL_ID_PATTERN)], request: Request
) -> RedirectResponse:
    """``/agent/CALL_ID`` is ``/agent?call=CALL_ID`` (one page, one way to read the call id; ?token= is kept)."""
    query = {k: v for k, v in request.query_params.items() if k != "call"} | {"call": call_id}
    return RedirectResponse(f"/agent?{urlencode(query)}", status_code=307)


@router.get("/supervisor", include_in_schema=False)
async def supervisor_dashboard() -> FileResponse:
    return _page("supervisor.html")


@router.get("/trainer", include_in_schema=False)
async def trainer_page() -> FileResponse:
    return _page("trainer.html")


@router.get("/static/{path:path}", include_in_schema=False)
async def static_file(path: str) -> FileResponse:
    """A file under ``api/static/``; anything outside it (``..``, absolute paths) is a 404."""
    target = (STATIC_DIR / path).resolve()
    if not target.is_relative_to(STATIC_DIR) or not target.is_file() or target.suffix not in _MEDIA:
        raise HTTPException(404, detail=f"no static file {path!r}")
    return FileResponse(target, media_type=_MEDIA[target.suffix], headers=_NO_CACHE)
