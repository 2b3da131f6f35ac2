"""Bearer tokens are standard JWTs (pyjwt): role, subject, teams and expiry; forged or expired ones refused."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from assistant.auth import AuthError, Role, issue_token, verify_token
from assistant.cli import main
from assistant.errors import ConfigurationError, InvalidInputError
from assistant.settings import load_settings

SECRET = "unit-test-secret-0123456789abcdefgh"


def test_token_is_a_standard_jwt_with_role_subject_teams_expiry() -> None:
    tok = issue_token(
        SECRET, role="supervisor", subject="sup-1", teams=["billing", "fraud"], ttl_s=60, now=1000
    )
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["sub"] == "sup-1" and claims["role"] == "supervisor"
    assert claims["teams"] == ["billing", "fraud"]
    assert claims["exp"] == 1060 and claims["iat"] == 1000
    p = verify_token(SECRET, tok, at=1059)
    assert (p.role, p.subject, p.teams, p.expires_at) == (
        Role.SUPERVISOR,
        "sup-1",
        ("billing", "fraud"),
        1060,
    )


def test_token_expired_forged_or_alg_none_refused() -> None:
    tok = issue_token(SECRET, role="agent", subject="a", ttl_s=60, now=1000)
    with pytest.raises(AuthError, match="expired"):
        verify_token(SECRET, tok, at=1060)
    with pytest.raises(AuthError, match="signature"):
        verify_token("another-secret-0123456789abcdefghijkl", tok, at=1001)
    # A token that says "alg": "none" and makes itself admin.
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(
        json.dumps(
            {"sub": "x", "role": "admin", "iat": 1, "exp": 10**10, "iss": "callcenter-assistant"}
        ).encode()
    ).rstrip(b"=")
    with pytest.raises(AuthError):
        verify_token(SECRET, f"{header.decode()}.{body.decode()}.")
    with pytest.raises(AuthError):
        verify_token(SECRET, "junk")


def test_token_claims_must_be_valid() -> None:
    bad_role = jwt.encode(
        {"sub": "x", "role": "root", "iat": 1, "exp": 10**10, "iss": "callcenter-assistant"}, SECRET, "HS256"
    )
    with pytest.raises(AuthError, match="claims"):
        verify_token(SECRET, bad_role)
    no_exp = jwt.encode(
        {"sub": "x", "role": "admin", "iat": 1, "iss": "callcenter-assistant"}, SECRET, "HS256"
    )
    with pytest.raises(AuthError):
        verify_token(SECRET, no_exp)
    with pytest.raises(InvalidInputError):
        issue_token(SECRET, role="root", subject="x")
    with pytest.raises(InvalidInputError):
        issue_token(SECRET, role="agent", subject="")


def test_short_secret_refused() -> None:
    with pytest.raises(InvalidInputError, match="32"):
        issue_token("short", role="agent", subject="x")
    with pytest.raises(ConfigurationError, match="ASSISTANT_AUTH_SECRET"):
        load_settings(auth_secret="short")


def test_cli_token_issue_with_teams_and_ttl(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.settings import get_settings

    monkeypatch.setenv("ASSISTANT_AUTH_SECRET", SECRET)
    get_settings.cache_clear()
    try:
        code = main(
            [
                "token",
                "issue",
                "--role",
                "supervisor",
                "--subject",
                "sup-2",
                "--team",
                "billing,fraud",
                "--team",
                "vip",
                "--ttl",
                "120",
            ]
        )
    finally:
        get_settings.cache_clear()
    assert code == 0
    p = verify_token(SECRET, capsys.readouterr().out.strip())
    assert p.teams == ("billing", "fraud", "vip")
    assert p.expires_at is not None
