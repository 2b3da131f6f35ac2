"""The incident report of a call, drafted from its record (fields of the SOP "Documenting an incident")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from assistant.store.records import CallRecord

DEFAULT_FIELDS: tuple[str, ...] = (
    "date_time",
    "duration",
    "call_id",
    "agent",
    "customer",
    "description",
    "labels_and_severity",
    "actions_taken",
    "supervisor_involvement",
    "outcome",
    "follow_up",
)


def incident_fields() -> tuple[str, ...]:
    """The knowledge base's list of incident fields when it provides one, else the standard list."""
    try:
        from assistant.knowledge import incident_fields as kb_fields
    except ImportError:
        return DEFAULT_FIELDS
    try:
        fields = tuple(str(f) for f in kb_fields())
    except Exception:
        return DEFAULT_FIELDS
    return fields or DEFAULT_FIELDS


def _fmt(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt is not None else "-"


def build_report(call: CallRecord) -> dict[str, Any]:
    """A structured draft: every field filled from the record, quotes from the redacted transcript."""
    by_seq = {c.seq: c for c in call.transcript}
    quotes = [
        {"seq": f.seq, "labels": f.labels, "text": by_seq[f.seq].text if f.seq in by_seq else ""}
        for f in call.flags
    ]
    timeline = [
        {"seq": f.seq, "labels": f.labels, "severity": f.severity, "level": f.level} for f in call.flags
    ]
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
    duration = (call.ended_at - call.started_at).total_seconds() if call.ended_at is not None else None
    supervisors = sorted({ack.subject for a in call.alerts for ack in a.acks})
    described = (
        f"{len(call.flags)} flagged customer utterance(s); labels: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(call.flag_counts.items()))
        if call.flags
        else "No red flags were raised on this call."
    )
    return {
        "call_id": call.id,
        "date_time": _fmt(call.started_at),
        "duration": f"{duration:.0f} s" if duration is not None else "call still live",
        "agent": call.agent or "(agent name and ID)",
        "customer": "(customer name and contact details from the account; redacted in this record)",
        "description": described,
        "quotes": quotes,
        "labels_and_severity": {
            "peak": {"score": call.peak_severity, "level": call.peak_level},
            "final": {"score": call.severity, "level": call.severity_level},
            "timeline": timeline,
        },
        "actions_taken": actions + (["agent gave a warning about abusive language"] if warned else []),
        "supervisor_involvement": (
            f"alerted {len(call.alerts)} time(s); acknowledged by {', '.join(supervisors)}"
            if supervisors
            else (f"alerted {len(call.alerts)} time(s); not acknowledged" if call.alerts else "none")
        ),
        "outcome": f"call {call.status}" + (f" ({call.end_reason})" if call.end_reason else ""),
        "follow_up": "(follow-up agreed or needed; legal review for threats)"
        if call.alerts
        else "(none recorded)",
        "fields": list(incident_fields()),
    }


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
