"""The load benchmark: simulated live calls over real WebSockets against a running service.

Each simulated call opens the agent's sidebar (``WS /v1/calls/{id}/events``) and the transcript source
(``WS /v1/calls/{id}/stream``), then streams chunks from the demo transcripts and written call phrases. A
chunk's latency is the time from sending it on the source socket to receiving its ``processed`` event (the
last of its events, docs/protocol.md) on the sidebar socket. A chunk with no ``processed`` event by the end of
the grace period is lost; an event number (``eid``) or a ``processed`` seq seen twice is a doubled event.
A customer chunk's red-flag latency is the time from sending it to the first event that carries its red-flag
result (``flag`` when something was flagged, else ``scored``); a customer chunk with neither by the end of the
grace period counts in ``flags_lost``. ``shed`` is the work the service skipped under overload, by kind (the
difference of its ``assistant_shed_total`` counters over the phase, from ``/metrics``).

Three kinds of phase (``run_phase``):

* ``rate``: N calls, one chunk per call every ``rate_s`` seconds (starts staggered evenly), for ``duration_s``;
* ``saturation``: K calls in a closed loop (each sends its next chunk as soon as the previous one is processed)
  for ``duration_s``: the throughput the service sustains, compared optimized vs naive;
* ``single``: one call alone, a chunk every ``rate_s`` seconds: the latency without load.

The pure parts (``percentile``, ``account``, ``summarize``) are unit-tested; ``ServerProcess`` starts the
service in its own process (so client and server do not share a GIL) and samples its CPU and memory.

Example:
    >>> percentile([10.0, 20.0, 30.0, 40.0], 50)
    25.0
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import psutil

from assistant.calls.transcript import TRANSCRIPTS_DIR, demo_transcripts, load_transcript
from assistant.cluster.servers import free_port, stop_process

GRACE_S = 10.0  # after the last chunk is sent, wait this long for its events before counting it lost
PhaseKind = Literal["rate", "saturation", "single"]

# Written call phrases beside the demo transcripts: customer and agent turns of ordinary, irritated and
# abusive calls, so the load mixes flagged and calm chunks as a contact center does.
CUSTOMER_PHRASES: tuple[str, ...] = (
    "Hi, I'm calling because my internet keeps dropping every evening.",
    "I was charged twice for the same month and I want that money back.",
    "This is the third time I'm calling about the same problem.",
    "Can I speak to your manager, please? I've had enough of this.",
    "If this isn't fixed today I'm cancelling my contract and switching to another provider.",
    "You people are absolutely useless, do you know that?",
    "I'm going to report you to the ombudsman and talk to my lawyer.",
    "Okay, that sounds fine, thank you.",
    "My new phone hasn't arrived yet, the tracking says it was delivered.",
    "What the hell is wrong with your company? Nobody ever calls me back.",
    "I just want to update the address on my account.",
    "Put me through to someone who actually knows what they're doing.",
    "I'll post about this on social media if nobody helps me.",
    "Yes, the account is in my name.",
    "Stop wasting my time, you idiot.",
    "Why do I have to explain this again? I already told the last person.",
    "Could you tell me when the engineer will arrive?",
    "I'm really frustrated, this has been going on for weeks.",
)
AGENT_PHRASES: tuple[str, ...] = (
    "Thank you for calling Northwind Telecom, how can I help you today?",
    "I'm sorry to hear that. Can I confirm the account holder's name, please?",
    "I understand how frustrating this must be, let me look into it right away.",
    "I can see the duplicate charge on your account, I'll raise a refund now.",
    "I'm going to transfer you to my supervisor, please hold for a moment.",
    "I want to help you, but I need you to stop using that language.",
    "Is there anything else I can help you with today?",
    "I've booked an engineer visit for tomorrow morning between eight and twelve.",
    "Let me check the delivery status of your order.",
    "Thank you for your patience, have a good day.",
)


# ---- pure measurement ------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


@dataclass
class CallRecord:
    """What one simulated call saw: send times and processed times by seq, events by eid, errors."""

    call_id: str
    sent: dict[int, float] = field(default_factory=dict)  # seq -> client clock at send
    customer: set[int] = field(default_factory=set)  # seqs sent as customer turns (red flags apply)
    flagged: dict[int, float] = field(default_factory=dict)  # seq -> client clock at its red-flag result
    degraded: int = 0  # degraded events seen (the service said a feature fell behind or recovered)
    processed: dict[int, float] = field(default_factory=dict)  # seq -> client clock at its processed event
    partial: set[int] = field(default_factory=set)  # seqs processed with work skipped (``shed``)
    processed_twice: int = 0
    eids: set[int] = field(default_factory=set)
    eids_twice: int = 0
    errors: list[str] = field(default_factory=list)
    refused: bool = False  # the worker was full (``worker_full``, close 1013): the call never started

    def on_event(self, data: Mapping[str, Any], now: float) -> None:
        """Account one sidebar event (already parsed)."""
        eid = data.get("eid")
        if isinstance(eid, int) and eid > 0:
            if eid in self.eids:
                self.eids_twice += 1
            self.eids.add(eid)
        kind = data.get("type")
        if kind in ("flag", "scored"):
            seq = data.get("seq")
            if isinstance(seq, int) and seq not in self.flagged:
                self.flagged[seq] = now
        elif kind == "degraded":
            self.degraded += 1
        elif kind == "processed":
            seq = data.get("seq")
            if isinstance(seq, int):
                if seq in self.processed:
                    self.processed_twice += 1
                else:
                    self.processed[seq] = now
                    if data.get("shed"):
                        self.partial.add(seq)
        elif kind == "error":
            self.errors.append(str(data.get("reason", "error")))


@dataclass
class Accounting:
    """Per-chunk latencies and the chunks that went wrong, over all calls of a phase."""

    latencies_ms: list[float]
    sent_at_s: list[float]  # seconds since the phase began, beside each latency
    sent: int
    processed: int
    processed_in_window: int  # processed before the load stopped (the saturation throughput counts these)
    complete: int  # processed with every feature served (nothing shed)
    complete_in_window: int
    lost: int
    doubled: int
    errors: int
    flags_latencies_ms: list[float] = field(default_factory=list)  # customer chunks: send -> red-flag result
    flags_sent: int = 0
    flags_lost: int = 0
    degraded_events: int = 0
    refused_calls: int = 0


def account(records: Sequence[CallRecord], *, t0: float, t_end: float = math.inf) -> Accounting:
    """Match sends with processed events: latency per chunk, lost chunks, doubled events, errors."""
    pairs: list[tuple[float, float]] = []
    flag_lat: list[float] = []
    sent = processed = in_window = complete = complete_in_window = 0
    lost = doubled = errors = flags_sent = flags_lost = degraded = 0
    refused = sum(r.refused for r in records)
    for r in records:
        sent += len(r.sent)
        degraded += r.degraded
        for seq in r.customer:
            t_sent_c = r.sent.get(seq)
            if t_sent_c is None:
                continue
            flags_sent += 1
            t_flag = r.flagged.get(seq)
            if t_flag is None:
                flags_lost += 1
            else:
                flag_lat.append(round(max(0.0, (t_flag - t_sent_c) * 1000.0), 3))
        for seq, t_sent in r.sent.items():
            t_done = r.processed.get(seq)
            if t_done is None:
                lost += 1
            else:
                processed += 1
                in_window += t_done <= t_end
                if seq not in r.partial:
                    complete += 1
                    complete_in_window += t_done <= t_end
                pairs.append((t_sent - t0, max(0.0, (t_done - t_sent) * 1000.0)))
        doubled += r.processed_twice + r.eids_twice
        errors += len(r.errors)
    pairs.sort()
    return Accounting(
        latencies_ms=[round(lat, 3) for _, lat in pairs],
        sent_at_s=[round(t, 3) for t, _ in pairs],
        sent=sent,
        processed=processed,
        processed_in_window=in_window,
        complete=complete,
        complete_in_window=complete_in_window,
        lost=lost,
        doubled=doubled,
        errors=errors,
        flags_latencies_ms=sorted(flag_lat),
        flags_sent=flags_sent,
        flags_lost=flags_lost,
        degraded_events=degraded,
        refused_calls=refused,
    )


def summarize(acc: Accounting, *, elapsed_s: float, closed_loop: bool = False) -> dict[str, Any]:
    """The headline figures of a phase: throughput (processed chunks/s) and latency percentiles in ms.

    Open load (a fixed rate) counts every processed chunk over the sending time; a closed loop (saturation)
    counts only the chunks processed while the load ran. ``complete_throughput`` counts only the chunks served
    with every feature: a service that skips suggestions to keep up processes more chunks for less work.
    """
    done = acc.processed_in_window if closed_loop else acc.processed
    complete = acc.complete_in_window if closed_loop else acc.complete
    lat = acc.latencies_ms

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    return {
        "chunks_sent": acc.sent,
        "chunks_processed": acc.processed,
        "throughput": round(done / elapsed_s, 2) if elapsed_s > 0 else 0.0,
        "complete_throughput": round(complete / elapsed_s, 2) if elapsed_s > 0 else 0.0,
        "chunks_partial": acc.processed - acc.complete,
        "p50_ms": r(percentile(lat, 50)),
        "p95_ms": r(percentile(lat, 95)),
        "p99_ms": r(percentile(lat, 99)),
        "max_ms": r(max(lat) if lat else None),
        "mean_ms": r(sum(lat) / len(lat) if lat else None),
        "errors": acc.errors,
        "lost_events": acc.lost + acc.doubled,
        "lost_chunks": acc.lost,
        "doubled_events": acc.doubled,
        "flags_sent": acc.flags_sent,
        "flags_p50_ms": r(percentile(acc.flags_latencies_ms, 50)),
        "flags_p95_ms": r(percentile(acc.flags_latencies_ms, 95)),
        "flags_p99_ms": r(percentile(acc.flags_latencies_ms, 99)),
        "flags_lost": acc.flags_lost,
        "degraded_events": acc.degraded_events,
        "refused_calls": acc.refused_calls,
    }


# ---- the script of a simulated call ------------------------------------------------------------------------
def load_scripts(
    folder: Path = TRANSCRIPTS_DIR, *, seed: int = 7, n_written: int = 12
) -> list[list[dict[str, str]]]:
    """Call scripts (speaker, text turns): the demo transcripts plus calls written from the phrase lists."""
    scripts: list[list[dict[str, str]]] = []
    for path in demo_transcripts(folder).values():
        scripts.append([{"speaker": c.speaker, "text": c.text} for c in load_transcript(path)])
    rng = random.Random(seed)
    for _ in range(n_written):
        turns = []
        for k in range(16):
            if k % 2 == 0:
                turns.append({"speaker": "agent", "text": rng.choice(AGENT_PHRASES)})
            else:
                turns.append({"speaker": "customer", "text": rng.choice(CUSTOMER_PHRASES)})
        scripts.append(turns)
    return scripts


# ---- the load generator -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhaseSpec:
    """One phase of load: which kind, how many calls, for how long, at what rate."""

    kind: PhaseKind
    calls: int
    duration_s: float
    rate_s: float = 2.0
    grace_s: float = GRACE_S
    connect_concurrency: int = 64
    # What each call's source socket asks for (`?events=`): "replies" as a telephony connector would (the
    # call's events go to the sidebar socket only), or "all" (every event twice, as before 2026-11-30).
    source_events: str = "replies"


async def _connect(url: str, *, open_timeout: float = 30.0) -> Any:
    from websockets.asyncio.client import connect

    # Offers permessage-deflate, as browsers do: the service's ASSISTANT_WS_COMPRESSION decides.
    return await connect(
        url, open_timeout=open_timeout, max_size=1 << 22, compression="deflate", ping_interval=None
    )


class _StartClock:
    """Starts a phase's clock (a short lead time after the last call connected, or failed to)."""

    def __init__(self, calls: int, *, lead_s: float = 0.5) -> None:
        self._waiting = calls
        self._lead_s = lead_s
        self.taken = 0  # calls the service took (not refused): their start times are spread over the period
        self.started: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def arrived(self, *, taken: bool = False) -> int:
        """Count a call as connected (or failed); a taken call gets its slot, 0.. in the order calls arrived."""
        slot = self.taken
        self.taken += taken
        self._waiting -= 1
        if self._waiting <= 0 and not self.started.done():
            self.started.set_result(time.perf_counter() + self._lead_s)
        return slot

    def offset(self, slot: int, period_s: float) -> float:
        """When a taken call sends within each period, so that the calls taken send evenly (a worker that
        refused part of the calls would otherwise see the first ones only, in a burst)."""
        return slot * period_s / max(1, self.taken)


