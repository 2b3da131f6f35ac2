"""How many calls one worker carries on this machine: ``assistant bench --capacity``.

The capacity table in the README was measured on a few CPU classes; a deployment's own machines may differ (cores,
cache, what else runs there). This searches the load a worker carries at the service-level targets: rate phases
of N calls at one chunk per call every ``rate_s`` seconds, N growing by ``growth`` until a load misses, then
bisected between the last load that met them and the first that missed, to ``resolution`` calls.

A load meets them when its p95 <= 150 ms and p99 <= 300 ms, no chunk or red-flag result was lost, nothing was
refused or erred, and no work was shed (a worker at capacity serves every feature). The plan is three quarters
of the capacity: the headroom the README's sizing asks for, for bursts and a noisy neighbour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from assistant.eval.bench import TARGETS

PLAN_SHARE = 0.75


def misses(summary: Mapping[str, Any]) -> list[str]:
    """Why a rate phase's summary misses the targets of a worker at capacity (empty when it meets them)."""
    out: list[str] = []
    p95, p99 = summary.get("p95_ms"), summary.get("p99_ms")
    if p95 is None or p95 > TARGETS["p95_ms"]:
        out.append(f"p95 {p95} ms > {TARGETS['p95_ms']:g}")
    if p99 is None or p99 > TARGETS["p99_ms"]:
        out.append(f"p99 {p99} ms > {TARGETS['p99_ms']:g}")
    for key, what in (
        ("lost_events", "events lost"),
        ("flags_lost", "red-flag results lost"),
        ("errors", "errors"),
        ("refused_calls", "calls refused"),
    ):
        if summary.get(key):
            out.append(f"{summary[key]} {what}")
    shed = sum(int(v) for v in (summary.get("shed") or {}).values())
    if shed:
        out.append(f"{shed} shed")
    return out


@dataclass
class Probe:
    """One load tried: its calls, whether it met the targets (and why not), its headline figures."""

    calls: int
    ok: bool
    why_not: list[str]
    figures: dict[str, Any]


@dataclass
class Capacity:
    calls: int  # the largest load that met the targets (0: none did)
    plan: int  # calls to plan per worker: PLAN_SHARE of it
    probes: list[Probe] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RunLoad = Callable[[int], Awaitable[Mapping[str, Any]]]

_FIGURES = (
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "flags_p95_ms",
    "lost_events",
    "flags_lost",
    "errors",
    "shed",
    "server_cpu_ms_per_chunk",
    "cpu_percent_mean",
    "rss_mb_max",
)


async def find_capacity(
    run_load: RunLoad,
    *,
    start: int,
    resolution: int,
    max_calls: int,
    growth: float = 1.5,
    on_probe: Callable[[Probe], None] | None = None,
) -> Capacity:
    """Search the largest load (calls) that ``run_load`` reports meeting the targets.

    ``run_load(n)`` runs a rate phase of ``n`` calls and returns its summary. Loads grow from ``start`` by
    ``growth`` (at least ``resolution`` more each time) up to ``max_calls``; the first miss is bisected down to
    ``resolution``. When ``start`` misses, loads halve until one meets them or falls below ``resolution``.
    """
    if not (1 <= resolution <= start <= max_calls) or growth <= 1.0:
        raise ValueError(
            f"need 1 <= resolution <= start <= max_calls and growth > 1, got resolution {resolution}, start "
            f"{start}, max_calls {max_calls}, growth {growth}"
        )
    probes: list[Probe] = []

    async def meets(n: int) -> bool:
        summary = await run_load(n)
        why = misses(summary)
        probe = Probe(n, not why, why, {k: summary.get(k) for k in _FIGURES})
        probes.append(probe)
        if on_probe is not None:
            on_probe(probe)
        return probe.ok

    good, bad = 0, None  # the largest load that met the targets, the smallest that missed
    n = start
    while bad is None and good < max_calls:  # grow while loads meet them
        if await meets(n):
            good, n = n, min(max_calls, max(n + resolution, round(n * growth)))
        else:
            bad = n
    while not good and bad is not None and bad // 2 >= resolution:  # the first load missed: halve
        n = bad // 2
        if await meets(n):
            good = n
        else:
            bad = n
    while good and bad is not None and bad - good > resolution:  # bisect between them
        n = (good + bad) // 2
        if await meets(n):
            good = n
        else:
            bad = n
    return Capacity(calls=good, plan=int(good * PLAN_SHARE), probes=probes)


def format_capacity(result: Mapping[str, Any]) -> str:
    """The probes as a table, then the capacity and the plan."""
    lines = [
        f"{'calls':>6} {'p95 ms':>8} {'p99 ms':>8} {'flags p95':>10} {'CPU ms/chunk':>13}  verdict",
    ]
    for p in result["probes"]:
        f = p["figures"]
        verdict = "meets the targets" if p["ok"] else "misses: " + "; ".join(p["why_not"])
        lines.append(
            f"{p['calls']:>6} {_num(f.get('p95_ms')):>8} {_num(f.get('p99_ms')):>8} "
            f"{_num(f.get('flags_p95_ms')):>10} {_num(f.get('server_cpu_ms_per_chunk')):>13}  {verdict}"
        )
    calls, plan = result["calls"], result["plan"]
    if calls:
        lines.append(
            f"capacity: {calls} calls per worker on this machine (p95 <= {TARGETS['p95_ms']:g} ms, p99 <= "
            f"{TARGETS['p99_ms']:g} ms, nothing lost or shed); plan {plan} per worker "
            f"(ASSISTANT_MAX_LIVE_CALLS={plan})"
        )
    else:
        lines.append("capacity: no load tried met the targets; try a smaller --calls")
    return "\n".join(lines)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
