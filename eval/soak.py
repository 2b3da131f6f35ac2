"""Soak test of the streaming service: many calls for a long time, hostile input, reconnects and a crash.

Not a unit test: it starts ``assistant serve`` as a child process on a free port (its own database under a
temporary folder), drives ``--calls`` concurrent calls for ``--duration`` seconds and reports what broke:

* every call's source streams the demo transcripts in a loop, one chunk every ``--interval`` seconds; ``--bad``
  (5%) of its messages are malformed (bad JSON, 1,000 nested levels, a lone surrogate, a seq of 10^30, a seq
  jump, an unknown type, an over-long text) and must each get an ``error`` event on a socket that stays open;
* sources drop their connection at random (``--reconnect-rate`` per minute per call) and resume as the
  protocol says: resend everything after ``ready.last_seq``;
* once, half-way, the server is killed (SIGKILL) and started again; every source resumes;
* a supervisor socket counts alerts;
* every ``--sample-s`` seconds the server's resident memory is sampled.

At the end each call is ended and its stored record read back. Reported: crashes (the server exited by
itself, 1011 closes, 5xx answers), chunks lost (acknowledged but not stored) or doubled, malformed messages
that were not answered with an error, alerts seen live but missing from the store, memory over time.

    python -m assistant.eval.soak --calls 300 --duration 600 --fake-models --json var/soak.json

A short run (``--calls 30 --duration 45``) checks that it works; the full soak needs a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

TRANSCRIPTS = Path(__file__).resolve().parent / "transcripts"
BAD_FRAMES: list[tuple[str, str]] = [
    ("malformed_json", '{"seq": 1, "speaker": '),
    ("too_deep", "[" * 1000 + "]" * 1000),
    ("invalid_text", '{"seq": 1, "speaker": "customer", "text": "x \\ud800"}'),
    ("seq_out_of_range", '{"seq": 1000000000000000000000000000000, "speaker": "customer", "text": "x"}'),
    ("unknown_type", '{"type": "explode"}'),
    ("invalid_chunk", '{"seq": "one", "speaker": "robot", "text": 5}'),
]


def _lines() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(TRANSCRIPTS.glob("*.jsonl")):
        out += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CallStats:
    call_id: str
    sent: dict[int, str] = field(default_factory=dict)  # seq -> text (every chunk sent, kept for resends)
    acked: set[int] = field(default_factory=set)  # acknowledged as new or buffered (not duplicate/error)
    next_seq: int = 1
    bad_sent: int = 0
    bad_answered: int = 0
    reconnects: int = 0  # connections that resumed the call
    errors_1011: int = 0
    unexpected_errors: list[str] = field(default_factory=list)


@dataclass
class Soak:
    args: argparse.Namespace
    port: int
    var_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    stop: bool = False
    restarting: bool = False
    crashes: list[str] = field(default_factory=list)
    http_5xx: int = 0
    memory: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, RSS MiB)
    alerts_live: set[str] = field(default_factory=set)
    calls: dict[str, CallStats] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    # ---- the server ------------------------------------------------------------------------------------
    def start_server(self) -> None:
        env = {
            **os.environ,
            "ASSISTANT_VAR_DIR": str(self.var_dir),
            "ASSISTANT_PORT": str(self.port),
            "ASSISTANT_HOST": "127.0.0.1",
        }
        cmd = [sys.executable, "-m", "assistant", "serve", "--port", str(self.port)]
        if self.args.fake_models:
            cmd.append("--fake-models")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited at start with {self.proc.returncode}; see {self._log.name}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http}/healthz", timeout=1).status_code in (200, 503):
                    return
            time.sleep(0.2)
        raise RuntimeError("server did not start in 180 s")

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def watch_server(self) -> None:
        while not self.stop:
            await asyncio.sleep(1.0)
            if self.proc is not None and not self.restarting and self.proc.poll() is not None:
                self.crashes.append(
                    f"server exited by itself with {self.proc.returncode} at {self.elapsed():.0f} s"
                )
                self.restarting = True
                await asyncio.to_thread(self.start_server)
                self.restarting = False

    async def forced_restart(self, at_s: float) -> None:
        await asyncio.sleep(at_s)
        if self.stop or self.proc is None:
            return
        self.restarting = True
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)
        await asyncio.to_thread(self.start_server)
        self.restarting = False
        print(f"[soak] forced restart done at {self.elapsed():.0f} s", flush=True)

    async def sample_memory(self) -> None:
        while not self.stop:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(self.proc.pid).memory_info().rss / 2**20
                    self.memory.append((round(self.elapsed(), 1), round(rss, 1)))
            await asyncio.sleep(self.args.sample_s)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    # ---- clients ---------------------------------------------------------------------------------------
    async def supervisor(self) -> None:
        while not self.stop:
            try:
                async with websockets.connect(f"{self.ws}/v1/alerts", open_timeout=10) as ws:
                    async for raw in ws:
                        ev = json.loads(raw)
                        if ev.get("type") == "alert":
                            self.alerts_live.add(ev["id"])
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(0.5)

    async def source(self, stats: CallStats, lines: list[dict[str, Any]], deadline: float) -> None:
        rng = random.Random(stats.call_id)
        offset = rng.randrange(len(lines))
        while time.monotonic() < deadline and not self.stop:
            # A drop (the restart, or our own reconnect) ends _stream; the loop resumes the call.
            with contextlib.suppress(OSError, websockets.WebSocketException, TimeoutError):
                await self._stream(stats, lines, offset, deadline, rng)
            await asyncio.sleep(rng.uniform(0.05, 0.5))
        await self._end(stats)

    async def _stream(
        self, stats: CallStats, lines: list[dict[str, Any]], offset: int, deadline: float, rng: random.Random
    ) -> None:
        url = f"{self.ws}/v1/calls/{stats.call_id}/stream?agent=soak-agent-{hash(stats.call_id) % 20}"
        async with websockets.connect(url, open_timeout=10, max_size=2**22) as ws:
            ready = json.loads(await ws.recv())
            if ready.get("type") != "ready":
                raise websockets.WebSocketException(f"no ready: {ready}")
            stats.reconnects += bool(ready.get("resumed"))
            reader = asyncio.create_task(self._read(ws, stats))
            try:
                # Resume: everything after what the server holds is sent again (duplicates are harmless).
                for seq in sorted(s for s in stats.sent if s > ready["last_seq"]):
                    await ws.send(self._chunk(seq, stats.sent[seq]))
                per_minute = self.args.reconnect_rate / 60.0
                while time.monotonic() < deadline and not self.stop:
                    await asyncio.sleep(self.args.interval * rng.uniform(0.5, 1.5))
                    if rng.random() < self.args.bad:
                        _, frame = rng.choice(BAD_FRAMES)
                        stats.bad_sent += 1
                        await ws.send(frame)
                        continue
                    line = lines[(offset + stats.next_seq) % len(lines)]
                    seq = stats.next_seq
                    stats.next_seq += 1
                    stats.sent[seq] = line["text"]
                    await ws.send(self._chunk(seq, line["text"], line["speaker"]))
                    if rng.random() < per_minute * self.args.interval:
                        return  # a random drop: the connection closes, the loop above resumes
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    @staticmethod
    def _chunk(seq: int, text: str, speaker: str = "customer") -> str:
        return json.dumps({"seq": seq, "speaker": speaker, "text": text})

    async def _read(self, ws: Any, stats: CallStats) -> None:
        try:
            async for raw in ws:
                ev = json.loads(raw)
                kind = ev.get("type")
                if kind == "ack" and not ev.get("duplicate"):
                    stats.acked.add(int(ev["seq"]))
                elif kind == "error":
                    reason = ev.get("reason", "")
                    if reason in {r for r, _ in BAD_FRAMES} or reason in ("seq_backwards",):
                        stats.bad_answered += reason != "seq_backwards"
                    else:
                        stats.unexpected_errors.append(reason)
        except websockets.ConnectionClosed as e:
            if e.rcvd is not None and e.rcvd.code == 1011:
                stats.errors_1011 += 1

    async def _end(self, stats: CallStats) -> None:
        for _ in range(20):
            try:
                async with websockets.connect(
                    f"{self.ws}/v1/calls/{stats.call_id}/stream", open_timeout=10
                ) as ws:
                    ready = json.loads(await ws.recv())
                    if ready.get("type") == "error":
                        return  # already ended
                    for seq in sorted(s for s in stats.sent if s > ready["last_seq"]):
                        await ws.send(self._chunk(seq, stats.sent[seq]))
                    await ws.send(json.dumps({"type": "end"}))
                    async for raw in ws:
                        if json.loads(raw).get("type") == "call_ended":
                            return
                    return
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(1.0)

    # ---- the run ---------------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        lines = _lines()
        deadline = time.monotonic() + self.args.duration
        self.calls = {f"soak-{i:04d}": CallStats(f"soak-{i:04d}") for i in range(self.args.calls)}
        background = [
            asyncio.create_task(self.watch_server()),
            asyncio.create_task(self.sample_memory()),
            asyncio.create_task(self.supervisor()),
            asyncio.create_task(self.forced_restart(self.args.duration * self.args.restart_at)),
        ]
        sources = [asyncio.create_task(self.source(s, lines, deadline)) for s in self.calls.values()]
        await asyncio.gather(*sources)
        self.stop = True
        for t in background:
            t.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        return await self.verify()

    async def verify(self) -> dict[str, Any]:
        lost: dict[str, list[int]] = {}
        doubled: dict[str, list[int]] = {}
        stored_alerts: set[str] = set()
        async with httpx.AsyncClient(base_url=self.http, timeout=30) as client:
            for call_id, stats in self.calls.items():
                r = await client.get(f"/v1/calls/{call_id}")
                if r.status_code >= 500:
                    self.http_5xx += 1
                    continue
                rec = r.json() if r.status_code == 200 else {"transcript": [], "alerts": []}
                seqs = [c["seq"] for c in rec["transcript"]]
                dup = sorted({s for s in seqs if seqs.count(s) > 1})
                missing = sorted(stats.acked - set(seqs))
                if missing:
                    lost[call_id] = missing[:20]
                if dup:
                    doubled[call_id] = dup[:20]
                stored_alerts.update(a["id"] for a in rec.get("alerts", []))
        mem = [m for _, m in self.memory]
        quarter = max(1, len(mem) // 4)
        return {
            "calls": self.args.calls,
            "duration_s": self.args.duration,
            "fake_models": self.args.fake_models,
            "chunks_sent": sum(len(s.sent) for s in self.calls.values()),
            "chunks_acked": sum(len(s.acked) for s in self.calls.values()),
            "malformed_sent": sum(s.bad_sent for s in self.calls.values()),
            "malformed_answered": sum(s.bad_answered for s in self.calls.values()),
            "reconnects": sum(s.reconnects for s in self.calls.values()),
            "crashes": self.crashes,
            "closes_1011": sum(s.errors_1011 for s in self.calls.values()),
            "http_5xx": self.http_5xx,
            "unexpected_errors": sorted({e for s in self.calls.values() for e in s.unexpected_errors}),
            "chunks_lost": sum(len(v) for v in lost.values()),
            "chunks_lost_by_call": dict(list(lost.items())[:10]),
            "chunks_doubled": sum(len(v) for v in doubled.values()),
            "alerts_live": len(self.alerts_live),
            "alerts_missing_from_store": len(self.alerts_live - stored_alerts),
            "memory_mib": {
                "first_quarter_mean": round(sum(mem[:quarter]) / quarter, 1) if mem else None,
                "last_quarter_mean": round(sum(mem[-quarter:]) / quarter, 1) if mem else None,
                "max": max(mem) if mem else None,
                "samples": self.memory,
            },
        }

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __post_init__(self) -> None:
        self._log = (self.var_dir / "server.log").open("ab")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m assistant.eval.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--duration", type=float, default=600.0, help="seconds of streaming")
    p.add_argument("--interval", type=float, default=2.0, help="mean seconds between a call's messages")
    p.add_argument("--bad", type=float, default=0.05, help="share of malformed messages")
    p.add_argument("--reconnect-rate", type=float, default=0.5, help="random drops per call per minute")
    p.add_argument("--restart-at", type=float, default=0.5, help="forced restart at this share of the run")
    p.add_argument("--sample-s", type=float, default=5.0, help="memory sampling period")
    p.add_argument("--fake-models", action="store_true", help="the keyword analyzer and rule advisor")
    p.add_argument("--var-dir", type=Path, default=None, help="server data folder (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    args = p.parse_args(argv)
    if args.calls < 1 or args.duration <= 0 or not 0 <= args.bad < 1:
        p.error("--calls >= 1, --duration > 0 and 0 <= --bad < 1")
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="soak-"))
    var_dir.mkdir(parents=True, exist_ok=True)
    soak = Soak(args, _free_port(), var_dir)
    try:
        soak.start_server()
        report = asyncio.run(soak.run())
    finally:
        soak.close()
    summary = {k: v for k, v in report.items() if k != "memory_mib"} | {
        "memory_mib": {k: v for k, v in report["memory_mib"].items() if k != "samples"}
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    ok = not (report["crashes"] or report["chunks_lost"] or report["chunks_doubled"] or report["http_5xx"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
