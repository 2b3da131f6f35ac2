"""Scaling over several workers: ``assistant bench --fake-models --model-ms MS --workers 1,2,3``.

For each worker count N, starts a cluster on this machine (one Redis and one PostgreSQL for the whole run,
N ``assistant serve`` processes with the keyword stand-in whose model pass sleeps ``model_ms`` per utterance),
spreads the saturation phase's calls over the N workers' ports (the client is its own load balancer) and
records throughput at saturation and latency. Sleeping, not computing, the simulated model leaves the CPUs to
the coordination (event loops, Redis, PostgreSQL, the client): the ratio between N and 1 shows how much of the
workers' added capacity the shared parts let through, which a 2-core machine could not show with real models.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.cluster.servers import PostgresServer, RedisServer
from assistant.eval.bench import PhaseSpec, ServerProcess, load_scripts, machine_info, run_phase


def _say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


async def run_scaling(
    worker_counts: Sequence[int],
    *,
    model_ms: float,
    saturation_calls: int,
    duration_s: float,
    warmup_s: float,
    grace_s: float,
    token: str | None = None,
    batch_max_size: int = 64,
    batch_max_wait_ms: float = 2.0,
) -> dict[str, Any]:
    """Throughput at saturation and latency for each worker count; ``speedup`` is relative to the first."""
    scripts = load_scripts()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="assistant-scaling-") as base:
        Path(base).chmod(0o755)  # PostgreSQL runs as its own user when the bench runs as root
        with RedisServer(Path(base) / "redis") as redis, PostgresServer(Path(base) / "pg") as pg:
            for n in worker_counts:
                env = {
                    "ASSISTANT_USE_FAKE_MODELS": "1",
                    "ASSISTANT_FAKE_MODEL_MS": str(model_ms),
                    "ASSISTANT_REDIS_URL": redis.url,
                    "ASSISTANT_DATABASE_URL": pg.url,
                    "ASSISTANT_BATCH_MAX_SIZE": str(batch_max_size),
                    "ASSISTANT_BATCH_MAX_WAIT_MS": str(batch_max_wait_ms),
                }
                servers = [ServerProcess(env) for _ in range(n)]
                _say(f"{n} worker(s): starting")
                try:
                    await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
                    urls = [s.ws_url for s in servers]
                    if warmup_s > 0:
                        warm = PhaseSpec("single", 4 * n, warmup_s, rate_s=0.1, grace_s=5.0)
                        await run_phase(urls, warm, token=token, scripts=scripts)
                    _say(f"{n} worker(s): {saturation_calls} calls in a closed loop, {duration_s:g} s")
                    spec = PhaseSpec("saturation", saturation_calls, duration_s, grace_s=grace_s)
                    sat = await run_phase(urls, spec, token=token, scripts=scripts)
                finally:
                    await asyncio.gather(*(asyncio.to_thread(s.stop) for s in servers))
                rows.append(
                    {
                        "workers": n,
                        **{k: v for k, v in sat.items() if k not in ("latencies_ms", "sent_at_s")},
                    }
                )
    base_tp = rows[0]["throughput"] if rows and rows[0]["throughput"] else None
    for row in rows:
        row["speedup"] = round(row["throughput"] / base_tp, 2) if base_tp else None
    return {
        "kind": "scaling",
        "model_ms": model_ms,
        "saturation_calls": saturation_calls,
        "duration_s": duration_s,
        "rows": rows,
        "machine": machine_info("cpu"),
        "note": "fake models whose pass sleeps model_ms per utterance; calls spread over the workers' ports",
    }


def format_scaling(report: dict[str, Any]) -> str:
    lines = [
        f"simulated model time {report['model_ms']:g} ms per utterance, "
        f"{report['saturation_calls']} calls in a closed loop, {report['duration_s']:g} s per worker count",
        "| workers | throughput (chunks/s) | speed-up | p50 ms | p95 ms | errors | lost chunks |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['workers']} | {r['throughput']:.1f} | {r['speedup']}x | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['errors']} | {r['lost_chunks']} |"
        )
    return "\n".join(lines)
