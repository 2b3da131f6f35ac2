"""The store writer under failure: one call's bad row never costs another call's rows; an unavailable database
holds writes in a bounded buffer, says so loudly, and writes them when it is back."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from assistant.store import Insert, Store, StoreWriter, Update, Upsert, utcnow
from assistant.store import models as m
from assistant.store.writer import validate_op


def _call(call_id: str) -> Upsert:
    now = utcnow()
    return Upsert(
        m.Call(
            id=call_id,
            status="live",
            started_at=now,
            updated_at=now,
            end_reason="",
            last_seq=-1,
            last_eid=0,
            severity=0.0,
            severity_level="none",
            peak_severity=0.0,
            peak_level="none",
            flag_counts={},
            advisor_state={},
        )
    )


def _chunk(call_id: str, seq: int, text: str = "t") -> Insert:
    row = m.Chunk(call_id=call_id, seq=seq, speaker="customer", text=text, received_at=utcnow())
    return Insert(row, ignore_conflict=("call_id", "seq"))


async def _seqs(store: Store, call_id: str) -> list[int]:
    rec = await store.get_call(call_id)
    return [c.seq for c in rec.transcript] if rec else []


def test_bad_values_refused_before_batching() -> None:
    assert validate_op(_chunk("a", 10**30)) is not None
    assert validate_op(_chunk("a", 1, "nul \x00 byte")) is not None
    assert validate_op(_chunk("a", 1, "lone \ud800")) is not None
    assert validate_op(Update(m.Call, "a", {"severity": float("nan")})) is not None
    assert validate_op(_chunk("a", 2**53 - 1, "ok")) is None


def test_one_calls_bad_row_never_fails_another_calls_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        store = Store(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
        await store.start()
        writer = StoreWriter(store, retry_delay_s=0.01, linger_ms=50)
        await writer.start()
        writer.put(_call("victim"), _call("attacker"))
        writer.put(*(_chunk("victim", s) for s in range(20)))
        writer.put(_chunk("attacker", 10**30))  # refused at put(): never joins a batch
        writer.put(Insert(m.Call(id="broken")))  # passes validation, fails in the database (NOT NULL)
        writer.put(*(_chunk("victim", s) for s in range(20, 40)))
        await writer.flush()
        assert await _seqs(store, "victim") == list(range(40))
        assert writer.health.rejected == 2 and writer.health.dropped == 2 and writer.healthy
        await writer.close()
        await store.close()

    with caplog.at_level(logging.ERROR, logger="assistant.store.writer"):
        asyncio.run(scenario())
    refused = [r for r in caplog.records if r.getMessage() == "store row refused"]
    assert {getattr(r, "call_id", None) for r in refused} == {"attacker", "broken"}


def test_sqlite_folder_removed_then_restored_nothing_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "var"
    folder.mkdir()
    moved = tmp_path / "var-away"

    async def scenario() -> None:
        store = Store(f"sqlite+aiosqlite:///{folder / 'w.db'}")
        await store.start()
        writer = StoreWriter(store, retry_s=0.05)
        await writer.start()
        writer.put(_call("c1"), *(_chunk("c1", s) for s in range(5)))
        await writer.flush()
        folder.rename(moved)  # the database folder disappears under the running service
        writer.put(*(_chunk("c1", s) for s in range(5, 10)), _call("c2"), _chunk("c2", 0))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not writer.healthy:
                break
        assert not writer.healthy and writer.dropped == 0 and writer.backlog == 7
        assert set(writer.health.waiting_calls) == {"c1", "c2"}
        await writer.flush(timeout_s=0.1)  # a read does not hang on the outage
        moved.rename(folder)  # the database is back
        await writer.flush(timeout_s=5)
        assert writer.healthy and writer.backlog == 0
        assert await _seqs(store, "c1") == list(range(10))
        assert await _seqs(store, "c2") == [0]
        await writer.close()
        await store.close()

    with caplog.at_level(logging.WARNING, logger="assistant.store.writer"):
        asyncio.run(scenario())
    errors = [r for r in caplog.records if r.getMessage().startswith("store unavailable")]
    assert errors and set(getattr(errors[0], "calls", [])) == {"c1", "c2"}
    assert any(r.getMessage().startswith("store available again") for r in caplog.records)


def test_sqlite_file_replaced_is_an_outage_not_silent_loss(tmp_path: Path) -> None:
    db = tmp_path / "w.db"

    async def scenario() -> None:
        store = Store(f"sqlite+aiosqlite:///{db}")
        await store.start()
        writer = StoreWriter(store, retry_s=0.05)
        await writer.start()
        writer.put(_call("c1"))
        await writer.flush()
        shutil.copy(db, tmp_path / "copy.db")
        db.unlink()
        (tmp_path / "copy.db").rename(
            db
        )  # same content, another file: the open connection would write elsewhere
        writer.put(_chunk("c1", 0))
        await writer.flush(timeout_s=0.3)
        assert not writer.healthy and writer.backlog == 1
        await writer.close(timeout_s=0.2)
        await store.close()

    asyncio.run(scenario())


def test_read_only_database_holds_writes_in_a_bounded_buffer(tmp_path: Path) -> None:
    """A database that refuses writes (as SQLite does for a read-only file): held, bounded, then written."""

    async def scenario() -> None:
        store = Store(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
        await store.start()
        real_write = store.write
        refusing = True

        async def write(ops: list) -> None:  # type: ignore[type-arg]
            if refusing:
                raise OperationalError("INSERT", {}, Exception("attempt to write a readonly database"))
            await real_write(ops)

        store.write = write  # type: ignore[method-assign]
        writer = StoreWriter(store, retry_s=0.02, buffer_max=100)
        await writer.start()
        writer.put(_call("c1"))
        writer.put(*(_chunk("c1", s) for s in range(150)))  # 151 ops; the buffer holds 100
        await writer.flush(timeout_s=0.2)
        assert not writer.healthy and writer.dropped == 51 and writer.backlog == 100
        refusing = False
        await writer.flush(timeout_s=5)
        assert writer.healthy and writer.backlog == 0
        assert await _seqs(store, "c1") == list(range(99))
        await writer.close()
        await store.close()

    asyncio.run(scenario())


def test_notify_runs_after_the_ops_before_it_are_written(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(f"sqlite+aiosqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
        await store.start()
        writer = StoreWriter(store, linger_ms=20)
        await writer.start()
        seen: list[list[int]] = []
        writer.put(_call("c1"), _chunk("c1", 0), _chunk("c1", 1))
        done = asyncio.Event()

        async def check() -> None:
            seen.append(await _seqs(store, "c1"))
            done.set()

        writer.notify(lambda: asyncio.ensure_future(check()))
        await asyncio.wait_for(done.wait(), 5)
        assert seen == [[0, 1]]
        await writer.close()
        await store.close()

    asyncio.run(scenario())
