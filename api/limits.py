"""Request limits and error replies that never echo the input.

``BodyLimit`` refuses an HTTP request body over ``ASSISTANT_MAX_REQUEST_BYTES`` with 413 before it is read
whole; ``validation_error`` replaces FastAPI's 422 body, which repeats the whole offending input (a 1 MB text
came back in full), with the field, the rule and at most a short redacted preview of the value.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.events.frames import preview


class BodyLimit:
    """Pure ASGI middleware: 413 for an HTTP body over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"request body over {self.max_bytes} bytes (ASSISTANT_MAX_REQUEST_BYTES)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _safe(error: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "loc": list(error.get("loc", ())),
        "msg": error.get("msg", ""),
        "type": error.get("type"),
    }
    value = error.get("input")
    if isinstance(value, str):
        out["input_preview"] = preview(value)
    return out


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field and rule, without the input (a redacted 24-character preview at most)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse(status_code=422, content={"detail": [_safe(e) for e in errors]})


def unprocessable(loc: list[str | int], message: str, kind: str = "value_error") -> HTTPException:
    """A 422 in the shape FastAPI documents for validation errors (``detail``: a list of ``loc``, ``msg``,
    ``type``), for checks made in a route: the OpenAPI schema then describes every 422 the service sends."""
    return HTTPException(422, detail=[{"loc": loc, "msg": message, "type": kind}])
