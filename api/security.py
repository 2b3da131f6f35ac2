"""Authentication for HTTP routes and WebSockets (only when ASSISTANT_AUTH_SECRET is set), and the
WebSocket ``Origin`` check (always: a browser page of another site must not open a call's sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, WebSocket, status

from assistant.auth import AuthError, PermissionDenied, Principal, Role, authenticate, require
from assistant.events.messages import CloseCode, ErrorEvent, encode


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def requires(*roles: Role) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller's principal, or 401/403."""

    def dependency(request: Request) -> Principal:
        secret: str = request.app.state.settings.auth_secret
        try:
            principal = authenticate(secret, _bearer(request.headers.get("authorization")))
            require(principal, *roles)
        except AuthError as e:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, detail=str(e), headers={"WWW-Authenticate": "Bearer"}
            ) from e
        except PermissionDenied as e:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(e)) from e
        return principal

    return dependency


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """A WebSocket's ``Origin``: none (not a browser: an ASR bridge, a CLI) passes; otherwise it must be one of
    ``allowed`` (ASSISTANT_ALLOWED_ORIGINS), or, when that is empty, the service's own origin (the Host)."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/")
    if allowed:
        return origin in {o.strip().rstrip("/") for o in allowed} or "*" in allowed
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == (host or "").lower()


async def socket_principal(ws: WebSocket, *roles: Role) -> Principal | None:
    """The socket's principal after accept(); on failure it sends an error and closes with 4401/4403.

    A browser page from an origin that is not allowed is refused first (4403), whatever its token."""
    settings = ws.app.state.settings
    if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), settings.allowed_origins):
        await _refuse(
            ws,
            CloseCode.FORBIDDEN,
            "forbidden_origin",
            "this page's origin may not open the service's sockets; add it to ASSISTANT_ALLOWED_ORIGINS",
        )
        return None
    secret: str = settings.auth_secret
    token = ws.query_params.get("token") or _bearer(ws.headers.get("authorization"))
    try:
        principal = authenticate(secret, token)
        require(principal, *roles)
        return principal
    except AuthError as e:
        await _refuse(ws, CloseCode.UNAUTHORIZED, "unauthorized", str(e))
    except PermissionDenied as e:
        await _refuse(ws, CloseCode.FORBIDDEN, "forbidden", str(e))
    return None


async def _refuse(ws: WebSocket, code: CloseCode, reason: str, message: str) -> None:
    await ws.accept()
    await ws.send_text(encode(ErrorEvent(reason=reason, message=message)))
    await ws.close(code=int(code), reason=message[:120])


def close_on_expiry(ws: WebSocket, principal: Principal) -> asyncio.Task[None] | None:
    """A task that closes the socket with 4401 when the token expires (sockets outlive their tokens
    otherwise); cancel it when the socket ends. None when the principal never expires (auth off)."""
    expires_at = principal.expires_at
    if expires_at is None:
        return None

    async def expire() -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        with contextlib.suppress(Exception):
            await ws.send_text(
                encode(
                    ErrorEvent(
                        reason="token_expired",
                        message="token expired; reconnect with a new one from `assistant token issue`",
                    )
                )
            )
            await ws.close(code=int(CloseCode.UNAUTHORIZED), reason="token expired")

    return asyncio.create_task(expire(), name="token-expiry")


async def refuse_accepted(ws: WebSocket, code: CloseCode, reason: str, message: str) -> None:
    """Send an error event and close a socket that was already accepted."""
    with contextlib.suppress(Exception):
        await ws.send_text(encode(ErrorEvent(reason=reason, message=message)))
        await ws.close(code=int(code), reason=message[:120])
