"""The incident report of a call, drafted from its record over the fields of the SOP "Documenting an incident".

The field list is ``assistant.knowledge.incident.INCIDENT_FIELDS`` (kept in step with the SOP by a test); each
field has one drafter here. JSON with ``build_report``, Markdown with ``to_markdown``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from assistant.errors import ConfigurationError
from assistant.knowledge.incident import incident_fields
from assistant.store.records import CallRecord


def _fmt(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt is not None else "-"


def _when(call: CallRecord) -> dict[str, Any]:
    duration = (call.ended_at - call.started_at).total_seconds() if call.ended_at is not None else None
    return {
        "date_time": _fmt(call.started_at),
        "duration": f"{duration:.0f} s" if duration is not None else "call still live",
    }


def _agent(call: CallRecord) -> dict[str, Any]:
    return {"agent": call.agent or "(agent name and ID)"}


def _customer(call: CallRecord) -> dict[str, Any]:
    return {"customer": "(customer name and contact details from the account; redacted in this record)"}


def _description(call: CallRecord) -> dict[str, Any]:
    by_seq = {c.seq: c for c in call.transcript}
    described = (
        f"{len(call.flags)} flagged customer utterance(s); labels: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(call.flag_counts.items()))
        if call.flags
        else "No red flags were raised on this call."
    )
    quotes = [
        {"seq": f.seq, "labels": f.labels, "text": by_seq[f.seq].text if f.seq in by_seq else ""}
        for f in call.flags
    ]
    timeline = [
        {"seq": f.seq, "labels": f.labels, "severity": f.severity, "level": f.level} for f in call.flags
    ]
    return {
        "description": described,
        "quotes": quotes,
        "labels_and_severity": {
            "peak": {"score": call.peak_severity, "level": call.peak_level},
            "final": {"score": call.severity, "level": call.severity_level},
            "timeline": timeline,
        },
    }


def _actions(call: CallRecord) -> dict[str, Any]:
    actions: list[str] = []
    shown: tuple[str, int] | None = None
    for s in call.suggestions:
        # The sidebar re-sends the current step with every chunk; the report lists each step once, when shown.
        if s.rank == 0 and (s.procedure_id, s.step_index) != shown:
            shown = (s.procedure_id, s.step_index)
            actions.append(f"seq {s.seq}: suggested {s.procedure_title} step {s.step_index + 1}: {s.step}")
    for a in call.alerts:
        actions.append(f"{_fmt(a.created_at)}: supervisor alert ({a.reason}, {a.level}) at seq {a.seq}")
        for ack in a.acks:
            actions.append(f"{_fmt(ack.created_at)}: alert acknowledged by {ack.subject}")
    agent_turns = [c for c in call.transcript if c.speaker == "agent"]
    warned = any("can't continue" in c.text.lower() or "end this call" in c.text.lower() for c in agent_turns)
    return {
        "actions_taken": actions + (["agent gave a warning about abusive language"] if warned else []),
        "outcome": f"call {call.status}" + (f" ({call.end_reason})" if call.end_reason else ""),
    }


def _supervisor(call: CallRecord) -> dict[str, Any]:
    supervisors = sorted({ack.subject for a in call.alerts for ack in a.acks})
    return {
        "supervisor_involvement": (
            f"alerted {len(call.alerts)} time(s); acknowledged by {', '.join(supervisors)}"
            if supervisors
            else (f"alerted {len(call.alerts)} time(s); not acknowledged" if call.alerts else "none")
        )
    }


def _follow_up(call: CallRecord) -> dict[str, Any]:
    return {
        "follow_up": "(follow-up agreed or needed; legal review for threats)"
        if call.alerts
        else "(none recorded)"
    }


# How each field of the SOP's list is drafted from the record (the keys each drafter fills are the report's).
DRAFTERS: dict[str, Callable[[CallRecord], dict[str, Any]]] = {
    "call_datetime": _when,
    "agent": _agent,
    "customer": _customer,
    "description": _description,
    "actions_taken": _actions,
    "supervisor": _supervisor,
    "follow_up": _follow_up,
}


def build_report(call: CallRecord) -> dict[str, Any]:
    """A structured draft: every field of the incident SOP filled from the record, quotes redacted.

    ``fields`` lists the SOP's fields (name, label, description, required) in report order.
    """
    report: dict[str, Any] = {"call_id": call.id}
    for f in incident_fields():
        draft = DRAFTERS.get(f.name)
        if draft is None:
            raise ConfigurationError(f"incident field {f.name!r} has no drafter in assistant.calls.incident")
        report.update(draft(call))
    report["fields"] = [
        {"name": f.name, "label": f.label, "description": f.description, "required": f.required}
        for f in incident_fields()
    ]
    return report


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Incident report: call {report['call_id']}", ""]
    for key in ("date_time", "duration", "agent", "customer", "description"):
        lines.append(f"- **{key.replace('_', ' ').capitalize()}**: {report[key]}")
    lines += ["", "## Quotes (redacted)", ""]
    lines += [f'- seq {q["seq"]} ({", ".join(q["labels"])}): "{q["text"]}"' for q in report["quotes"]] or [
        "- none"
    ]
    sev = report["labels_and_severity"]
    lines += [
        "",
        "## Labels and severity",
        "",
        f"Peak {sev['peak']['level']} ({sev['peak']['score']:.2f}), final {sev['final']['level']} "
        f"({sev['final']['score']:.2f}).",
        "",
    ]
    lines += [
        f"- seq {t['seq']}: {', '.join(t['labels'])} -> {t['level']} ({t['severity']:.2f})"
        for t in sev["timeline"]
    ]
    lines += ["", "## Actions taken", ""]
    lines += [f"- {a}" for a in report["actions_taken"]] or ["- none"]
    lines += [
        "",
        f"- **Supervisor involvement**: {report['supervisor_involvement']}",
        f"- **Outcome**: {report['outcome']}",
        f"- **Follow-up**: {report['follow_up']}",
        "",
    ]
    return "\n".join(lines)
