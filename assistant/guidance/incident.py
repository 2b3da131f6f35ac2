"""Incident records with the SOP's one field list, drafted from what happened on the call.

The SOP "Documenting incidents" asks for: date, time and duration of the call; the agent's name and ID; the
customer's name and contact details; a description of the customer's behaviour; the actions the agent took to
de-escalate or end the call (with the warnings given); the involvement of a supervisor; the follow-up.
``IncidentRecord`` is that list, and ``INCIDENT_FIELDS`` (derived from it) is the one place the report's
fields, labels and order are written down: the JSON, Markdown and PDF renderings and the knowledge base's
incident-documentation SOP all follow it.

``actions_taken`` lists what the agent *did and said*, from the first reportable customer turn on: each agent
turn with its seq, marked as a protocol step (``redirect``, ``first_warning``, ...) when it carried one out,
``de-escalation`` when it matches the policy's de-escalation lines, ``handover`` when it hands the call to a
supervisor, else ``response``. Suggestions the system showed are not actions.

Example:
    >>> [f.name for f in INCIDENT_FIELDS][:4]
    ['date_time', 'duration_s', 'agent', 'customer']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from assistant.guidance.facts import CallFacts, replay_trackers
from assistant.guidance.policy import ProtocolPolicy, StagePolicy, first_match, matches

CustomerNameMode = Literal["initials", "full", "withheld"]


class AgentInfo(BaseModel):
    id: str | None = Field(default=None, description="the agent's id, from the call's source or token")
    name: str | None = Field(default=None, description="the name the agent gave in the greeting")


class CustomerInfo(BaseModel):
    name: str | None = Field(default=None, description="as given on the call; initials unless configured")
    contact: str | None = Field(default=None, description="contact details given on the call (redacted)")
    redacted: bool = True


class Quote(BaseModel):
    seq: int
    ts: float | None = None
    labels: list[str]
    text: str = Field(description="the customer's words (redacted)")


class Action(BaseModel):
    seq: int
    ts: float | None = None
    kind: str = Field(description="a protocol step id, de-escalation, handover or response")
    text: str = Field(description="the agent's words (redacted)")


class Supervisor(BaseModel):
    who: list[str] = Field(default_factory=list, description="supervisors who acknowledged or took the call")
    alerted_at_seq: int | None = None
    alert_reasons: list[str] = Field(default_factory=list)
    handover_seq: int | None = None


class Edit(BaseModel):
    by: str
    at: datetime
    fields: list[str]


class IncidentRecord(BaseModel):
    """One incident report (``GET /v1/calls/{call_id}/incident-report``); supervisors edit it."""

    call_id: str
    date_time: datetime | None = Field(
        default=None, title="Date and time", description="when the call began (UTC)"
    )
    duration_s: float | None = Field(
        default=None, title="Duration", description="length of the call in seconds"
    )
    agent: AgentInfo = Field(title="Agent", description="the agent's name and ID")
    customer: CustomerInfo = Field(title="Customer", description="the customer's name and contact details")
    description: str = Field(title="Description", description="the customer's behaviour")
    quotes: list[Quote] = Field(
        default_factory=list, title="Quotes", description="the customer's words, with seq"
    )
    actions_taken: list[Action] = Field(
        default_factory=list,
        title="Actions taken",
        description="the agent's own responses, de-escalation lines and warnings, with seq",
    )
    warnings_given: list[str] = Field(
        default_factory=list, title="Warnings given", description="protocol steps the agent carried out"
    )
    supervisor_involved: bool = Field(
        title="Supervisor involvement", description="whether a supervisor or manager took part"
    )
    supervisor: Supervisor = Field(
        default_factory=Supervisor, title="Supervisor details", description="who, when alerted, handover"
    )
    follow_up: list[str] = Field(
        default_factory=list, title="Follow-up", description="actions agreed or needed"
    )
    status: Literal["draft", "reviewed"] = "draft"
    edits: list[Edit] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IncidentField:
    """One field of the report, in report order (the SOP's list)."""

    name: str
    label: str
    description: str


# The fields the SOP lists, in its order; the rest of the model (call_id, status, edits) is bookkeeping.
_SOP_ORDER = (
    "date_time",
    "duration_s",
    "agent",
    "customer",
    "description",
    "quotes",
    "actions_taken",
    "warnings_given",
    "supervisor_involved",
    "supervisor",
    "follow_up",
)
INCIDENT_FIELDS: tuple[IncidentField, ...] = tuple(
    IncidentField(
        name,
        IncidentRecord.model_fields[name].title or name,
        IncidentRecord.model_fields[name].description or "",
    )
    for name in _SOP_ORDER
)


def incident_fields() -> tuple[IncidentField, ...]:
    """The incident report's fields, in report order (the SOP's list).

    Example:
        >>> [f.name for f in incident_fields()][:3]
        ['date_time', 'duration_s', 'agent']
    """
    return INCIDENT_FIELDS


# What a supervisor may change (PATCH); the call's facts (times, quotes, agent turns) stay as recorded.
EDITABLE_FIELDS: frozenset[str] = frozenset(
    {"customer", "description", "supervisor_involved", "supervisor", "follow_up", "status"}
)


class IncidentEdit(BaseModel):
    """A supervisor's changes to a drafted record (every field optional; unknown fields are refused)."""

    model_config = {"extra": "forbid"}

    customer: CustomerInfo | None = None
    description: str | None = Field(default=None, min_length=1, max_length=20_000)
    supervisor_involved: bool | None = None
    supervisor: Supervisor | None = None
    follow_up: list[str] | None = Field(default=None, max_length=50)
    status: Literal["draft", "reviewed"] | None = None


def apply_edit(record: IncidentRecord, edit: IncidentEdit, *, by: str, at: datetime) -> IncidentRecord:
    """A copy of ``record`` with the supervisor's changes and an entry in ``edits``."""
    changes = edit.model_dump(exclude_unset=True)
    if not changes:
        return record
    updated = record.model_copy(update={k: getattr(edit, k) for k in changes})
    updated.edits = [*record.edits, Edit(by=by, at=at, fields=sorted(changes))]
    return updated


def needs_incident(facts: CallFacts, protocol: ProtocolPolicy) -> bool:
    """A record is due when the customer was flagged with a reportable label or a supervisor alert fired."""
    report = set(protocol.incident.report_labels)
    return bool(facts.alerts) or any(set(t.labels) & report for t in facts.turns if t.speaker == "customer")


def _initials(name: str) -> str:
    return " ".join(f"{part[0]}." for part in name.split() if part)


def _customer(
    facts: CallFacts, stages: StagePolicy, identity_reply: int | None, mode: CustomerNameMode
) -> CustomerInfo:
    name: str | None = None
    candidates = [t for t in facts.turns if t.speaker == "customer"]
    if identity_reply is not None:  # the answer to "can I confirm your name" is the likeliest place
        candidates.sort(key=lambda t: t.seq != identity_reply)
    for t in candidates:
        m = first_match(stages.names.customer, t.text)
        if m is not None:
            name = m.group("name")
            break
    contacts: list[str] = []
    for t in facts.turns:
        if t.speaker != "customer":
            continue
        for token, what in (("[EMAIL]", "e-mail"), ("[PHONE]", "phone")):
            if token in t.text and what not in {c.split(" ")[0] for c in contacts}:
                contacts.append(f"{what} {token} (given at seq {t.seq})")
    if name is not None and mode != "full":
        name = _initials(name) if mode == "initials" else "[NAME]"
    return CustomerInfo(name=name, contact="; ".join(contacts) or None, redacted=mode != "full")


def _agent(facts: CallFacts, stages: StagePolicy) -> AgentInfo:
    name = None
    for t in facts.turns:
        if t.speaker == "agent":
            m = first_match(stages.names.agent, t.text)
            if m is not None:
                name = m.group("name")
            break  # only the greeting names the agent
    return AgentInfo(id=facts.agent, name=name)


def draft_incident(
    facts: CallFacts,
    stages: StagePolicy,
    protocol: ProtocolPolicy,
    *,
    customer_name: CustomerNameMode = "initials",
) -> IncidentRecord:
    """The incident record of a call, drafted from its turns, flags and alerts."""
    st, pt = replay_trackers(facts, stages, protocol)
    pos = pt.position()
    report = set(protocol.incident.report_labels)
    turns = sorted(facts.turns, key=lambda t: t.seq)
    quotes = [
        Quote(seq=t.seq, ts=t.ts, labels=sorted(set(t.labels) & report), text=t.text)
        for t in turns
        if t.speaker == "customer" and set(t.labels) & report
    ]
    start = quotes[0].seq if quotes else (min(a.seq for a in facts.alerts) if facts.alerts else None)
    given = {s.given_seq: s.step for s in pos.steps if s.given_seq is not None}
    actions: list[Action] = []
    handover_seq: int | None = None
    for t in turns:
        if t.speaker != "agent" or start is None or t.seq < start:
            continue
        if t.seq in given:
            kind = given[t.seq]
        elif matches(protocol.incident.handover, t.text):
            kind = "handover"
        elif matches(protocol.de_escalation, t.text):
            kind = "de-escalation"
        else:
            kind = "response"
        if kind == "handover" and handover_seq is None:
            handover_seq = t.seq
        actions.append(Action(seq=t.seq, ts=t.ts, kind=kind, text=t.text))

    counts = facts.label_counts()
    parts: list[str] = []
    abusive = [t for t in turns if t.speaker == "customer" and set(t.labels) & set(protocol.abusive_labels)]
    if abusive:
        parts.append(
            f"The customer used abusive language on {len(abusive)} turn(s) "
            f"(seq {', '.join(str(t.seq) for t in abusive)}); severity reached "
            f"{pos.severity_title or pos.severity} under the abuse protocol."
        )
        if pos.reached:
            parts.append(f"Protocol steps reached: {', '.join(pos.reached)}.")
        if pos.supervisor_alerted:
            parts.append(
                f"Supervisors were alerted at seq {pos.supervisor_alert_seq} ({pos.supervisor_alert_reason})."
            )
    for label, what in (
        ("threat", "threatened harm"),
        ("legal_threat", "threatened legal action"),
        ("escalation_request", "asked for a supervisor or manager"),
    ):
        if counts.get(label):
            parts.append(f"The customer {what} on {counts[label]} turn(s).")
    if pos.ended_by_agent_seq is not None:
        parts.append(f"The agent ended the call at seq {pos.ended_by_agent_seq}.")
    elif facts.status == "ended":
        parts.append(f"The call ended ({facts.end_reason or 'normally'}).")
    if quotes:
        parts.append("Quotes: " + " ".join(f'seq {q.seq}: "{q.text}"' for q in quotes[:6]))
    description = " ".join(parts) or "No reportable behaviour was flagged on this call."

    who = sorted({s for a in facts.alerts for s in a.acked_by})
    supervisor = Supervisor(
        who=who,
        alerted_at_seq=min((a.seq for a in facts.alerts), default=pos.supervisor_alert_seq),
        alert_reasons=sorted({a.reason for a in facts.alerts}),
        handover_seq=handover_seq,
    )
    reached = set(pos.reached) | set(counts)
    follow_up = [f.action for f in protocol.incident.follow_up if f.when in reached]
    identity = st.state.steps.get("identity_verified")
    return IncidentRecord(
        call_id=facts.call_id,
        date_time=facts.started_at.astimezone(UTC) if facts.started_at is not None else None,
        duration_s=facts.handle_time_s,
        agent=_agent(facts, stages),
        customer=_customer(facts, stages, identity.reply_seq if identity else None, customer_name),
        description=description,
        quotes=quotes,
        actions_taken=actions,
        warnings_given=[
            s.step for s, d in zip(pos.steps, protocol.steps, strict=True) if s.given and d.warning
        ],
        supervisor_involved=bool(who) or handover_seq is not None,
        supervisor=supervisor,
        follow_up=follow_up,
    )
