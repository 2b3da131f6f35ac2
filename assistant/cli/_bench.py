"""`assistant bench`: simulated live calls over real WebSockets, optimized vs naive, a table, JSON and a plot.

Unless ``--url`` is given, the service is started in its own process (the shipped models, a fresh database)
once with the optimized settings and once with the naive ones (batch size 1, no batching wait, fp32, no
batched query encoding, no overload shedding). Each configuration runs: one call alone, a saturation phase
(closed loop) and the rate phase (N calls, one chunk each every ``--rate-s`` seconds). The speedup is the ratio
of the saturation throughputs at equal work: only chunks served with every feature count (a service that skips
suggestions to keep up processes more chunks for less work; the ratio of all processed chunks is reported
beside it as ``speedup_vs_naive_processed``). Beside latency to the last event (``p50_ms``...), each phase
reports customer chunks' red-flag latency (``flags_p50_ms``, ``flags_p95_ms``: to the ``flag`` or ``scored``
event), ``flags_lost``, the work the service skipped under overload (``shed``, by kind) and the server's CPU per
chunk. The figures depend on the machine and on what else runs on it: the JSON records both, with the CPU's
flags.

``--capacity`` sizes a worker instead: rate phases from ``--calls`` calls up, bisected to ``--resolution``, find
the largest load that meets the targets (p95 <= 150 ms, p99 <= 300 ms, nothing lost, refused or shed) and print
the calls to plan per worker (``assistant.eval.capacity``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import InvalidInputError

if TYPE_CHECKING:
    from assistant.eval.bench import ServerProcess


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="load benchmark: N simulated calls over WebSockets, optimized vs naive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--calls", type=int, default=500, help="concurrent calls in the rate phase (default 500)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of the rate phase (default 60)")
    p.add_argument(
        "--rate-s", type=float, default=2.0, help="seconds between two chunks of a call (default 2)"
    )
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument("--plot", type=Path, default=None, help="write the latency plot (PNG) here")
    p.add_argument(
        "--naive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the naive configuration and print the ratio (default: on)",
    )
    p.add_argument(
        "--naive-duration",
        type=float,
        default=None,
        help="rate phase seconds for naive (default: --duration)",
    )
    p.add_argument(
        "--saturation-calls", type=int, default=128, help="closed-loop calls of the saturation phase"
    )
    p.add_argument("--saturation-duration", type=float, default=10.0, help="seconds of the saturation phase")
    p.add_argument(
        "--single-duration", type=float, default=6.0, help="seconds of the one-call phase (0: skip)"
    )
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load (0: none)")
    p.add_argument(
        "--grace", type=float, default=10.0, help="seconds to wait for the last events (then lost)"
    )
    p.add_argument(
        "--url", default=None, help="bench a running service (ws://HOST:PORT) instead of starting one"
    )
    p.add_argument(
        "--naive-url", default=None, help="with --url: a running service in the naive configuration"
    )
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where the started service runs models"
    )
    p.add_argument(
        "--mode",
        choices=["auto", "fp32", "int8", "bf16"],
        default="auto",
        help="red-flag inference mode of the optimized service (default auto: bf16 on a CPU with bf16 units, "
        "else int8; fp32 on cuda)",
    )
    p.add_argument(
        "--query-mode",
        choices=["auto", "fp32", "int8", "bf16"],
        default="auto",
        help="retrieval query encoder's mode of the optimized service (default auto: bf16 on a CPU with bf16 "
        "units, else fp32; fp32 on cuda)",
    )
    p.add_argument("--batch-max-size", type=int, default=64, help="micro-batch size of the optimized service")
    p.add_argument(
        "--batch-max-wait-ms", type=float, default=2.0, help="bounded batching wait of the optimized service"
    )
    p.add_argument(
        "--torch-threads", type=int, default=1, help="intra-op threads per model thread in the service"
    )
    p.add_argument(
        "--source-events",
        choices=["replies", "all"],
        default="replies",
        help="what each call's source socket asks for: its replies only, as a telephony connector would "
        "(default), or every call event too (the sidebar socket gets them either way)",
    )
    p.add_argument(
        "--fake-models", action="store_true", help="serve the keyword/rule fakes (tests, no models)"
    )
    p.add_argument(
        "--model-ms",
        type=float,
        default=0.0,
        help="with --fake-models: simulated model time per utterance (the pass sleeps; default 0)",
    )
    p.add_argument(
        "--capacity",
        action="store_true",
        help="find the calls this worker carries at the targets (p95 <= 150 ms, p99 <= 300 ms, nothing lost or "
        "shed) instead: rate phases from --calls calls up, bisected to --resolution; prints the plan per worker",
    )
    p.add_argument(
        "--max-calls", type=int, default=2000, help="with --capacity: the largest load to try (default 2000)"
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=25,
        help="with --capacity: calls between the bisection's ends (default 25)",
    )
    p.add_argument(
        "--workers",
        default=None,
        help="scaling run instead: worker counts such as 1,2,3; each count gets Redis, PostgreSQL and N "
        "workers, and the saturation phase spread over them (needs --fake-models)",
    )
    p.set_defaults(handler=_run)


def _check(args: argparse.Namespace) -> None:
    for name in ("calls", "saturation_calls"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("duration", "rate_s", "saturation_duration"):
        if getattr(args, name) <= 0:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.single_duration < 0 or args.grace < 0 or args.warmup < 0:
        raise InvalidInputError("--single-duration, --warmup and --grace must be >= 0")
    if args.url and not args.url.startswith(("ws://", "wss://")):
        raise InvalidInputError(f"--url must look like ws://HOST:PORT, got {args.url!r}")
    if args.naive_url and not args.url:
        raise InvalidInputError("--naive-url needs --url (the optimized service to compare it with)")
    if args.device == "cuda" and not args.url:
        import torch

        if not torch.cuda.is_available():
            raise InvalidInputError(
                "--device cuda was asked for but torch sees no GPU on this machine; use --device cpu "
                "or run on a machine with CUDA"
            )
    if "int8" in (args.mode, args.query_mode) and args.device == "cuda":
        raise InvalidInputError("int8 runs on the CPU only; use fp32 or bf16 with --device cuda")
    if args.capacity and (args.resolution < 1 or args.max_calls < args.calls):
        raise InvalidInputError(
            f"--capacity needs --resolution >= 1 and --max-calls >= --calls (the first load), got "
            f"--resolution {args.resolution}, --max-calls {args.max_calls}, --calls {args.calls}"
        )
    if args.capacity and args.resolution > args.calls:
        raise InvalidInputError(
            f"--resolution ({args.resolution}) must not exceed --calls ({args.calls}), the first load"
        )


def _worker_counts(raw: str) -> list[int]:
    try:
        counts = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= n <= 16 for n in counts):
        raise InvalidInputError(
            f"--workers takes counts of 1-16 separated by commas, such as 1,2,3; got {raw!r}"
        )
    return counts


def _run_scaling(args: argparse.Namespace) -> int:
    from assistant.eval.scaling import format_scaling, run_scaling

    if not args.fake_models:
        raise InvalidInputError(
            "--workers runs the fake models (add --fake-models and a --model-ms): on one machine, real "
            "models would share its cores and measure the cores, not the coordination"
        )
    report = asyncio.run(
        run_scaling(
            _worker_counts(args.workers),
            model_ms=args.model_ms,
            saturation_calls=args.saturation_calls,
            duration_s=args.saturation_duration,
            warmup_s=args.warmup,
            grace_s=args.grace,
            token=_token(),
            batch_max_size=args.batch_max_size,
            batch_max_wait_ms=args.batch_max_wait_ms,
        )
    )
    print(format_scaling(report))
    _write_json(args.json, report)
    return 0


def _run(args: argparse.Namespace) -> int:
    _check(args)
    if args.model_ms < 0:
        raise InvalidInputError(f"--model-ms must be >= 0, got {args.model_ms}")
    if args.model_ms and not args.fake_models:
        raise InvalidInputError("--model-ms simulates the fake models' time; add --fake-models")
    if args.workers is not None:
        return _run_scaling(args)
    runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = asyncio.run
    try:
        import uvloop  # the client handles a thousand sockets; uvloop keeps its own overhead small

        def runner(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
                return r.run(coro)
    except ImportError:
        pass
    if args.capacity:
        from assistant.eval.capacity import format_capacity

        result = runner(_capacity(args))
        print(format_capacity(result))
        _write_json(args.json, result)
        return 0
    report = runner(_bench(args))
    from assistant.eval.bench import format_table, plot_latency

    print(format_table(report))
    if args.plot:
        plot_latency(report, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    _write_json(args.json, report)
    return 0


def _write_json(path: Path | None, report: dict[str, Any]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"report: {path}", file=sys.stderr)


def _token() -> str | None:
    from assistant.auth import issue_token
    from assistant.settings import get_settings

    secret = get_settings().auth_secret
    return issue_token(secret, role="admin", subject="bench") if secret else None


async def _caught_up(label: str, url: str, phase: str) -> None:
    """Let the previous phase's backlog clear before the next phase (``wait_caught_up``); say so if it did not."""
    from assistant.eval.bench import wait_caught_up

    if not await wait_caught_up(url):
        _say(f"{label}: red flags still behind after a minute; the {phase} phase starts anyway")


