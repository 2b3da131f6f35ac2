"""Bearer tokens: standard JWTs (HS256, ``pyjwt``) with a role, checked only when ``ASSISTANT_AUTH_SECRET`` is set.

Claims: ``sub`` (who: an agent id, a service name), ``role`` (one of ``Role``), ``teams`` (the teams a
supervisor oversees or an agent belongs to; optional), ``iat``, ``exp`` and ``iss`` (``callcenter-assistant``).
Any JWT library can issue or read them with the same secret; ``exp`` is required.

Example:
    >>> secret = "s" * 32
    >>> tok = issue_token(secret, role="supervisor", subject="sup-7", teams=["billing"], ttl_s=60)
    >>> p = verify_token(secret, tok)
    >>> p.role.value, p.teams
    ('supervisor', ('billing',))
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import jwt

from assistant.errors import AssistantError, InvalidInputError

ISSUER = "callcenter-assistant"
ALGORITHM = "HS256"
# RFC 7518 3.2: an HS256 key must be at least as long as the hash; pyjwt warns below this.
MIN_SECRET_BYTES = 32


class Role(StrEnum):
    SOURCE = "source"  # the ASR/telephony side: streams chunks
    AGENT = "agent"  # reads the calls assigned to them, gives feedback
    SUPERVISOR = "supervisor"  # alerts, their teams' calls, incident reports
    TRAINER = "trainer"  # reads redacted records and feedback
    ADMIN = "admin"  # everything


class AuthError(AssistantError):
    """The request has no valid token (HTTP 401 / close 4401)."""


class PermissionDenied(AssistantError):
    """The token's role may not do this (HTTP 403 / close 4403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role
    teams: tuple[str, ...] = ()
    expires_at: float | None = None  # Unix time; None: never (auth disabled)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at


ANONYMOUS = Principal(subject="anonymous", role=Role.ADMIN)  # auth disabled: everything is allowed


def check_secret(secret: str) -> None:
    """Raise InvalidInputError when a non-empty secret is too short to sign HS256 tokens safely."""
    if secret and len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise InvalidInputError(
            f"ASSISTANT_AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )


def _names(values: Iterable[str], what: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    for v in out:
        if len(v) > 128 or not v.isprintable():
            raise InvalidInputError(f"{what} {v[:40]!r}: use 1-128 printable characters")
    return out


def issue_token(
    secret: str,
    *,
    role: str,
    subject: str,
    teams: Iterable[str] = (),
    ttl_s: int = 12 * 3600,
    now: float | None = None,
) -> str:
    """A signed JWT for ``subject`` with ``role`` (and ``teams``), valid for ``ttl_s`` seconds."""
    if not secret:
        raise InvalidInputError("no secret: set ASSISTANT_AUTH_SECRET to issue tokens")
    check_secret(secret)
    try:
        r = Role(role)
    except ValueError as e:
        raise InvalidInputError(f"unknown role {role!r}; expected one of {[x.value for x in Role]}") from e
    if not subject.strip():
        raise InvalidInputError("subject must be 1-128 characters (an agent or service id)")
    (sub,) = _names([subject], "subject")
    if ttl_s < 1:
        raise InvalidInputError(f"ttl must be >= 1 second, got {ttl_s}")
    iat = int(time.time() if now is None else now)
    claims: dict[str, object] = {"sub": sub, "role": r.value, "iat": iat, "exp": iat + ttl_s, "iss": ISSUER}
    team_list = _names(teams, "team")
    if team_list:
        claims["teams"] = list(team_list)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, *, at: float | None = None) -> Principal:
    """The principal of a valid token; raise AuthError when it is malformed, forged or expired."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # never "none", never an algorithm the token picks
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iat"], "verify_exp": False},
        )
    except jwt.InvalidSignatureError as e:
        raise AuthError("token signature does not match this server's ASSISTANT_AUTH_SECRET") from e
    except jwt.PyJWTError as e:
        raise AuthError(f"invalid token ({type(e).__name__}); get one with `assistant token issue`") from e
    try:
        role = Role(claims["role"])
        subject = str(claims["sub"])
        exp = float(claims["exp"])
        teams = claims.get("teams", [])
        if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
            raise TypeError("teams must be a list of strings")
    except (ValueError, KeyError, TypeError) as e:
        raise AuthError("token claims are not valid (role, sub, exp, teams); issue a new token") from e
    # Checked here rather than by pyjwt so that tests and long-lived sockets can pass their own clock.
    if (time.time() if at is None else at) >= exp:
        raise AuthError("token expired; issue a new one with `assistant token issue`")
    return Principal(subject=subject, role=role, teams=tuple(teams), expires_at=exp)


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
