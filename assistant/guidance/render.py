"""Incident records as Markdown and as PDF, both walking the one field list (``INCIDENT_FIELDS``).

PDF with fpdf2: pure Python (no system libraries, so ``make run`` stays one command on a fresh machine), small,
actively maintained (py-pdf), and enough for a text report with headings and wrapped paragraphs. ReportLab
would also do but is a larger toolkit (its own layout engine, charts) that this report does not need.

Example:
    >>> from assistant.guidance.incident import AgentInfo, CustomerInfo, IncidentRecord
    >>> r = IncidentRecord(call_id="c1", agent=AgentInfo(id="agent-7"), customer=CustomerInfo(),
    ...                    description="-", supervisor_involved=False)
    >>> incident_markdown(r).splitlines()[0]
    '# Incident report: call c1'
    >>> incident_pdf(r)[:5]
    b'%PDF-'
"""

from __future__ import annotations

from assistant.guidance.incident import INCIDENT_FIELDS, Action, IncidentRecord, Quote

_KIND = {
    "redirect": "REDIRECT",
    "first_warning": "FIRST WARNING",
    "final_warning": "FINAL WARNING",
    "end_call": "CALL ENDED",
    "de-escalation": "de-escalation",
    "handover": "handover to supervisor",
    "response": "response",
}


def _value_lines(record: IncidentRecord, name: str) -> list[str]:
    """A field as plain lines (shared by Markdown and PDF)."""
    if name == "date_time":
        return [record.date_time.strftime("%Y-%m-%d %H:%M:%S UTC") if record.date_time else "(not recorded)"]
    if name == "duration_s":
        return [f"{record.duration_s:.0f} s" if record.duration_s is not None else "(call still live)"]
    if name == "agent":
        a = record.agent
        return [f"{a.name or '(name not given)'} (ID {a.id or 'unknown'})"]
    if name == "customer":
        c = record.customer
        suffix = " (redacted)" if c.redacted else ""
        return [
            f"Name: {c.name or '(not given)'}{suffix}",
            f"Contact: {c.contact or '(not given on the call)'}",
        ]
    if name == "description":
        return [record.description]
    if name == "quotes":
        return [_quote(q) for q in record.quotes] or ["(none)"]
    if name == "actions_taken":
        return [_action(a) for a in record.actions_taken] or ["(none)"]
    if name == "warnings_given":
        return [", ".join(w.replace("_", " ") for w in record.warnings_given) or "(none)"]
    if name == "supervisor_involved":
        return ["yes" if record.supervisor_involved else "no"]
    if name == "supervisor":
        s = record.supervisor
        lines = [f"Who: {', '.join(s.who) or '(no acknowledgement recorded)'}"]
        if s.alerted_at_seq is not None:
            reasons = f" ({', '.join(s.alert_reasons)})" if s.alert_reasons else ""
            lines.append(f"Alerted at seq {s.alerted_at_seq}{reasons}")
        if s.handover_seq is not None:
            lines.append(f"Call handed over to a supervisor at seq {s.handover_seq}")
        return lines
    if name == "follow_up":
        return list(record.follow_up) or ["(none)"]
    raise KeyError(f"no rendering for incident field {name!r}")


def _quote(q: Quote) -> str:
    return f'seq {q.seq} ({", ".join(q.labels)}): "{q.text}"'


def _action(a: Action) -> str:
    return f'seq {a.seq} [{_KIND.get(a.kind, a.kind)}]: "{a.text}"'


_LISTS = {"quotes", "actions_taken", "follow_up", "customer", "supervisor"}


def incident_markdown(record: IncidentRecord) -> str:
    """The record as Markdown, fields in the SOP's order."""
    out = [f"# Incident report: call {record.call_id}", "", f"Status: {record.status}", ""]
    for f in INCIDENT_FIELDS:
        lines = _value_lines(record, f.name)
        if f.name in _LISTS:
            out += [f"## {f.label}", ""] + [f"- {line}" for line in lines] + [""]
        else:
            out += [f"**{f.label}**: {lines[0]}", ""]
    if record.edits:
        out += ["## Edits", ""]
        out += [f"- {e.at:%Y-%m-%d %H:%M} UTC by {e.by}: {', '.join(e.fields)}" for e in record.edits]
        out.append("")
    return "\n".join(out)


def _latin1(text: str) -> str:
    # The core PDF fonts are Latin-1; typographic quotes and dashes are mapped, anything else replaced.
    table = str.maketrans(
        {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
    )
    return text.translate(table).encode("latin-1", "replace").decode("latin-1")


def incident_pdf(record: IncidentRecord) -> bytes:
    """The record as a PDF document (A4, fields in the SOP's order)."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(f"Incident report: call {record.call_id}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(
        0, 9, _latin1(f"Incident report: call {record.call_id}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 5, _latin1(f"Status: {record.status}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for f in INCIDENT_FIELDS:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 11)
        pdf.multi_cell(0, 6, _latin1(f.label), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", "", 10)
        for line in _value_lines(record, f.name):
            prefix = "- " if f.name in _LISTS else ""
            pdf.multi_cell(0, 5, _latin1(prefix + line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if record.edits:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 11)
        pdf.multi_cell(0, 6, "Edits", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", "", 10)
        for e in record.edits:
            line = f"- {e.at:%Y-%m-%d %H:%M} UTC by {e.by}: {', '.join(e.fields)}"
            pdf.multi_cell(0, 5, _latin1(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
