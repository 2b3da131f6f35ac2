"""`assistant replay TRANSCRIPT.jsonl [--url ws://...] [--speed N]`: stream a transcript file as a live call.

Prints what the agent's sidebar would show: the redacted transcript, flags, severity changes, next steps and
alerts. Chunks are sent at their ``ts`` spacing divided by ``--speed`` (``0``: as fast as possible). If the
connection drops, it reconnects and resumes after the server's ``last_seq``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from assistant.calls.transcript import load_transcript
from assistant.errors import AssistantError, InvalidInputError
from assistant.events.messages import ChunkIn, is_safe_call_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="stream a transcript file (JSON Lines) as a live call and print what the sidebar shows",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "transcript", type=Path, help="JSONL file: one chunk per line (call_id, seq, speaker, text, ...)"
    )
    p.add_argument(
        "--url", default=None, help="server base URL, e.g. ws://127.0.0.1:8000 (default: settings)"
    )
    p.add_argument("--speed", type=float, default=1.0, help="real-time multiple; 0 = as fast as possible")
    p.add_argument("--call-id", default=None, help="call id to stream as (default: the file's id + a suffix)")
    p.add_argument("--agent", default=None, help="name or id of the agent handling the call (stored with it)")
    p.add_argument(
        "--token", default=None, help="source token (default: $ASSISTANT_TOKEN, or issued locally)"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the last events")
    p.set_defaults(handler=_run)


_PER_CHUNK = frozenset({"transcript", "flag", "severity", "suggestion", "guidance", "alert"})


def _mmss(ts: float | None) -> str:
    if ts is None:
        return "--:--"
    return f"{int(ts // 60):02d}:{ts % 60:04.1f}"


def render(event: dict[str, Any]) -> str | None:
    """One readable line for a sidebar event (None for protocol chatter)."""
    kind = event.get("type")
    pad = " " * 10
    if kind == "transcript" and event.get("is_final", True):
        return f"[{_mmss(event.get('call_ts'))}] {event['speaker']:>8}: {event['text']}"
    if kind == "flag":
        sev = event["severity"]
        return f"{pad}FLAG {', '.join(event['labels'])}  (call severity {sev['level']} {sev['score']:.2f})"
    if kind == "severity" and event.get("level") != event.get("previous_level"):
        return f"{pad}severity {event['previous_level']} -> {event['level']} ({event['score']:.2f})"
    if kind == "suggestion" and event.get("suggestions"):
        s = event["suggestions"][0]
        return (
            f"{pad}NEXT STEP {s['procedure_title']} {s['step_index'] + 1}/{s['step_count']}: {s['step']}\n"
            f'{pad}  say: "{s["script"]}"'
        )
    if kind == "guidance":
        return _render_guidance(event, pad)
    if kind == "alert":
        what = "ALERT UPDATE" if event.get("update") else "ALERT"
        return f"{pad}!! {what} to supervisors: {event['reason']} {event['level']} ({', '.join(event['labels'])})"
    if kind == "alert_ack":
        return f"{pad}alert acknowledged by {event['acked_by']}"
    if kind == "gap":
        return f"{pad}gap: seq {event['first_missing']}-{event['last_missing']} missing ({event['reason']})"
    if kind == "error":
        return f"{pad}error: {event['reason']}: {event['message']}"
    if kind == "call_ended":
        return f"call ended ({event['reason']}), last seq {event['last_seq']}"
    return None


def _render_guidance(event: dict[str, Any], pad: str) -> str | None:
    """Stages entered, checklist steps ticked, and the abuse protocol's moves (what the sidebar's region shows)."""
    parts: list[str] = []
    if event.get("stages_entered"):
        parts.append(f"{pad}STAGE {' -> '.join(event['stages_entered'])}")
    titles = {s["step"]: s["title"] for s in event.get("checklist", [])}
    for step in event.get("steps_done", []):
        parts.append(f"{pad}CHECKLIST ✓ {titles.get(step, step)} (score {event.get('score', 0):.2f})")
    protocol = event.get("protocol") or {}
    for step in event.get("protocol_given", []):
        parts.append(f"{pad}PROTOCOL done: {step}")
    for step in event.get("protocol_due", []):
        say = f': "{protocol["say"]}"' if protocol.get("due") == step and protocol.get("say") else ""
        parts.append(f"{pad}PROTOCOL due: {step} (severity {protocol.get('severity')}){say}")
    if event.get("supervisor_alert"):
        parts.append(f"{pad}PROTOCOL supervisors alerted")
    if event.get("wellbeing_offered"):
        offered = ", ".join(w["title"] for w in protocol.get("wellbeing", []))
        parts.append(f"{pad}WELL-BEING offered: {offered}")
    if protocol.get("may_end_call") and event.get("protocol_due"):
        parts.append(f"{pad}PROTOCOL the agent may end the call")
    return "\n".join(parts) or None


def _stream_url(base: str, call_id: str) -> str:
    if "/v1/calls/" in base:
        return base
    return f"{base.rstrip('/')}/v1/calls/{call_id}/stream"


def _token(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    if os.environ.get("ASSISTANT_TOKEN"):
        return os.environ["ASSISTANT_TOKEN"]
    secret = os.environ.get("ASSISTANT_AUTH_SECRET", "")
    if secret:
        from assistant.auth import issue_token

        return issue_token(secret, role="source", subject="replay", ttl_s=3600)
    return None


async def replay(
    chunks: list[ChunkIn],
    *,
    url: str,
    call_id: str,
    speed: float = 1.0,
    token: str | None = None,
    timeout_s: float = 30.0,
    emit: Callable[[str], None] = lambda line: None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    max_reconnects: int = 3,
    agent: str | None = None,
) -> list[dict[str, Any]]:
    """Stream ``chunks`` as call ``call_id``; returns every event received (emit() gets the readable lines)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    target = _stream_url(url, call_id)
    if agent:
        target += ("&" if "?" in target else "?") + urlencode({"agent": agent})
    headers = {"Authorization": f"Bearer {token}"} if token else None
    events: list[dict[str, Any]] = []
    t0 = chunks[0].ts or 0.0
    started = time.monotonic()
    reconnects = 0
    ended = False
    while not ended:
        try:
            async with connect(target, additional_headers=headers, max_size=2**22, open_timeout=10) as ws:
                ready = json.loads(await ws.recv())
                if ready.get("type") != "ready":
                    raise AssistantError(f"server refused the stream: {ready.get('message', ready)}")
                last_seq = int(ready.get("last_seq", -1))

                async def receive() -> None:
                    held: dict[int, list[str]] = {}  # a chunk's lines print together once it is processed
                    async for raw in ws:
                        ev = json.loads(raw)
                        events.append(ev)
                        if on_event is not None:
                            on_event(ev)
                        line = render(ev)
                        seq = ev.get("seq")
                        if ev.get("type") in _PER_CHUNK and isinstance(seq, int):
                            if line:
                                held.setdefault(seq, []).append(line)
                        elif ev.get("type") == "processed" and isinstance(seq, int):
                            for held_line in held.pop(seq, []):
                                emit(held_line)
                        elif line:
                            emit(line)

                reader = asyncio.create_task(receive())
                for c in chunks:
                    if c.seq <= last_seq:
                        continue
                    if speed > 0 and c.ts is not None:
                        delay = (c.ts - t0) / speed - (time.monotonic() - started)
                        if delay > 0:
                            await asyncio.sleep(delay)
                    payload = c.model_dump(exclude={"type"}, exclude_none=True) | {"call_id": call_id}
                    await ws.send(json.dumps(payload))
                await ws.send('{"type": "end"}')
                try:
                    await asyncio.wait_for(reader, timeout_s)
                except TimeoutError as e:
                    raise AssistantError(f"no end of call from the server after {timeout_s:.0f} s") from e
                ended = True
                if ws.close_code not in (1000, None):
                    raise AssistantError(
                        f"server closed the stream with code {ws.close_code}: {ws.close_reason}"
                    )
        except InvalidStatus as e:
            raise AssistantError(
                f"server refused the connection to {target}: HTTP {e.response.status_code}"
            ) from e
        except (OSError, TimeoutError) as e:
            raise AssistantError(f"cannot connect to {target}: {e}; is `assistant serve` running?") from e
        except ConnectionClosed as e:
            if e.rcvd is not None and e.rcvd.code >= 4000:
                raise AssistantError(f"server closed the stream: {e.rcvd.code} {e.rcvd.reason}") from e
            reconnects += 1
            if reconnects > max_reconnects:
                raise AssistantError(f"connection to {target} dropped {reconnects} times; giving up") from e
            emit(f"connection dropped ({e}); resuming")
    return events


def _run(args: argparse.Namespace) -> int:
    from assistant.settings import get_settings

    chunks = load_transcript(args.transcript)
    if args.speed < 0:
        raise InvalidInputError("--speed must be >= 0 (0 = as fast as possible)")
    base_id = chunks[0].call_id or args.transcript.stem
    call_id = args.call_id or f"{base_id}-{secrets.token_hex(3)}"
    if not is_safe_call_id(call_id):
        raise InvalidInputError(f"call id {call_id!r} is not a safe identifier (A-Z a-z 0-9 . _ -, max 64)")
    settings = get_settings()
    url = args.url or f"ws://{settings.host}:{settings.port}"
    print(f"replaying {args.transcript} as call {call_id} on {url} (speed {args.speed:g})", flush=True)
    asyncio.run(
        replay(
            chunks,
            url=url,
            call_id=call_id,
            speed=args.speed,
            token=_token(args.token),
            timeout_s=args.timeout,
            emit=lambda line: print(line, flush=True),
            agent=args.agent,
        )
    )
    http = url.replace("ws://", "http://").replace("wss://", "https://").split("/v1/")[0]
    print(f"record: {http}/v1/calls/{call_id}")
    return 0