async def _sim_call(
    base_url: str,
    record: CallRecord,
    turns: list[dict[str, str]],
    *,
    spec: PhaseSpec,
    clock: _StartClock,
    connected: asyncio.Semaphore,
    token: str | None,
) -> None:
    """Connect sidebar then source, wait for every call to connect, stream turns on schedule (or
    closed-loop), read everything, end."""
    auth = {"token": token} if token else {}
    call_url = f"{base_url}/v1/calls/{record.call_id}"
    done_seq: dict[int, asyncio.Event] = {}
    try:
        async with connected:
            sidebar = await _connect(f"{call_url}/events?{urlencode(auth)}")
            source = await _connect(f"{call_url}/stream?{urlencode({'events': spec.source_events, **auth})}")
        # The first reply says whether the worker took the call: ``ready``, or ``worker_full`` when it holds
        # ASSISTANT_MAX_LIVE_CALLS calls (counted apart: a refusal by design, not an error of the run).
        first = json.loads(await asyncio.wait_for(source.recv(), 30.0))
    except Exception as e:  # a refused connection is an error of the run, not a crash of the bench
        record.errors.append(f"connect: {type(e).__name__}")
        clock.arrived()
        return
    if first.get("type") == "error":
        record.refused = first.get("reason") == "worker_full"
        if not record.refused:
            record.errors.append(str(first.get("reason", "error")))
        clock.arrived()
        for ws in (source, sidebar):
            with contextlib.suppress(Exception):
                await ws.close()
        return
    slot = clock.arrived(taken=True)
    t0 = await clock.started
    stagger = clock.offset(slot, spec.rate_s) if spec.kind != "saturation" else 0.0
    start_at, stop_at = t0 + stagger, t0 + spec.duration_s

    async def read_sidebar() -> None:
        with contextlib.suppress(Exception):
            async for raw in sidebar:
                now = time.perf_counter()
                data = json.loads(raw)
                record.on_event(data, now)
                if data.get("type") == "processed":
                    ev = done_seq.get(data.get("seq", -1))
                    if ev is not None:
                        ev.set()

    async def read_source() -> None:
        # Only the source's own replies (acks, refusals) matter here; with ?events=all it repeats every event.
        with contextlib.suppress(Exception):
            async for raw in source:
                if '"error"' in raw:
                    data = json.loads(raw)
                    if data.get("type") == "error" and "eid" not in data:
                        record.errors.append(str(data.get("reason", "error")))

    readers = [asyncio.create_task(read_sidebar()), asyncio.create_task(read_source())]
    # Calls start at different points of their scripts, so customer and agent turns mix at every moment
    # (in phase, every call would send its customer turns in the same window).
    offset = sum(map(ord, record.call_id)) % len(turns)
    try:
        seq = 0
        t_next = start_at
        while True:
            if spec.kind != "saturation" or seq == 0:
                delay = t_next - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if time.perf_counter() >= stop_at:
                break
            turn = turns[(seq + offset) % len(turns)]
            seq += 1
            ev = done_seq[seq] = asyncio.Event()
            msg = json.dumps(
                {
                    "seq": seq,
                    "speaker": turn["speaker"],
                    "text": turn["text"],
                    "ts": round(seq * spec.rate_s, 2),
                }
            )
            record.sent[seq] = time.perf_counter()
            if turn["speaker"] == "customer":
                record.customer.add(seq)
            try:
                await source.send(msg)
            except Exception as e:
                record.errors.append(f"send: {type(e).__name__}")
                del record.sent[seq]
                record.customer.discard(seq)
                break
            if spec.kind == "saturation":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), max(0.0, stop_at + spec.grace_s - time.perf_counter()))
                if not ev.is_set():
                    break
            else:
                t_next += spec.rate_s
            done_seq.pop(seq - 2, None)
        # Grace: wait for the events of what was sent, then end the call.
        deadline = stop_at + spec.grace_s
        while (
            len(record.processed) < len(record.sent) or len(record.flagged) < len(record.customer)
        ) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):
            await source.send('{"type": "end"}')
    finally:
        for ws in (source, sidebar):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        for t in readers:
            t.cancel()
        for t in readers:
            with contextlib.suppress(BaseException):
                await t


