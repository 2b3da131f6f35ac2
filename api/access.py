"""Who may read which call, the trainer's view of a record, and the audit log of reads.

Rules (docs/protocol.md, "Roles"):

* ``admin`` reads every call;
* an ``agent`` reads only the calls assigned to them: the ``?agent=`` the source gave when it opened the call
  equals the token's subject;
* a ``supervisor`` reads the calls of agents in their teams: ``ASSISTANT_AGENT_TEAMS`` maps agents to teams and
  the token carries the supervisor's (``token issue --team``; ``*`` is every team). Without that setting, teams
  are not used and every supervisor reads every call;
* a ``trainer`` reads every call, redacted, and without who handled it: agent and supervisor ids become stable
  pseudonyms (``agent-3fa9c1``).

Every read, allowed or not, is written to the ``assistant.audit`` log (INFO): who, their role, which call, what,
and whether it was allowed.

Example:
    >>> from fastapi import HTTPException, Request

from assistant.auth import Principal, Role
    >>> may_read(Principal("agent-7", Role.AGENT), "agent-7", {})
    True
    >>> may_read(Principal("sup-1", Role.SUPERVISOR, teams=("fraud",)), "agent-7", {"agent-7": ["billing"]})
    False
"""

from __future__ import annotations

import hashlib
import logging
from typing import TypeVar

from fastapi import HTTPException, Request

from assistant.auth import Principal, Role
from assistant.calls.service import CallService
from assistant.store.records import CallRecord, CallSummary, FeedbackRecord

audit_log = logging.getLogger("assistant.audit")

Summary = TypeVar("Summary", CallSummary, CallRecord)


def may_read(principal: Principal, agent: str | None, agent_teams: dict[str, list[str]]) -> bool:
    """Whether ``principal`` may read a call handled by ``agent`` (see the module's rules)."""
    role = principal.role
    if role in (Role.ADMIN, Role.TRAINER):
        return True
    if role is Role.AGENT:
        return agent is not None and agent == principal.subject
    if role is Role.SUPERVISOR:
        if not agent_teams or "*" in principal.teams:
            return True
        return bool(set(agent_teams.get(agent or "", ())) & set(principal.teams))
    return False


async def call_agent(svc: CallService, call_id: str) -> tuple[bool, str | None]:
    """(the call exists, its agent): from the live call, else from the store."""
    live = svc.calls.get(call_id)
    if live is not None and live.agent is not None:
        return True, live.agent
    if svc.store is not None:
        await svc.flush()
        exists, agent = await svc.store.call_agent(call_id)
        if exists:
            return True, agent
    return live is not None, None


async def alert_call_id(svc: CallService, alert_id: str) -> str | None:
    """The call an alert belongs to, or None for an unknown alert."""
    state = svc.alerts.index.get(alert_id)
    if state is not None:
        return str(state.data.get("call_id"))
    if svc.store is not None:
        rec = await svc.store.get_alert(alert_id)
        return rec.call_id if rec is not None else None
    return None


def audit(principal: Principal, call_id: str | None, action: str, *, allowed: bool) -> None:
    audit_log.info(
        "call read" if allowed else "call read refused",
        extra={
            "subject": principal.subject,
            "role": principal.role.value,
            "call_id": call_id,
            "action": action,
            "allowed": allowed,
        },
    )


async def check_call_access(request: Request, principal: Principal, call_id: str, action: str) -> None:
    """403 unless ``principal`` may read the call (see api/access.py); every attempt is audited. An unknown
    call passes here (the read then answers 404)."""
    exists, agent = await call_agent(request.app.state.service, call_id)
    allowed = not exists or may_read(principal, agent, request.app.state.settings.agent_teams)
    audit(principal, call_id, action, allowed=allowed)
    if not allowed:
        raise HTTPException(
            403,
            detail=f"call {call_id} is not assigned to {principal.subject!r} (agents read their own calls, "
            "supervisors their teams' calls)",
        )


def pseudonym(name: str | None, prefix: str) -> str | None:
    """A stable stand-in for a person's id (trainers see who did what, not who they are)."""
    if name is None:
        return None
    return f"{prefix}-{hashlib.blake2b(name.encode(), digest_size=3, key=b'assistant-trainer').hexdigest()}"


def for_trainer(record: Summary) -> Summary:
    """The record with people's ids replaced by pseudonyms (the text is already redacted when stored)."""
    out = record.model_copy(deep=True)
    out.agent = pseudonym(out.agent, "agent")
    if isinstance(out, CallRecord):
        for alert in out.alerts:
            alert.acked_by = pseudonym(alert.acked_by, "supervisor")
            for ack in alert.acks:
                ack.subject = pseudonym(ack.subject, "supervisor") or ""
        out.feedback = [feedback_for_trainer(f) for f in out.feedback]
    return out


def feedback_for_trainer(item: FeedbackRecord) -> FeedbackRecord:
    out = item.model_copy()
    out.subject = pseudonym(out.subject, "user") or ""
    return out
