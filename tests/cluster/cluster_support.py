"""Helpers for the multi-process cluster tests: workers on a shared Redis and PostgreSQL, a scripted call.

A worker is ``assistant serve --fake-models`` in its own process (``ServerProcess``, as the bench starts it),
so that killing one (SIGKILL) is a real crash. The sockets are read with the synchronous websockets client:
the server pushes into the socket while the test does something else, and the test reads it afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from live_server import TRANSCRIPTS
from websockets.sync.client import ClientConnection, connect

from assistant.cluster.servers import PostgresServer
from assistant.eval.bench import ServerProcess


def scripted_call() -> list[dict[str, Any]]:
    """30 chunks: an abusive stretch, a calm one, then a customer who wants a manager and a lawyer."""
    chunks: list[dict[str, Any]] = []
    for name in ("billing-dispute-abusive.jsonl", "manager-request.jsonl"):
        offset = chunks[-1]["ts"] + 60.0 if chunks else 0.0
        for line in (TRANSCRIPTS / name).read_text().splitlines():
            c = json.loads(line)
            chunks.append(
                {
                    "seq": len(chunks) + 1,
                    "speaker": c["speaker"],
                    "text": c["text"],
                    "ts": offset + c["ts"],
                }
            )
    return chunks


async def _create_db(server: PostgresServer) -> str:
    name = f"cluster_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/{name}"


def fresh_database(server: PostgresServer) -> str:
    import asyncio

    return asyncio.run(_create_db(server))


def worker_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "ASSISTANT_USE_FAKE_MODELS": "1",
        "ASSISTANT_REDIS_URL": redis_url,
        "ASSISTANT_DATABASE_URL": database_url,
        "ASSISTANT_BATCH_MAX_WAIT_MS": "1",
        **extra,
    }


@contextmanager
def workers(
    env: dict[str, str], n: int, *, first: dict[str, str] | None = None
) -> Iterator[list[ServerProcess]]:
    """``n`` workers on ``env``; ``first`` adds settings to the first one only."""
    procs = [ServerProcess({**env, **(first or {})} if i == 0 else env, start_timeout_s=60) for i in range(n)]
    try:
        for p in procs:
            p.start()
        yield procs
    finally:
        for p in procs:
            p.stop()


def ws(server: ServerProcess, path: str) -> ClientConnection:
    return connect(f"{server.ws_url}{path}", open_timeout=10, max_size=1 << 22)


def recv(sock: ClientConnection, timeout: float = 15.0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sock.recv(timeout=timeout))
    return data


def read_until(sock: ClientConnection, kind: str, *, timeout: float = 15.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while not got or got[-1]["type"] != kind:
        got.append(recv(sock, timeout))
    return got


def drain_until_pong(sock: ClientConnection) -> list[dict[str, Any]]:
    """What the socket received until the pong, without the service's ``degraded`` notices (load-dependent)."""
    sock.send(json.dumps({"type": "ping"}))
    got = read_until(sock, "pong")
    return [m for m in got[:-1] if m["type"] != "degraded"]


def send_chunk(source: ClientConnection, chunk: dict[str, Any]) -> None:
    source.send(json.dumps(chunk))


def stream_and_wait(source: ClientConnection, chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one chunk and read the source socket until its ``processed`` event."""
    send_chunk(source, chunk)
    got: list[dict[str, Any]] = []
    while True:
        msg = recv(source)
        got.append(msg)
        if msg["type"] == "processed" and msg["seq"] == chunk["seq"]:
            return got


def var(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