@contextlib.asynccontextmanager
async def _service(
    label: str, args: argparse.Namespace, *, url: str | None, env: dict[str, str] | None
) -> AsyncIterator[tuple[str, ServerProcess | None]]:
    """The service under test: the one at ``url``, or one started here with ``env`` (stopped at the end)."""
    from assistant.eval.bench import ServerProcess

    if url is not None:
        yield url, None
        return
    if env is None:
        raise InvalidInputError(f"{label}: no server URL and no environment to start one with")
    if args.fake_models:
        env = {**env, "ASSISTANT_USE_FAKE_MODELS": "1", "ASSISTANT_FAKE_MODEL_MS": str(args.model_ms)}
    server = ServerProcess(env)
    _say(f"{label}: starting the service ({', '.join(f'{k}={v}' for k, v in env.items())})")
    await asyncio.to_thread(server.start)
    try:
        yield server.ws_url, server
    finally:
        await asyncio.to_thread(server.stop)


async def _warm_up(label: str, args: argparse.Namespace, url: str, scripts: Any, token: str | None) -> None:
    from assistant.eval.bench import PhaseSpec, run_phase

    if args.warmup > 0:
        _say(f"{label}: warm-up")
        spec = PhaseSpec("single", 4, args.warmup, rate_s=0.1, grace_s=5.0, source_events=args.source_events)
        await run_phase(url, spec, token=token, scripts=scripts)


