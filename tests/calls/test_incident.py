"""The incident report is drafted over the one field list of the incident SOP, as plain JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from assistant.calls.incident import DRAFTERS, build_report, to_markdown
from assistant.knowledge.incident import incident_fields
from assistant.store.records import CallRecord


def _record() -> CallRecord:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return CallRecord(
        id="c-1",
        status="ended",
        agent="Dana",
        started_at=now,
        updated_at=now,
        ended_at=now,
        last_seq=0,
        severity=0.0,
        severity_level="none",
        peak_severity=0.0,
        peak_level="none",
    )


def test_every_sop_field_has_a_drafter_and_the_report_is_json() -> None:
    assert set(DRAFTERS) == {f.name for f in incident_fields()}
    report = build_report(_record())
    assert json.loads(json.dumps(report)) == report
    assert [f["name"] for f in report["fields"]] == [f.name for f in incident_fields()]
    assert all(isinstance(f["label"], str) and f["label"] for f in report["fields"])
    assert report["agent"] == "Dana" and report["date_time"] == "2026-01-02 03:04:05 UTC"
    assert "# Incident report: call c-1" in to_markdown(report)
