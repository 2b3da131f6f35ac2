"""Incident records: the SOP's fields, drafted from what the agent did and said; edits; Markdown and PDF."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from assistant.guidance.facts import AlertFact, CallFacts
from assistant.guidance.incident import (
    INCIDENT_FIELDS,
    IncidentEdit,
    apply_edit,
    draft_incident,
    needs_incident,
)
from assistant.guidance.policy import ProtocolPolicy, StagePolicy
from assistant.guidance.render import incident_markdown, incident_pdf


def test_incident_field_list_is_the_sops() -> None:
    assert [f.name for f in INCIDENT_FIELDS] == [
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
    ]
    assert all(f.label and f.description for f in INCIDENT_FIELDS)


def test_incident_abusive_demo_record(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    facts = demo("billing-dispute-abusive")
    facts = replace(facts, alerts=(AlertFact(seq=10, reason="abusive", level="high", acked_by=("sup-1",)),))
    assert needs_incident(facts, protocol_policy)
    r = draft_incident(facts, stage_policy, protocol_policy)
    assert r.date_time == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert r.duration_s == 114.3
    assert (r.agent.id, r.agent.name) == ("agent-7", "Sam")
    assert r.customer.name == "D. W." and r.customer.redacted
    assert r.customer.contact == "e-mail [EMAIL] (given at seq 4)"
    assert "dana" not in r.model_dump_json().lower()  # neither the name nor the address leaks
    assert [q.seq for q in r.quotes] == [8, 10, 12, 14]
    assert r.quotes[1].text == "Don't give me that script, you stupid idiot. Just give me my money back."
    assert "seq 10: \"Don't give me that script, you stupid idiot." in r.description
    # The agent's own lines, from the first abusive turn on, with what each one was.
    assert [(a.seq, a.kind) for a in r.actions_taken] == [
        (9, "redirect"),
        (11, "first_warning"),
        (13, "response"),
        (15, "de-escalation"),
        (17, "response"),
    ]
    assert (
        r.actions_taken[0].text
        == "I want to help you with this, and I can do that best if we focus on the refund."
    )
    assert r.warnings_given == ["first_warning"]
    # Nothing the system suggested is an action.
    assert all("suggested" not in a.text for a in r.actions_taken)
    assert r.supervisor_involved and r.supervisor.who == ["sup-1"] and r.supervisor.alerted_at_seq == 10
    assert r.follow_up == [
        "Supervisor reviews the call with the agent and confirms the agent was offered a break."
    ]


def test_incident_manager_demo_handover_is_supervisor_involvement(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    r = draft_incident(demo("manager-request"), stage_policy, protocol_policy)
    assert [(a.seq, a.kind) for a in r.actions_taken] == [
        (7, "de-escalation"),
        (9, "response"),
        (11, "handover"),
    ]
    assert r.supervisor_involved and r.supervisor.handover_seq == 11 and r.supervisor.who == []
    assert r.customer.name is None and r.customer.contact == "phone [PHONE] (given at seq 4)"
    assert "asked for a supervisor or manager on 3 turn(s)" in r.description
    assert r.warnings_given == []


def test_incident_calm_call_needs_none(
    demo: Callable[..., CallFacts], protocol_policy: ProtocolPolicy
) -> None:
    assert not needs_incident(demo("calm-call"), protocol_policy)


def test_incident_customer_name_modes(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    facts = demo("billing-dispute-abusive")
    full = draft_incident(facts, stage_policy, protocol_policy, customer_name="full")
    withheld = draft_incident(facts, stage_policy, protocol_policy, customer_name="withheld")
    assert (full.customer.name, full.customer.redacted) == ("Dana Whitfield", False)
    assert withheld.customer.name == "[NAME]"


def test_incident_edit_changes_only_editable_fields(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    r = draft_incident(demo("billing-dispute-abusive"), stage_policy, protocol_policy)
    at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    edited = apply_edit(
        r,
        IncidentEdit(follow_up=["Call the customer back about R-2291."], status="reviewed"),
        by="sup-1",
        at=at,
    )
    assert edited.follow_up == ["Call the customer back about R-2291."] and edited.status == "reviewed"
    assert edited.actions_taken == r.actions_taken and edited.quotes == r.quotes
    assert [(e.by, e.fields) for e in edited.edits] == [("sup-1", ["follow_up", "status"])]
    with pytest.raises(ValidationError):
        IncidentEdit.model_validate({"actions_taken": []})  # the call's facts are not editable


def test_incident_markdown_and_pdf_follow_the_field_list(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    r = draft_incident(demo("billing-dispute-abusive"), stage_policy, protocol_policy)
    md = incident_markdown(r)
    positions = [
        md.index(f"## {f.label}\n") if f"## {f.label}\n" in md else md.index(f"**{f.label}**")
        for f in INCIDENT_FIELDS
    ]
    assert positions == sorted(positions)
    assert "**Duration**: 114 s" in md
    assert "**Agent**: Sam (ID agent-7)" in md
    assert "- seq 11 [FIRST WARNING]: \"I'm here to help, but I can't continue" in md
    assert "IncidentField" not in md and "object at 0x" not in md
    pdf = incident_pdf(r)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 1500


def test_incident_from_a_stored_call_record(
    stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    """A stored call (store records) drafts a plain-JSON record whose Markdown walks the field list."""
    import json

    from assistant.guidance.facts import facts_from_record
    from assistant.store.records import AckRecord, AlertRecord, CallRecord, ChunkRecord, FlagRecord

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    chunk = ChunkRecord(seq=1, speaker="customer", text="you useless idiot", call_ts=2.0, received_at=now)
    record = CallRecord(
        id="c-1",
        status="ended",
        agent="agent-7",
        started_at=now,
        updated_at=now,
        ended_at=now,
        last_seq=2,
        severity=0.5,
        severity_level="medium",
        peak_severity=0.5,
        peak_level="medium",
        transcript=[
            chunk,
            ChunkRecord(
                seq=2, speaker="agent", text="I'm sorry you feel that way.", call_ts=5.0, received_at=now
            ),
        ],
        flags=[
            FlagRecord(
                seq=1, labels=["insult"], scores={"insult": 0.9}, severity=0.5, level="medium", created_at=now
            )
        ],
        alerts=[
            AlertRecord(
                id="a1",
                call_id="c-1",
                episode=1,
                seq=1,
                reason="abusive",
                level="high",
                severity=0.7,
                labels=["insult"],
                text="you useless idiot",
                created_at=now,
                updated_at=now,
                acks=[AckRecord(subject="sup-1", created_at=now)],
            )
        ],
    )
    facts = facts_from_record(record)
    assert [t.labels for t in facts.turns] == [("insult",), ()]
    r = draft_incident(facts, stage_policy, protocol_policy)
    data = json.loads(r.model_dump_json())
    assert data["date_time"].startswith("2026-01-02T03:04:05") and data["duration_s"] == 3.0
    assert data["agent"] == {"id": "agent-7", "name": None}
    assert data["actions_taken"] == [
        {"seq": 2, "ts": 5.0, "kind": "de-escalation", "text": "I'm sorry you feel that way."}
    ]
    assert data["supervisor_involved"] is True and data["supervisor"]["who"] == ["sup-1"]
    assert "# Incident report: call c-1" in incident_markdown(r)
