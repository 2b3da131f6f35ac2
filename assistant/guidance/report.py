"""The supervisor report over a period: per call and per agent, the metrics the SOPs name.

Per call: handle time, time to first response, red flags (flagged customer turns, and by label), escalations
(supervisor alerts raised), whether the call was handed over to a supervisor, adherence (the QA score), how
far the abuse protocol went, and whether an incident record is due. Per agent: the same, averaged over the
agent's calls (red flags and escalations per call). Rendered as CSV (one row per call) and as a PNG chart
(one panel per metric, one bar per agent).

Example:
    >>> from assistant.guidance.facts import CallFacts, Turn
    >>> from assistant.guidance.policy import *
    >>> f = CallFacts("c1", agent="agent-7", turns=(Turn(1, "agent", "Hello, this is Sam. How can I help?", 0.0),))
    >>> r = build_report([f], load_stage_policy(DEFAULT_STAGES_FILE), load_protocol_policy(DEFAULT_PROTOCOL_FILE))
    >>> r.agents[0].agent, r.agents[0].adherence
    ('agent-7', 0.2)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from statistics import fmean

from pydantic import BaseModel, Field

from assistant.guidance.facts import CallFacts, replay_trackers
from assistant.guidance.incident import needs_incident
from assistant.guidance.policy import ProtocolPolicy, StagePolicy, matches
from assistant.guidance.qa import score_call

UNKNOWN_AGENT = "(unknown)"


class CallMetrics(BaseModel):
    call_id: str
    agent: str
    started_at: datetime | None = None
    status: str
    handle_time_s: float | None = None
    time_to_first_response_s: float | None = None
    red_flags: int = Field(description="customer turns with at least one red flag")
    red_flag_labels: dict[str, int] = Field(default_factory=dict)
    escalations: int = Field(description="supervisor alerts raised on the call")
    handed_over: bool = False
    adherence: float = Field(ge=0.0, le=1.0, description="QA score: share of required steps done")
    protocol_reached: str | None = Field(default=None, description="furthest abuse-protocol step reached")
    incident: bool = False


class AgentMetrics(BaseModel):
    agent: str
    calls: int
    handle_time_s: float | None = None
    time_to_first_response_s: float | None = None
    red_flags_per_call: float
    escalations: int
    escalations_per_call: float
    adherence: float
    incidents: int


class SupervisorReport(BaseModel):
    since: datetime | None = None
    until: datetime | None = None
    calls: list[CallMetrics]
    agents: list[AgentMetrics]


def call_metrics(facts: CallFacts, stages: StagePolicy, protocol: ProtocolPolicy) -> CallMetrics:
    st, pt = replay_trackers(facts, stages, protocol)
    pos = pt.position()
    handed = any(t.speaker == "agent" and matches(protocol.incident.handover, t.text) for t in facts.turns)
    return CallMetrics(
        call_id=facts.call_id,
        agent=facts.agent or UNKNOWN_AGENT,
        started_at=facts.started_at,
        status=facts.status,
        handle_time_s=facts.handle_time_s,
        time_to_first_response_s=facts.time_to_first_response_s,
        red_flags=facts.flagged_turns,
        red_flag_labels=facts.label_counts(),
        escalations=len(facts.alerts),
        handed_over=handed,
        adherence=score_call(stages, st.state).score,
        protocol_reached=pos.reached[-1] if pos.reached else None,
        incident=needs_incident(facts, protocol),
    )


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(fmean(known), 3) if known else None


def build_report(
    calls: Iterable[CallFacts],
    stages: StagePolicy,
    protocol: ProtocolPolicy,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SupervisorReport:
    """Metrics for every call (the caller picks the period), then per agent."""
    rows = [call_metrics(f, stages, protocol) for f in calls]
    by_agent: dict[str, list[CallMetrics]] = {}
    for r in rows:
        by_agent.setdefault(r.agent, []).append(r)
    agents = [
        AgentMetrics(
            agent=agent,
            calls=len(rs),
            handle_time_s=_mean(r.handle_time_s for r in rs),
            time_to_first_response_s=_mean(r.time_to_first_response_s for r in rs),
            red_flags_per_call=round(fmean(r.red_flags for r in rs), 3),
            escalations=sum(r.escalations for r in rs),
            escalations_per_call=round(fmean(r.escalations for r in rs), 3),
            adherence=round(fmean(r.adherence for r in rs), 4),
            incidents=sum(1 for r in rs if r.incident),
        )
        for agent, rs in sorted(by_agent.items())
    ]
    return SupervisorReport(since=since, until=until, calls=rows, agents=agents)


CSV_COLUMNS = (
    "call_id",
    "agent",
    "started_at",
    "status",
    "handle_time_s",
    "time_to_first_response_s",
    "red_flags",
    "red_flag_labels",
    "escalations",
    "handed_over",
    "adherence",
    "protocol_reached",
    "incident",
)


def report_csv(report: SupervisorReport) -> str:
    """One row per call; labels as ``label:count`` joined by ``;``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in report.calls:
        w.writerow(
            [
                r.call_id,
                r.agent,
                r.started_at.isoformat() if r.started_at else "",
                r.status,
                "" if r.handle_time_s is None else f"{r.handle_time_s:.1f}",
                "" if r.time_to_first_response_s is None else f"{r.time_to_first_response_s:.1f}",
                r.red_flags,
                ";".join(f"{k}:{v}" for k, v in r.red_flag_labels.items()),
                r.escalations,
                int(r.handed_over),
                f"{r.adherence:.2f}",
                r.protocol_reached or "",
                int(r.incident),
            ]
        )
    return buf.getvalue()


def report_chart(report: SupervisorReport) -> bytes:
    """A PNG with one panel per metric and one bar per agent."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    agents = report.agents
    names = [a.agent for a in agents] or ["(no calls)"]
    panels = (
        ("Adherence (QA score)", [a.adherence for a in agents], (0.0, 1.0)),
        ("Handle time (s)", [a.handle_time_s or 0.0 for a in agents], None),
        ("Time to first response (s)", [a.time_to_first_response_s or 0.0 for a in agents], None),
        ("Red flags per call", [a.red_flags_per_call for a in agents], None),
        ("Escalations per call", [a.escalations_per_call for a in agents], None),
        ("Calls", [float(a.calls) for a in agents], None),
    )
    # Figure() without pyplot: no global state, safe in a server thread.
    fig = Figure(figsize=(11, 6.5), dpi=100)
    FigureCanvasAgg(fig)
    period = (
        " to ".join(d.strftime("%Y-%m-%d %H:%M") for d in (report.since, report.until) if d) or "all calls"
    )
    fig.suptitle(f"Supervisor report: {len(report.calls)} call(s), {period}")
    for i, (title, values, ylim) in enumerate(panels):
        ax = fig.add_subplot(2, 3, i + 1)
        ax.bar(names, values or [0.0] * len(names), color="#3b6ea8")
        ax.set_title(title, fontsize=10)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        for x, v in enumerate(values):
            ax.annotate(f"{v:.2f}" if v < 10 else f"{v:.0f}", (x, v), ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
