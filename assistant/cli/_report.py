"""`assistant report [--since WHEN] [--until WHEN] [--agent ID] [--csv OUT.csv] [--chart OUT.png] [--json OUT]`.

The supervisor report over a period, from the stored calls (ASSISTANT_DATABASE_URL): per call, handle time,
time to first response, red flags, escalations (supervisor alerts), handover, adherence (QA score), how far the
abuse protocol went; per agent, the averages. Prints the per-agent table; writes the per-call CSV, the chart
(PNG) and the whole report (JSON) when asked. WHEN is an ISO date or time (2026-11-30, 2026-11-30T08:00) or an
age such as 24h or 7d (before now). Calls are picked by the time they began.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from assistant.errors import InvalidInputError

_AGE = re.compile(r"^(\d+)([mhd])$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="supervisor report over a period: handle time, red flags, escalations, adherence (CSV, chart)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--since", default="7d", help="start of the period: ISO date/time or an age (default 7d)")
    p.add_argument("--until", default=None, help="end of the period (default: now)")
    p.add_argument("--agent", default=None, help="only this agent's calls")
    p.add_argument(
        "--limit", type=int, default=10_000, help="at most this many calls (the oldest of the period)"
    )
    p.add_argument("--csv", type=Path, default=None, help="write one row per call here")
    p.add_argument("--chart", type=Path, default=None, help="write the chart (PNG) here")
    p.add_argument("--json", type=Path, default=None, help="write the whole report (JSON) here")
    p.set_defaults(handler=_run)


def parse_when(text: str, *, now: datetime) -> datetime:
    """An ISO date/time (UTC when no zone is given) or an age like ``24h``/``7d`` before ``now``."""
    m = _AGE.match(text.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: n})
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise InvalidInputError(
            f"cannot read {text!r} as a time; expected e.g. 2026-11-30, 2026-11-30T08:00 or 7d"
        ) from e
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _run(args: argparse.Namespace) -> int:
    from assistant.guidance.periods import load_report
    from assistant.guidance.policies import load_policies
    from assistant.guidance.report import report_chart, report_csv
    from assistant.settings import get_settings

    now = datetime.now(UTC)
    since = parse_when(args.since, now=now)
    until = parse_when(args.until, now=now) if args.until else now
    if until <= since:
        raise InvalidInputError(
            f"--until ({until:%Y-%m-%d %H:%M}) must be after --since ({since:%Y-%m-%d %H:%M})"
        )
    if args.limit < 1:
        raise InvalidInputError("--limit must be >= 1")
    settings = get_settings()
    report = asyncio.run(
        load_report(
            settings, load_policies(settings), since=since, until=until, agent=args.agent, limit=args.limit
        )
    )
    print(f"{len(report.calls)} call(s) from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC")
    header = f"{'agent':<20} {'calls':>5} {'handle s':>9} {'1st resp s':>10} {'flags/call':>10} {'escal.':>6} {'adherence':>9}"
    print(header)
    for a in report.agents:
        ht = f"{a.handle_time_s:.0f}" if a.handle_time_s is not None else "-"
        fr = f"{a.time_to_first_response_s:.1f}" if a.time_to_first_response_s is not None else "-"
        print(
            f"{a.agent:<20} {a.calls:>5} {ht:>9} {fr:>10} {a.red_flags_per_call:>10.2f} {a.escalations:>6} "
            f"{a.adherence:>9.2f}"
        )
    for path, data in (
        (args.csv, report_csv(report).encode()),
        (args.chart, report_chart(report) if args.chart else b""),
        (args.json, report.model_dump_json(indent=2).encode()),
    ):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path}")
    return 0
