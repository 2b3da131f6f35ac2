"""Contract tests shared by both databases: migrations, writes through the writer, reads."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from assistant.store import Insert, Store, StoreWriter, Update, Upsert, utcnow
from assistant.store import models as m


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _call_row(call_id: str, **changes: object) -> m.Call:
    now = utcnow()
    values: dict[str, object] = {
        "id": call_id,
        "status": "live",
        "started_at": now,
        "updated_at": now,
        "end_reason": "",
        "last_seq": -1,
        "last_eid": 0,
        "severity": 0.0,
        "severity_level": "none",
        "peak_severity": 0.0,
        "peak_level": "none",
        "flag_counts": {},
        "advisor_state": {},
    }
    return m.Call(**(values | changes))


def test_store_migrates_idempotently_and_round_trips_a_call(db_url: str) -> None:
    call_id = f"c-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        store = Store(db_url)
        await store.start()
        await store.migrate()  # a second run is a no-op
        writer = StoreWriter(store)
        await writer.start()
        now = utcnow()
        writer.put(Upsert(_call_row(call_id)))
        for seq in (1, 2, 2):  # the repeated chunk is ignored by the unique (call_id, seq)
            writer.put(
                Insert(
                    m.Chunk(call_id=call_id, seq=seq, speaker="customer", text=f"t{seq}", received_at=now),
                    ignore_conflict=("call_id", "seq"),
                )
            )
        writer.put(
            Insert(
                m.Flag(
                    call_id=call_id,
                    seq=2,
                    labels=["insult"],
                    scores={"insult": 0.9},
                    spans=[],
                    severity=0.5,
                    level="medium",
                    created_at=now,
                )
            ),
            Insert(
                m.Alert(
                    id=f"a-{call_id}",
                    call_id=call_id,
                    episode=1,
                    seq=2,
                    reason="abusive",
                    level="high",
                    severity=0.7,
                    labels=["insult"],
                    text="t2",
                    updates=0,
                    created_at=now,
                    updated_at=now,
                )
            ),
            Update(m.Alert, f"a-{call_id}", {"acked_at": now, "acked_by": "sup"}, only_if_null="acked_at"),
            Update(m.Alert, f"a-{call_id}", {"acked_at": now, "acked_by": "late"}, only_if_null="acked_at"),
            Update(m.Call, call_id, {"status": "ended", "last_seq": 2, "ended_at": now}),
        )
        await writer.flush()
        rec = await store.get_call(call_id)
        assert rec is not None and rec.status == "ended" and rec.last_seq == 2
        assert [c.seq for c in rec.transcript] == [1, 2]
        assert rec.flags[0].labels == ["insult"] and rec.alerts[0].acked_by == "sup"
        summaries = await store.list_calls(status="ended")
        assert call_id in [s.id for s in summaries]
        resume = await store.resume_state(call_id)
        assert resume is not None and resume.ended and resume.last_seq == 2 and resume.chunks[-1].seq == 2
        fb = await store.add_feedback(call_id=call_id, verdict="wrong", subject="agent-1", eid=7)
        assert fb.id > 0 and (await store.list_feedback())[0].verdict == "wrong"
        assert await store.get_call("missing") is None
        await writer.close()
        await store.close()

    asyncio.run(scenario())


def test_store_writer_survives_a_bad_batch(db_url: str) -> None:
    async def scenario() -> None:
        store = Store(db_url)
        await store.start()
        writer = StoreWriter(store, retry_delay_s=0.01)
        await writer.start()
        writer.put(Insert(m.Call(id="x")))  # missing NOT NULL columns: the batch fails twice and is dropped
        await writer.flush()
        assert writer.dropped == 1
        call_id = f"ok-{uuid.uuid4().hex[:6]}"
        writer.put(Upsert(_call_row(call_id)))
        await writer.flush()
        assert await store.call_exists(call_id)
        await writer.close()
        await store.close()

    asyncio.run(scenario())


def test_plan_batch_puts_parents_first_and_groups_same_shaped_ops() -> None:
    from assistant.store.repository import plan_batch

    def chunk(call: str, seq: int) -> Insert:
        row = m.Chunk(call_id=call, seq=seq, speaker="customer", text="t", received_at=utcnow())
        return Insert(row, ignore_conflict=("call_id", "seq"))

    ops = [chunk("a", 1), Upsert(_call_row("a")), chunk("a", 2), Upsert(_call_row("b"))]
    ops.append(Update(m.Call, "a", {"status": "ended"}))
    ops.append(Update(m.Call, "b", {"status": "ended"}))
    runs = plan_batch(ops)
    assert [[type(op).__name__ for op in run] for run in runs] == [
        ["Upsert", "Upsert"],  # calls first (the parent table), in their queued order
        ["Update", "Update"],  # same columns set, rows picked by the same key: one statement
        ["Insert", "Insert"],  # then the chunks, as one statement
    ]
    assert [op.values["seq"] for op in runs[2] if isinstance(op, Insert)] == [1, 2]


def test_batched_writes_keep_one_at_a_time_semantics(db_url: str) -> None:
    """Runs are written with executemany; the outcome equals applying every op in its queued order."""
    a, b = (f"c-{uuid.uuid4().hex[:8]}" for _ in range(2))

    async def scenario() -> None:
        store = Store(db_url)
        await store.start()
        now = utcnow()

        def chunk(call: str, seq: int, text: str) -> Insert:
            row = m.Chunk(call_id=call, seq=seq, speaker="customer", text=text, received_at=now)
            return Insert(row, ignore_conflict=("call_id", "seq"))

        # A child row queued before its call's row, a repeated chunk (the first stays) and three states of
        # one call (the last wins), all in one batch.
        await store.write(
            [
                Upsert(_call_row(a)),
                chunk(a, 1, "first"),
                chunk(b, 1, "b1"),
                Upsert(_call_row(b, last_seq=1)),
                chunk(a, 1, "repeated"),
                Upsert(_call_row(a, last_seq=1)),
                chunk(a, 2, "second"),
                Upsert(_call_row(a, last_seq=2)),
            ]
        )
        # Call states as the service writes them after every chunk: one executemany, the last per call wins,
        # and a first-wins update (only_if_null) is not merged into it.
        state = {"last_eid": 0, "severity": 0.0}
        await store.write(
            [
                Update(m.Call, a, {**state, "last_eid": 5}),
                Update(m.Call, b, {**state, "last_eid": 7}),
                Update(m.Call, a, {**state, "last_eid": 6, "severity": 0.5}),
                Update(m.Call, b, {"end_reason": "hangup"}, only_if_null="ended_at"),
                Update(m.Call, b, {"end_reason": "timeout"}, only_if_null="ended_at"),
            ]
        )
        rec_a, rec_b = await store.get_call(a), await store.get_call(b)
        assert rec_a is not None and rec_b is not None
        assert rec_a.last_seq == 2 and rec_b.last_seq == 1
        assert (rec_a.last_eid, rec_a.severity, rec_b.last_eid) == (6, 0.5, 7)
        assert rec_b.end_reason == "timeout"  # ended_at stays null, so both applied, in order
        assert [(c.seq, c.text) for c in rec_a.transcript] == [(1, "first"), (2, "second")]
        assert [c.text for c in rec_b.transcript] == ["b1"]
        await store.close()

    asyncio.run(scenario())


def test_writer_lingers_to_group_ops_but_a_flush_does_not_wait() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.batches: list[int] = []

        async def write(self, ops: list[object]) -> None:
            self.batches.append(len(ops))

    async def scenario() -> None:
        rec = Recorder()
        writer = StoreWriter(rec, linger_ms=500)  # type: ignore[arg-type]
        await writer.start()
        loop = asyncio.get_running_loop()
        for k in range(3):
            writer.put(Update(m.Call, "c", {"last_seq": k}))
            await asyncio.sleep(0.01)  # arrivals spread out, as under load
        t0 = loop.time()
        await writer.flush()
        assert loop.time() - t0 < 0.4  # the barrier cut the linger short
        assert rec.batches == [3]
        await writer.close()

    asyncio.run(scenario())


def test_sqlite_file_writes_go_through_one_thread_and_reads_see_them(tmp_path: Path) -> None:
    """A SQLite file takes batched writes on a sqlite3 thread of its own (one hop per batch); the async
    engine's readers see each batch once write() returns. An in-memory database keeps the one engine."""

    async def run() -> tuple[bool, bool, bool]:
        store = Store(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
        memory = Store("sqlite+aiosqlite:///:memory:")
        await store.start()
        await memory.start()
        try:
            now = utcnow()
            await store.write([Upsert(m.Call(id="c-1", status="live", started_at=now, updated_at=now))])
            return store._sync_writes is not None, await store.call_exists("c-1"), memory._sync_writes is None
        finally:
            await store.close()
            await memory.close()

    threaded, visible, memory_single = asyncio.run(run())
    assert threaded and visible and memory_single


def test_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    """The Alembic migrations and ``store/models.py`` describe one schema: autogenerate finds nothing to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import Connection

    from assistant.store.models import metadata

    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, metadata))

    async def scenario() -> list[object]:
        store = Store(db_url)
        await store.start()
        try:
            async with store.engine.connect() as conn:
                return await conn.run_sync(diff)
        finally:
            await store.close()

    assert asyncio.run(scenario()) == []


def test_update_names_unknown_columns() -> None:
    with pytest.raises(ValueError, match="no column"):
        Update(m.Call, "c", {"severty": 0.5})