async def _config(
    label: str, args: argparse.Namespace, *, url: str | None, env: dict[str, str] | None, duration: float
) -> dict[str, Any]:
    from assistant.eval.bench import PhaseSpec, load_scripts, merge_config, run_phase

    scripts = load_scripts()
    token = _token()
    phase = partial(PhaseSpec, source_events=args.source_events)  # every phase's sources ask alike
    async with _service(label, args, url=url, env=env) as (url, server):
        await _warm_up(label, args, url, scripts, token)
        single = None
        if args.single_duration > 0:
            _say(f"{label}: one call alone, {args.single_duration:g} s")
            single = await run_phase(
                url,
                phase("single", 1, args.single_duration, rate_s=0.1, grace_s=args.grace),
                token=token,
                scripts=scripts,
            )
        await _caught_up(label, url, "saturation")
        _say(
            f"{label}: saturation, {args.saturation_calls} calls in a closed loop, {args.saturation_duration:g} s"
        )
        sat = await run_phase(
            url,
            phase("saturation", args.saturation_calls, args.saturation_duration, grace_s=args.grace),
            server=server,
            token=token,
            scripts=scripts,
        )
        await _caught_up(label, url, "rate")
        _say(f"{label}: {args.calls} calls, a chunk each every {args.rate_s:g} s, {duration:g} s")
        rate = await run_phase(
            url,
            phase("rate", args.calls, duration, rate_s=args.rate_s, grace_s=args.grace),
            server=server,
            token=token,
            scripts=scripts,
        )
    out = merge_config(rate, sat, single)
    out["url"] = url if args.url else "started by the bench"
    out["server_env"] = env
    return out


