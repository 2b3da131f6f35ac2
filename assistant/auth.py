"""HMAC-signed bearer tokens with a role, checked only when ``ASSISTANT_AUTH_SECRET`` is set.

A token is ``base64url(payload).base64url(hmac_sha256(secret, payload))`` where the payload is
``{"sub": ..., "role": ..., "iat": ..., "exp": ...}`` as JSON.

Example:
    >>> tok = issue_token("s3cret", role="agent", subject="agent-7", ttl_s=60)
    >>> verify_token("s3cret", tok).role
    'agent'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from enum import StrEnum

from assistant.errors import AssistantError, InvalidInputError


class Role(StrEnum):
    SOURCE = "source"  # the ASR/telephony side: streams chunks
    AGENT = "agent"  # reads a call's events, gives feedback
    SUPERVISOR = "supervisor"  # alerts, every call, incident reports
    TRAINER = "trainer"  # reads calls, reports and feedback
    ADMIN = "admin"  # everything


class AuthError(AssistantError):
    """The request has no valid token (HTTP 401 / close 4401)."""


class PermissionDenied(AssistantError):
    """The token's role may not do this (HTTP 403 / close 4403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role


ANONYMOUS = Principal(subject="anonymous", role=Role.ADMIN)  # auth disabled: everything is allowed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()


def issue_token(secret: str, *, role: str, subject: str, ttl_s: int = 12 * 3600) -> str:
    """A signed token for ``subject`` with ``role``, valid for ``ttl_s`` seconds."""
    if not secret:
        raise InvalidInputError("no secret: set ASSISTANT_AUTH_SECRET to issue tokens")
    try:
        r = Role(role)
    except ValueError as e:
        raise InvalidInputError(f"unknown role {role!r}; expected one of {[x.value for x in Role]}") from e
    if not subject or len(subject) > 128:
        raise InvalidInputError("subject must be 1-128 characters (an agent or service id)")
    iat = int(time.time())
    payload = json.dumps({"sub": subject, "role": r.value, "iat": iat, "exp": iat + ttl_s}).encode()
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


def verify_token(secret: str, token: str, *, at: float | None = None) -> Principal:
    """The principal of a valid token; raise AuthError when it is malformed, forged or expired."""
    try:
        body, sig = token.split(".")
        payload = _unb64(body)
        given = _unb64(sig)
    except ValueError as e:
        raise AuthError("malformed token; get one with `assistant token issue`") from e
    if not hmac.compare_digest(given, _sign(secret, payload)):
        raise AuthError("token signature does not match this server's ASSISTANT_AUTH_SECRET")
    try:
        claims = json.loads(payload)
        role = Role(claims["role"])
        subject = str(claims["sub"])
        exp = float(claims["exp"])
    except (ValueError, KeyError, TypeError) as e:
        raise AuthError("token payload is not valid; issue a new token") from e
    if (time.time() if at is None else at) >= exp:
        raise AuthError("token expired; issue a new one with `assistant token issue`")
    return Principal(subject=subject, role=role)


def require(principal: Principal, *roles: Role) -> None:
    """Raise PermissionDenied unless the principal has one of ``roles`` (admin always passes)."""
    if principal.role is Role.ADMIN or principal.role in roles:
        return
    allowed = ", ".join(r.value for r in roles)
    raise PermissionDenied(f"role {principal.role.value!r} may not do this; needs one of: {allowed}, admin")


def authenticate(secret: str, token: str | None) -> Principal:
    """Auth disabled (empty secret): anonymous admin. Otherwise the token's principal or AuthError."""
    if not secret:
        return ANONYMOUS
    if not token:
        raise AuthError("authentication required: pass Authorization: Bearer <token> (or ?token= on sockets)")
    return verify_token(secret, token)
