"""Post-call summaries and the supervisor report (CSV, chart) on the demo calls."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import replace

from assistant.guidance.facts import AlertFact, CallFacts
from assistant.guidance.policy import ProtocolPolicy, StagePolicy
from assistant.guidance.report import CSV_COLUMNS, build_report, report_chart, report_csv
from assistant.guidance.summary import summarise_call


def test_summary_abusive_demo(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    s = summarise_call(demo("billing-dispute-abusive"), stage_policy, protocol_policy)
    assert s.reason == "Hi, I'm calling about my bill. I've been charged twice for the same month."
    assert [d.seq for d in s.done] == [15]
    assert s.outcome == "resolved on the call"
    assert "I've raised the refund, reference R-2291. I'm sorry for the trouble this caused." in s.follow_ups
    assert s.incident and s.red_flags == {"frustration": 4, "insult": 4, "profanity": 2}
    assert s.qa_score == 0.6


def test_summary_manager_demo_handed_over(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    s = summarise_call(demo("manager-request"), stage_policy, protocol_policy)
    assert s.outcome == "handed over to a supervisor (seq 11)"
    assert any("engineer for tomorrow" in f for f in s.follow_ups)


def test_report_metrics_per_call_and_per_agent(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    abusive = replace(
        demo("billing-dispute-abusive"), alerts=(AlertFact(seq=8, reason="abusive", level="high"),)
    )
    calls = [abusive, demo("calm-call"), demo("manager-request", agent="agent-9")]
    report = build_report(calls, stage_policy, protocol_policy)
    rows = {r.call_id: r for r in report.calls}
    a = rows["billing-dispute-abusive"]
    assert (a.handle_time_s, a.time_to_first_response_s) == (114.3, 6.1)
    assert (a.red_flags, a.escalations, a.adherence, a.protocol_reached) == (6, 1, 0.6, "final_warning")
    assert rows["manager-request"].handed_over and rows["calm-call"].red_flags == 0
    agents = {x.agent: x for x in report.agents}
    assert agents["agent-7"].calls == 2 and agents["agent-7"].adherence == 0.5
    assert agents["agent-7"].red_flags_per_call == 3.0 and agents["agent-7"].escalations == 1
    assert agents["agent-9"].adherence == 0.6

    table = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert tuple(table[0]) == CSV_COLUMNS and len(table) == 3
    assert table[0]["red_flag_labels"] == "frustration:4;insult:4;profanity:2"
    png = report_chart(report)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_report_empty_period_still_renders(
    stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    report = build_report([], stage_policy, protocol_policy)
    assert report.calls == [] and report_csv(report).strip() == ",".join(CSV_COLUMNS)
    assert report_chart(report).startswith(b"\x89PNG")


def test_summary_follow_ups_are_promises_not_past_dates(
    demo: Callable[..., CallFacts], stage_policy: StagePolicy, protocol_policy: ProtocolPolicy
) -> None:
    s = summarise_call(demo("billing-dispute-abusive"), stage_policy, protocol_policy)
    agent_lines = [f for f in s.follow_ups if not f.startswith("Supervisor")]
    assert agent_lines == [
        "I can raise a refund request for the duplicate charge right now, and it will show within five working days.",
        "I've raised the refund, reference R-2291. I'm sorry for the trouble this caused.",
    ]
