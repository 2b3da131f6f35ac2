"""`assistant token issue --role ROLE --subject ID [--team T ...] [--ttl SECONDS]`: print a signed JWT.

Needs ASSISTANT_AUTH_SECRET (the same value as the server's, at least 32 bytes). Roles: source (streams
chunks), agent (the calls assigned to them, feedback), supervisor (alerts, their teams' calls, incident
reports), trainer (redacted records, feedback), admin (everything). ``--team`` (repeatable): the teams a
supervisor oversees or an agent belongs to.
"""

from __future__ import annotations

import argparse

from assistant.auth import Role


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="issue bearer tokens (needs ASSISTANT_AUTH_SECRET)", description=__doc__)
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    issue = tsub.add_parser("issue", help="print a signed token (a JWT)", description=__doc__)
    issue.add_argument("--role", required=True, choices=[r.value for r in Role])
    issue.add_argument("--subject", required=True, help="who the token is for: an agent id, a service name")
    issue.add_argument(
        "--team",
        action="append",
        default=[],
        metavar="TEAM",
        help="a team the subject belongs to or oversees (repeat for several; comma-separated also works)",
    )
    issue.add_argument(
        "--ttl", type=int, default=None, help="lifetime in seconds (default: ASSISTANT_TOKEN_TTL_S)"
    )
    issue.set_defaults(handler=_issue)


def _issue(args: argparse.Namespace) -> int:
    from assistant.auth import issue_token
    from assistant.errors import InvalidInputError
    from assistant.settings import get_settings

    settings = get_settings()
    if not settings.auth_secret:
        raise InvalidInputError(
            "ASSISTANT_AUTH_SECRET is not set; set it to the server's secret to issue tokens"
        )
    ttl = args.ttl if args.ttl is not None else settings.token_ttl_s
    if ttl < 1:
        raise InvalidInputError(f"--ttl must be >= 1 second, got {ttl}")
    teams = [t for value in args.team for t in value.split(",")]
    print(issue_token(settings.auth_secret, role=args.role, subject=args.subject, teams=teams, ttl_s=ttl))
    return 0
