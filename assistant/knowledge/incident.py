"""The fields of an incident report, as the incident-documentation SOP asks for them.

The service drafts incident reports from these; ``knowledge_base/incident-documentation.md`` lists the same
fields for agents (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IncidentField:
    """One field of an incident report."""

    name: str  # machine name, stable
    label: str  # as shown in the report and in the SOP
    description: str
    required: bool = True


INCIDENT_FIELDS: tuple[IncidentField, ...] = (
    IncidentField(
        "call_datetime", "Date, time and duration", "when the call took place and how long it lasted"
    ),
    IncidentField("agent", "Agent", "the agent's name and ID"),
    IncidentField("customer", "Customer", "the customer's name and contact details"),
    IncidentField(
        "description", "Description", "what happened: the customer's behaviour and the agent's responses"
    ),
    IncidentField(
        "actions_taken", "Actions taken", "de-escalation attempts, warnings, and whether the call was ended"
    ),
    IncidentField(
        "supervisor", "Supervisor involvement", "the supervisor or manager involved, if any", required=False
    ),
    IncidentField("follow_up", "Follow-up", "follow-up actions agreed or needed", required=False),
)


def incident_fields() -> tuple[IncidentField, ...]:
    """The incident report fields, in report order.

    Example:
        >>> [f.name for f in incident_fields()][:3]
        ['call_datetime', 'agent', 'customer']
    """
    return INCIDENT_FIELDS