async def run_phase(
    base_url: str | Sequence[str],
    spec: PhaseSpec,
    *,
    server: ServerProcess | None = None,
    token: str | None = None,
    scripts: list[list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """Run one phase of load against ``base_url`` (ws://host:port); returns its summary and latencies.

    With several URLs (workers of one cluster), call ``i`` goes to ``base_url[i % len(base_url)]``.
    """
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    scripts = scripts or load_scripts()
    ensure_open_files(2 * spec.calls + 64)
    shed_before = await _scrape_all(urls)
    run_id = uuid.uuid4().hex[:6]
    records = [CallRecord(f"bench-{spec.kind[:3]}-{run_id}-{i}") for i in range(spec.calls)]
    connected = asyncio.Semaphore(spec.connect_concurrency)
    # The clock starts once every call is connected: opening hundreds of calls in the same second is a
    # different load (measured apart as connect_s) from the steady state of hundreds of live calls.
    clock = _StartClock(spec.calls)
    t_connect = time.perf_counter()
    calls = asyncio.gather(
        *(
            _sim_call(
                urls[i % len(urls)],
                rec,
                scripts[i % len(scripts)],
                spec=spec,
                clock=clock,
                connected=connected,
                token=token,
            )
            for i, rec in enumerate(records)
        )
    )
    t0 = await clock.started
    # The client's own CPU: on a machine it shares with the server it is CPU the server does not get.
    client_cpu0 = time.process_time()
    connect_s = t0 - t_connect
    until = t0 + spec.duration_s + spec.grace_s
    sampler = asyncio.create_task(server.sample_until(until)) if server is not None else None
    await calls
    client_cpu_s = time.process_time() - client_cpu0
    stop_at = t0 + spec.duration_s
    acc = account(records, t0=t0, t_end=stop_at)
    out = summarize(acc, elapsed_s=spec.duration_s, closed_loop=spec.kind == "saturation")
    shed_after = await _scrape_all(urls)
    out["shed"] = {k: round(v - shed_before.get(k, 0.0)) for k, v in sorted(shed_after.items())}
    out.update(
        kind=spec.kind,
        calls=spec.calls,
        duration_s=spec.duration_s,
        rate_s=spec.rate_s if spec.kind != "saturation" else None,
        offered_rate=round(spec.calls / spec.rate_s, 2) if spec.kind != "saturation" else None,
        connect_s=round(connect_s, 2),
        client_cpu_s=round(client_cpu_s, 2),
    )
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        out.update(server.usage() if server is not None else {})
        done = out.get("chunks_processed") or 0
        # CPU per chunk: what sizes a deployment, and it holds on a busy machine where wall-clock figures do not.
        out["server_cpu_ms_per_chunk"] = round(1000 * out["server_cpu_s"] / done, 2) if done else None
        out["client_cpu_ms_per_chunk"] = round(1000 * client_cpu_s / done, 2) if done else None
    out["latencies_ms"] = acc.latencies_ms
    out["sent_at_s"] = acc.sent_at_s
    out["flags_latencies_ms"] = acc.flags_latencies_ms
    return out


def ensure_open_files(needed: int) -> None:
    """Raise the open-files limit for ``needed`` sockets, or say how (a 1,000-call run holds 2,000)."""
    from assistant.runtime import raise_open_files_limit

    soft, hard = raise_open_files_limit()
    if 0 < soft < needed:
        raise RuntimeError(
            f"this load needs about {needed} open sockets but the open files limit is {soft} (hard {hard}); "
            f"raise it (ulimit -n {needed}) or run fewer calls"
        )


_SHED_RE = re.compile(r'^assistant_shed_total\{kind="([^"]+)"\}\s+([0-9.eE+]+)$')


def parse_shed(metrics_text: str) -> dict[str, float]:
    """``assistant_shed_total`` by kind from a Prometheus text page."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        m = _SHED_RE.match(line.strip())
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


async def _scrape_all(urls: Sequence[str]) -> dict[str, float]:
    """The shed counters summed over every worker of the run."""
    total: dict[str, float] = {}
    for counters in await asyncio.gather(*(scrape_shed(u) for u in urls)):
        for k, v in counters.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _http_url(ws_url: str) -> str:
    """The service's HTTP base for its WebSocket base (ws://h:p -> http://h:p, wss -> https)."""
    return "http" + ws_url[2:] if ws_url.startswith("ws") else ws_url


async def scrape_shed(ws_url: str) -> dict[str, float]:
    """The service's shed counters (empty when its /metrics cannot be read: an older service, auth, ...)."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            resp = await client.get(f"{_http_url(ws_url)}/metrics")
    except httpx.HTTPError:
        return {}
    return parse_shed(resp.text) if resp.status_code == 200 else {}


_BEHIND_RE = re.compile(r'^assistant_degraded\{feature="red_flags"\}\s+1(\.0)?$', re.MULTILINE)


def red_flags_behind(metrics_text: str) -> bool:
    """True when a /metrics page says the service's red flags are behind (``assistant_degraded``)."""
    return _BEHIND_RE.search(metrics_text) is not None


async def wait_caught_up(
    ws_url: str, *, timeout_s: float = 60.0, every_s: float = 0.5, clock: Any = time.monotonic
) -> bool:
    """Wait until the service's red flags are no longer behind; False when ``timeout_s`` passed first.

    Why: a phase that begins on the previous phase's backlog measures both, and a service that refuses new calls
    while its red flags are late (``ASSISTANT_REFUSE_CALLS_WHEN_BEHIND``) would refuse the next phase's calls.
    """
    import httpx

    deadline = clock() + timeout_s
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            try:
                resp = await client.get(f"{_http_url(ws_url)}/metrics")
            except httpx.HTTPError:
                return True  # no metrics to read (an older service, auth): nothing to wait for
            if resp.status_code != 200 or not red_flags_behind(resp.text):
                return True
            if clock() >= deadline:
                return False
            await asyncio.sleep(every_s)


# ---- the server under test ----------------------------------------------------------------------------------
class ServerStartError(RuntimeError):
    """The service under test did not come up; the message carries the end of its log."""


class ServerProcess:
    """``assistant serve`` in a subprocess on a free loopback port, with its CPU and memory sampled.

    Example:
        >>> with ServerProcess({"ASSISTANT_USE_FAKE_MODELS": "1"}) as srv:  # doctest: +SKIP
        ...     srv.ws_url
        'ws://127.0.0.1:40123'
    """

    def __init__(self, env: Mapping[str, str] | None = None, *, start_timeout_s: float = 180.0) -> None:
        self.env = dict(env or {})
        self.port = free_port()
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log: Any = None
        self._ps: psutil.Process | None = None
        self._cpu: list[float] = []
        self._rss: list[float] = []
        self._cpu_s0 = 0.0
        self._cpu_s = 0.0  # the server's CPU seconds (all threads) over the last sampled phase

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        import httpx

        self._tmp = tempfile.TemporaryDirectory(prefix="assistant-bench-")
        env = {**os.environ, **self.env}
        # A fresh database per run: the benchmark's calls must not pile up in var/assistant.db.
        env.setdefault("ASSISTANT_DATABASE_URL", f"sqlite+aiosqlite:///{self._tmp.name}/bench.db")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        self._log = open(Path(self._tmp.name) / "server.log", "w+b")  # noqa: SIM115 (closed in stop())
        cmd = [sys.executable, "-m", "assistant", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self._proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerStartError(f"the service exited with {self._proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1.0).status_code == 200:
                    self._ps = psutil.Process(self._proc.pid)
                    self._ps.cpu_percent(None)
                    return
            time.sleep(0.25)
        self.stop()
        raise ServerStartError(f"the service did not answer /healthz in {self.start_timeout_s:.0f} s")

    def log_tail(self, n: int = 800) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        return " ".join(text[-n:].split())

    def send_signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, as in a crash (its temporary folder stays until stop())."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait (a graceful shutdown); returns the exit status."""
        return stop_process(self._proc, timeout_s)

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def sample_until(self, until: float, *, every_s: float = 0.5) -> None:
        """Sample the server's CPU (% of one core) and RSS until ``until`` (time.perf_counter clock)."""
        self._cpu, self._rss = [], []
        if self._ps is None:
            return
        self._ps.cpu_percent(None)
        with contextlib.suppress(psutil.Error):
            t = self._ps.cpu_times()
            self._cpu_s0 = t.user + t.system
        while time.perf_counter() < until:
            await asyncio.sleep(every_s)
            with contextlib.suppress(psutil.Error):
                self._cpu.append(self._ps.cpu_percent(None))
                self._rss.append(self._ps.memory_info().rss / 2**20)
                t = self._ps.cpu_times()
                self._cpu_s = t.user + t.system - self._cpu_s0

    def usage(self) -> dict[str, Any]:
        cpu, rss = self._cpu, self._rss
        return {
            "server_cpu_s": round(self._cpu_s, 2),
            "cpu_percent_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
            "cpu_percent_max": round(max(cpu), 1) if cpu else None,
            "rss_mb_max": round(max(rss), 1) if rss else None,
            "rss_mb_end": round(rss[-1], 1) if rss else None,
        }


# The CPU features that decide the kernels and the precision (``lscpu`` flags): speed figures mean little without.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
# Environment variables that cap the kernel libraries below the CPU's features (a CPU posing as AVX2-only).
KERNEL_CAPS = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "FBGEMM_ENABLE_INSTRUCTIONS",
)


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the figures were measured on: CPU model and its speed-relevant flags, kernel caps, cores, memory,
    load at the start, GPU."""
    cpu, flags = platform.processor() or platform.machine(), set[str]()
    with contextlib.suppress(OSError):
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # the first processor's lines
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        cpu = fields.get("model name", cpu)
        flags = set(fields.get("flags", "").split())
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_flags": [f for f in SPEED_FLAGS if f in flags],
        "kernel_caps": {k: os.environ[k] for k in KERNEL_CAPS if os.environ.get(k)},
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


# ---- configurations -----------------------------------------------------------------------------------------
def optimized_env(
    *,
    mode: str,
    device: str,
    batch_max_size: int,
    batch_max_wait_ms: float,
    torch_threads: int,
    query_mode: str = "auto",
) -> dict[str, str]:
    """The service as shipped for load: micro-batching of both encoder passes, the chosen inference modes."""
    return {
        "ASSISTANT_INFERENCE_MODE": mode,
        "ASSISTANT_QUERY_INFERENCE_MODE": query_mode,
        "ASSISTANT_DEVICE": device,
        "ASSISTANT_BATCH_MAX_SIZE": str(batch_max_size),
        "ASSISTANT_BATCH_MAX_WAIT_MS": str(batch_max_wait_ms),
        "ASSISTANT_EMBED_BATCHING": "true",
        "ASSISTANT_TORCHSCRIPT": "true",
        "ASSISTANT_TORCH_THREADS": str(torch_threads),
        # Recorded, not chosen: the operator's setting (auto by default) decides where queries come from.
        "ASSISTANT_SHARED_QUERY_PASS": os.environ.get("ASSISTANT_SHARED_QUERY_PASS", "auto"),
    }


# An hour: the naive service serves every suggestion however late (it has no overload handling), so a saturation
# phase measures its throughput at the whole work, not at the half it keeps up with by skipping suggestions.
NAIVE_SUGGESTION_MAX_AGE_MS = 3_600_000


def naive_env(*, device: str, torch_threads: int) -> dict[str, str]:
    """One chunk at a time: batch size 1, no batching wait, full fp32 eager models, a query encoder pass of its
    own per customer chunk, unbatched; and no overload shedding (a suggestion is never too old), so that its
    saturation throughput is that of the whole work, as the optimized service's is."""
    return {
        "ASSISTANT_INFERENCE_MODE": "fp32",
        "ASSISTANT_QUERY_INFERENCE_MODE": "fp32",
        "ASSISTANT_TORCHSCRIPT": "false",
        "ASSISTANT_DEVICE": device,
        "ASSISTANT_BATCH_MAX_SIZE": "1",
        "ASSISTANT_BATCH_MAX_WAIT_MS": "0",
        "ASSISTANT_EMBED_BATCHING": "false",
        "ASSISTANT_SHARED_QUERY_PASS": "off",
        "ASSISTANT_SUGGESTION_MAX_AGE_MS": str(NAIVE_SUGGESTION_MAX_AGE_MS),
        "ASSISTANT_TORCH_THREADS": str(torch_threads),
    }


# ---- the plot --------------------------------------------------------------------------------------------------
def plot_latency(report: Mapping[str, Any], out: Path) -> Path:
    """Latency over time and its histogram, optimized vs naive (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {"optimized": report}
    if isinstance(report.get("naive"), Mapping):
        runs["naive"] = report["naive"]
    fig, (ax_t, ax_h) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"optimized": "tab:blue", "naive": "tab:orange"}
    all_lat = [x for r in runs.values() for x in r.get("latencies_ms", []) if x > 0]
    lo = max(0.1, min(all_lat)) if all_lat else 1.0
    hi = max(all_lat) if all_lat else 10.0
    bins = [lo * (hi / lo) ** (i / 50) for i in range(51)] if hi > lo else 50
    for name, r in runs.items():
        lat, at = r.get("latencies_ms", []), r.get("sent_at_s", [])
        if not lat:
            continue
        ax_t.scatter(at, lat, s=2, alpha=0.35, color=colors[name], label=f"{name} (p95 {r.get('p95_ms')} ms)")
        ax_h.hist(lat, bins=bins, alpha=0.55, color=colors[name], label=name)
    for ax in (ax_t, ax_h):
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    ax_t.set_yscale("log")
    ax_t.set_xlabel("chunk sent at (s since the load began)")
    ax_t.set_ylabel("chunk to processed event (ms)")
    ax_t.set_title(f"{report.get('calls')} calls, one chunk per call every {report.get('rate_s')} s")
    ax_h.set_xscale("log")
    ax_h.set_xlabel("latency (ms)")
    ax_h.set_ylabel("chunks")
    ax_h.set_title("latency histogram")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ---- the table ------------------------------------------------------------------------------------------------
TARGETS = {
    "p95_ms": 150.0,
    "p99_ms": 300.0,
    "rss_mb_max": 1536.0,
    "single_p50_ms": 15.0,
    "speedup": 3.0,
    "flags_p95_ms": 500.0,
}


def format_table(report: Mapping[str, Any]) -> str:
    """A fixed-width table: optimized vs naive, then the speedup and the targets."""
    cols = {"optimized": report}
    if isinstance(report.get("naive"), Mapping):
        cols["naive"] = report["naive"]
    rows = [
        ("calls", "calls"),
        ("connecting them (s)", "connect_s"),
        ("chunks sent", "chunks_sent"),
        ("chunks processed", "chunks_processed"),
        ("throughput (chunks/s)", "throughput"),
        ("p50 (ms)", "p50_ms"),
        ("p95 (ms)", "p95_ms"),
        ("p99 (ms)", "p99_ms"),
        ("max (ms)", "max_ms"),
        ("errors", "errors"),
        ("refused (worker full)", "refused_calls"),
        ("lost events", "lost_events"),
        ("red flags p50 (ms)", "flags_p50_ms"),
        ("red flags p95 (ms)", "flags_p95_ms"),
        ("red flags lost", "flags_lost"),
        ("shed (by kind)", "shed"),
        ("server CPU % (mean)", "cpu_percent_mean"),
        ("server RSS MB (max)", "rss_mb_max"),
        ("server CPU ms per chunk", "server_cpu_ms_per_chunk"),
        ("client CPU ms per chunk", "client_cpu_ms_per_chunk"),
        ("saturation (chunks/s)", "saturation_throughput"),
        ("  with every feature", "saturation_complete_throughput"),
        ("one call alone p50 (ms)", "single_p50_ms"),
    ]
    lines = [f"{'':<26}" + "".join(f"{name:>14}" for name in cols)]
    for label, key in rows:
        cells = []
        for r in cols.values():
            v = r.get(key)
            if isinstance(v, Mapping):
                v = ", ".join(f"{k} {n}" for k, n in v.items() if n) or 0
            cells.append(f"{'-' if v is None else v!s:>14}")
        lines.append(f"{label:<26}" + "".join(cells))
    sp = report.get("speedup_vs_naive")
    if sp is not None:
        lines.append(f"speedup vs naive (saturation, chunks served with every feature): {sp:.2f}x")
    sp_all = report.get("speedup_vs_naive_processed")
    if sp_all is not None:
        lines.append(f"  counting chunks processed with suggestions skipped too: {sp_all:.2f}x")
    checks = report.get("targets")
    if isinstance(checks, Mapping):
        lines.append("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in checks.items()))
    return "\n".join(lines)


def check_targets(report: Mapping[str, Any]) -> dict[str, bool]:
    """The issue's targets, as far as this run's load matches them (see ``TARGETS``)."""
    out: dict[str, bool] = {}

    def le(key: str, limit: float) -> bool:
        v = report.get(key)
        return v is not None and v <= limit

    out["p95<=150ms"] = le("p95_ms", TARGETS["p95_ms"])
    out["p99<=300ms"] = le("p99_ms", TARGETS["p99_ms"])
    out["no errors"] = report.get("errors") == 0
    out["no lost events"] = report.get("lost_events") == 0
    if report.get("refused_calls"):  # a worker with ASSISTANT_MAX_LIVE_CALLS took only part of the load
        out["every call taken"] = False
    out["rss<=1.5GB"] = le("rss_mb_max", TARGETS["rss_mb_max"])
    if report.get("flags_sent"):
        out["flags p95<=500ms"] = le("flags_p95_ms", TARGETS["flags_p95_ms"])
        out["no flags lost"] = report.get("flags_lost") == 0
    if report.get("single_p50_ms") is not None:
        out["one call p50<=15ms"] = le("single_p50_ms", TARGETS["single_p50_ms"])
    if report.get("speedup_vs_naive") is not None:
        out["speedup>=3x"] = report["speedup_vs_naive"] >= TARGETS["speedup"]
    return out


_PER_CHUNK = ("latencies_ms", "sent_at_s", "flags_latencies_ms")  # kept for the rate phase only


def merge_config(
    rate: Mapping[str, Any], saturation: Mapping[str, Any] | None, single: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One configuration's report: the rate phase's figures at the top, the other phases beside them."""
    out = dict(rate)
    if saturation is not None:
        out["saturation_throughput"] = saturation.get("throughput")
        out["saturation_complete_throughput"] = saturation.get("complete_throughput")
        out["saturation"] = {k: v for k, v in saturation.items() if k not in _PER_CHUNK}
    if single is not None:
        out["single_p50_ms"] = single.get("p50_ms")
        out["single"] = {k: v for k, v in single.items() if k not in _PER_CHUNK}
    return out


def speedup(
    optimized: Mapping[str, Any], naive: Mapping[str, Any], *, key: str = "saturation_complete_throughput"
) -> float | None:
    """Saturation throughput, optimized / naive, at equal work: by default only the chunks each served with
    every feature count (``key="saturation_throughput"``: every processed chunk, skipped suggestions or not)."""
    a, b = optimized.get(key), naive.get(key)
    if not a or not b:
        return None
    return round(float(a) / float(b), 2)