def _optimized_env(args: argparse.Namespace) -> dict[str, str] | None:
    from assistant.eval.bench import optimized_env

    if args.url:
        return None
    return optimized_env(
        mode=args.mode,
        query_mode=args.query_mode,
        device=args.device,
        batch_max_size=args.batch_max_size,
        batch_max_wait_ms=args.batch_max_wait_ms,
        torch_threads=args.torch_threads,
    )


async def _capacity(args: argparse.Namespace) -> dict[str, Any]:
    """``--capacity``: the largest load the service carries at the targets (``assistant.eval.capacity``)."""
    from assistant.eval.bench import PhaseSpec, load_scripts, machine_info, run_phase
    from assistant.eval.capacity import Probe, find_capacity

    scripts = load_scripts()
    token = _token()
    env = _optimized_env(args)
    async with _service("capacity", args, url=args.url, env=env) as (url, server):
        await _warm_up("capacity", args, url, scripts, token)

        async def run_load(n: int) -> dict[str, Any]:
            await _caught_up("capacity", url, f"{n}-call")
            _say(f"capacity: {n} calls, a chunk each every {args.rate_s:g} s, {args.duration:g} s")
            spec = PhaseSpec(
                "rate",
                n,
                args.duration,
                rate_s=args.rate_s,
                grace_s=args.grace,
                source_events=args.source_events,
            )
            return await run_phase(url, spec, server=server, token=token, scripts=scripts)

        def said(p: Probe) -> None:
            _say(
                f"capacity: {p.calls} calls "
                + ("meet the targets" if p.ok else "miss: " + "; ".join(p.why_not))
            )

        result = await find_capacity(
            run_load, start=args.calls, resolution=args.resolution, max_calls=args.max_calls, on_probe=said
        )
    return {
        **result.to_dict(),
        "config": {
            "start_calls": args.calls,
            "max_calls": args.max_calls,
            "resolution": args.resolution,
            "duration_s": args.duration,
            "rate_s": args.rate_s,
            "fake_models": args.fake_models,
            "source_events": args.source_events,
        },
        "url": args.url or "started by the bench",
        "server_env": env,
        "machine": machine_info(args.device),
    }


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    from assistant.eval.bench import check_targets, machine_info, naive_env, speedup

    mode = args.mode
    opt_env = _optimized_env(args)
    report = await _config("optimized", args, url=args.url, env=opt_env, duration=args.duration)
    if args.naive and (args.naive_url or not args.url):
        env = None if args.naive_url else naive_env(device=args.device, torch_threads=args.torch_threads)
        naive = await _config(
            "naive", args, url=args.naive_url, env=env, duration=args.naive_duration or args.duration
        )
        report["naive"] = naive
        report["speedup_vs_naive"] = speedup(report, naive)
        report["speedup_vs_naive_processed"] = speedup(report, naive, key="saturation_throughput")
    else:
        report["naive"] = None
        report["speedup_vs_naive"] = None
        report["speedup_vs_naive_processed"] = None
    report["config"] = {
        "calls": args.calls,
        "duration_s": args.duration,
        "rate_s": args.rate_s,
        "offered_chunks_per_s": round(args.calls / args.rate_s, 2),
        "saturation_calls": args.saturation_calls,
        "saturation_duration_s": args.saturation_duration,
        "naive_duration_s": args.naive_duration or args.duration,
        "device": args.device,
        "mode": mode if not args.url else "(the running service's)",
        "batch_max_size": args.batch_max_size,
        "batch_max_wait_ms": args.batch_max_wait_ms,
        "torch_threads": args.torch_threads,
        "fake_models": args.fake_models,
        "source_events": args.source_events,
        "latency": "chunk sent on the source socket -> its processed event received on the sidebar socket",
        "speedup": "saturation throughput at equal work (chunks served with every feature), optimized / naive, "
        "measured in the same run; speedup_vs_naive_processed counts chunks whose suggestions were skipped too",
    }
    report["machine"] = machine_info(args.device)
    report["targets"] = check_targets(report)
    return report


def _say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)
