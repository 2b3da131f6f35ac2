"""The call record store: SQLAlchemy 2 async engine, migrations at start-up, batched writes, reads.

Same code on SQLite (``sqlite+aiosqlite:///var/assistant.db``, the embedded default) and PostgreSQL
(``postgresql+asyncpg://...``). Writes arrive as ``Insert``/``Upsert``/``Update`` operations on the ORM classes
of ``models.py`` (the one schema), normally through the write-behind ``StoreWriter`` so that the hot path never
waits for the database.

Example:
    >>> store = Store("sqlite+aiosqlite:///:memory:")  # cheap; connect and migrate with await store.start()
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from assistant.errors import ConfigurationError
from assistant.store import models as m
from assistant.store.records import (
    AckRecord,
    AlertRecord,
    CallRecord,
    CallSummary,
    ChunkRecord,
    FeedbackRecord,
    FlagRecord,
    ResumeState,
    SuggestionRecord,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_TABLES: dict[str, Table] = {t.name: t for t in m.metadata.sorted_tables}
# Parents before children (foreign keys): a batch is applied in this table order.
_TABLE_RANK: dict[str, int] = {name: i for i, name in enumerate(_TABLES)}
_MIGRATION_LOCK_ID = 0x0A551574  # PostgreSQL advisory lock: one worker migrates at a time


def utcnow() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _columns(table: Table) -> frozenset[str]:
    return frozenset(c.key for c in table.columns)


def _table_of(model: type[m.Base]) -> Table:
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def _set_values(row: m.Base) -> dict[str, Any]:
    """The columns set on a new ORM row (unset ones get their column default on insert)."""
    state = row.__dict__
    return {k: state[k] for k in _columns(_table_of(type(row))) if k in state}


@dataclass(frozen=True, slots=True, init=False)
class Insert:
    """Insert a new row, e.g. ``Insert(models.Chunk(call_id=..., seq=..., ...))``."""

    table: Table
    values: dict[str, Any]
    ignore_conflict: tuple[str, ...]  # unique columns: a row already there is kept

    def __init__(self, row: m.Base, *, ignore_conflict: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "table", _table_of(type(row)))
        object.__setattr__(self, "values", _set_values(row))
        object.__setattr__(self, "ignore_conflict", ignore_conflict)


@dataclass(frozen=True, slots=True, init=False)
class Upsert:
    """Insert the row, or update the columns it sets when a row with its primary key exists."""

    table: Table
    values: dict[str, Any]

    def __init__(self, row: m.Base) -> None:
        object.__setattr__(self, "table", _table_of(type(row)))
        object.__setattr__(self, "values", _set_values(row))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.table.primary_key.columns)


@dataclass(frozen=True, slots=True, init=False)
class Update:
    """Set ``values`` on the row of ``model`` whose primary key is ``key``.

    ``only_if_null``: a column that must still be null (e.g. ``acked_at``: the first acknowledgement wins).
    """

    table: Table
    key: Any
    values: dict[str, Any]
    only_if_null: str | None

    def __init__(
        self, model: type[m.Base], key: Any, values: dict[str, Any], *, only_if_null: str | None = None
    ) -> None:
        table = _table_of(model)
        unknown = set(values).union([only_if_null] if only_if_null else []) - _columns(table)
        if unknown:
            raise ValueError(
                f"{model.__name__} has no column(s) {sorted(unknown)}; see assistant/store/models.py"
            )
        if len(table.primary_key.columns) != 1:
            raise ValueError(f"Update needs a single-column primary key; {model.__name__} has another")
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "values", dict(values))
        object.__setattr__(self, "only_if_null", only_if_null)

    @property
    def key_column(self) -> str:
        return next(iter(self.table.primary_key.columns)).key


Op = Insert | Upsert | Update


def call_id_of(op: Op) -> str:
    """The call an operation belongs to (for logs that must not name anything else)."""
    if isinstance(op, Update):
        return str(op.values.get("call_id", op.key))
    return str(op.values.get("call_id", op.values.get("id")))


def _signature(op: Op) -> tuple[Any, ...] | None:
    """Ops with equal signatures run as one executemany; None: the op runs alone."""
    if isinstance(op, Insert):
        return ("insert", op.table.name, tuple(op.values), op.ignore_conflict)
    if isinstance(op, Upsert):
        return ("upsert", op.table.name, tuple(op.values))
    if op.only_if_null is None:  # a first-wins update depends on the ones before it: it runs alone
        return ("update", op.table.name, tuple(op.values))
    return None


def _unique(rows: list[dict[str, Any]], keys: tuple[str, ...], *, keep: str) -> list[dict[str, Any]]:
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] for c in keys)
        if keep == "last" or k not in by_key:
            by_key[k] = row
    return list(by_key.values())


def plan_batch(ops: list[Op]) -> list[list[Op]]:
    """Order a batch parents-first and group it into runs that share one statement.

    The sort is stable, so ops on one table keep their order (an Upsert after an Insert of the same row, the
    last state of a call wins); only ops on different tables, which never depend on each other except through
    foreign keys, are reordered. One statement per run instead of per op: at 250 chunks/s the per-statement
    round trips through the SQLite thread were ~10% of the service's CPU.
    """
    ordered = sorted(ops, key=lambda op: _TABLE_RANK.get(op.table.name, len(_TABLE_RANK)))
    runs: list[list[Op]] = []
    for op in ordered:
        sig = _signature(op)
        if runs and sig is not None and _signature(runs[-1][0]) == sig:
            runs[-1].append(op)
        else:
            runs.append([op])
    return runs


def statements(dialect: str, ops: list[Op]) -> list[tuple[Any, list[dict[str, Any]] | None]]:
    """The statements (with executemany parameters, or None) that apply a batch on ``dialect``, in order."""
    out: list[tuple[Any, list[dict[str, Any]] | None]] = []
    for run in plan_batch(ops):
        out.append(_many(dialect, run) if len(run) > 1 else (_single(dialect, run[0]), None))
    return out


def _insert(dialect: str, t: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(t)
    if dialect == "sqlite":
        return sqlite.insert(t)
    return insert(t)


def _many(dialect: str, run: list[Op]) -> tuple[Any, list[dict[str, Any]]]:
    """One executemany for a run of Inserts, Upserts or Updates with the same table, columns and rule."""
    first = run[0]
    if isinstance(first, Update):
        return _many_updates([op for op in run if isinstance(op, Update)])
    rows = [op.values for op in run if isinstance(op, Insert | Upsert)]
    # A multi-row statement may not touch one key twice (PostgreSQL refuses it). Applied one at a time,
    # the last Upsert of a key wins and the first ignore-conflict Insert does: keep just that row.
    if isinstance(first, Upsert):
        rows = _unique(rows, first.keys, keep="last")
    elif isinstance(first, Insert) and first.ignore_conflict:
        rows = _unique(rows, first.ignore_conflict, keep="first")
    stmt = _insert(dialect, first.table)
    if isinstance(first, Insert) and first.ignore_conflict:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(first.ignore_conflict))
    elif isinstance(first, Upsert):
        changes = {k: stmt.excluded[k] for k in first.values if k not in first.keys}
        stmt = stmt.on_conflict_do_update(index_elements=list(first.keys), set_=changes)
    return stmt, rows


def _many_updates(run: list[Update]) -> tuple[Any, list[dict[str, Any]]]:
    """Updates that set the same columns of rows picked by the same columns: one executemany. Each sets
    absolute values, so of several updates to one row in a run only the last matters (the call state is
    written after every chunk; a batch holds a few chunks of each busy call)."""
    first = run[0]
    t = first.table
    last: dict[Any, Update] = {}
    for op in run:
        last.pop(op.key, None)  # re-insert: keep the order of last writes
        last[op.key] = op
    # Bind names differ from column names: SQLAlchemy reserves those for the SET clause.
    stmt = update(t).values({k: bindparam(f"v_{k}") for k in first.values})
    stmt = stmt.where(t.c[first.key_column] == bindparam("w_key"))
    params = [{"w_key": op.key, **{f"v_{k}": v for k, v in op.values.items()}} for op in last.values()]
    return stmt, params


def _single(dialect: str, op: Op) -> Any:
    if isinstance(op, Insert):
        stmt = _insert(dialect, op.table).values(**op.values)
        if op.ignore_conflict:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(op.ignore_conflict))
        return stmt
    if isinstance(op, Upsert):
        stmt = _insert(dialect, op.table).values(**op.values)
        changes = {k: v for k, v in op.values.items() if k not in op.keys}
        return stmt.on_conflict_do_update(index_elements=list(op.keys), set_=changes)
    t = op.table
    ustmt = update(t).values(**op.values).where(t.c[op.key_column] == op.key)
    if op.only_if_null:
        ustmt = ustmt.where(t.c[op.only_if_null].is_(None))
    return ustmt


def _run_upgrade(sync_conn: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


class Store:
    """Async access to the call record. Construct cheaply; ``await start()`` connects and migrates."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        if "://" not in url:
            raise ConfigurationError(f"ASSISTANT_DATABASE_URL is not a SQLAlchemy URL: {url!r}")
        self.url = url
        self.echo = echo
        self._engine: AsyncEngine | None = None
        # SQLite file: batched writes go through a plain sqlite3 engine on a thread of their own, one hop per
        # batch. Through aiosqlite every statement (cursor, execute, close) hopped between the event loop and
        # the SQLite thread: at 500 calls that was ~14% of a core on the loop thread and doubled the p95.
        self._sync_writes: Engine | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        # A SQLite file, and the (device, inode) it had at start: the writer refuses to write when the file is
        # gone or replaced, because an open connection would write to the deleted file without an error.
        self.sqlite_path: Path | None = None
        self.sqlite_identity: tuple[int, int] | None = None

    @property
    def started(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise ConfigurationError("Store used before start(); start it in the app lifespan")
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def start(self, *, migrate: bool = True) -> None:
        kwargs: dict[str, Any] = {"echo": self.echo}
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:" and not path.startswith("file:"):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            if ":memory:" in self.url:
                kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        try:
            self._engine = create_async_engine(self.url, **kwargs)
        except Exception as e:
            raise ConfigurationError(f"cannot use ASSISTANT_DATABASE_URL={self.url!r}: {e}") from e
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
            database = self._engine.url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                self._sync_writes = create_engine(
                    make_url(self.url).set(drivername="sqlite"), echo=self.echo, connect_args={"timeout": 30}
                )
                event.listen(self._sync_writes, "connect", _sqlite_pragmas)
                self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writes")
                self.sqlite_path = Path(database)
        if migrate:
            await self.migrate()
        if self.sqlite_path is not None and self.sqlite_path.exists():
            st = self.sqlite_path.stat()
            self.sqlite_identity = (st.st_dev, st.st_ino)

    def reset_connections(self) -> None:
        """Drop pooled write connections (after a failure): the next write opens the database afresh."""
        if self._sync_writes is not None:
            self._sync_writes.dispose()

    async def close(self) -> None:
        if self._write_thread is not None:
            self._write_thread.shutdown(wait=True)
            self._write_thread = None
        if self._sync_writes is not None:
            self._sync_writes.dispose()
            self._sync_writes = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision (idempotent)."""
        try:
            async with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})")
                await conn.run_sync(_run_upgrade)
        except OSError as e:
            raise ConfigurationError(f"cannot reach the database at ASSISTANT_DATABASE_URL: {e}") from e

    # ---- writes ----------------------------------------------------------------------------------------
    async def write(self, ops: list[Op]) -> None:
        """Apply the operations in order, in one transaction."""
        if not ops:
            return
        if self._sync_writes is not None:
            await asyncio.get_running_loop().run_in_executor(self._write_thread, self._write_sync, ops)
            return
        async with self.engine.begin() as conn:
            for stmt, params in statements(conn.dialect.name, ops):
                await conn.execute(stmt, params)

    def _write_sync(self, ops: list[Op]) -> None:
        engine = self._sync_writes
        if engine is None:
            raise ConfigurationError("Store closed while a write was queued")
        with engine.begin() as conn:
            for stmt, params in statements(conn.dialect.name, ops):
                conn.execute(stmt, params)

    async def add_feedback(
        self,
        *,
        call_id: str,
        verdict: str,
        subject: str,
        eid: int | None = None,
        procedure_id: str | None = None,
        step_index: int | None = None,
        comment: str | None = None,
    ) -> FeedbackRecord:
        row = m.Feedback(
            call_id=call_id,
            eid=eid,
            procedure_id=procedure_id,
            step_index=step_index,
            verdict=verdict,
            comment=comment,
            subject=subject,
            created_at=utcnow(),
        )
        table = _table_of(m.Feedback)
        async with self.engine.begin() as conn:
            result = await conn.execute(insert(table).values(**_set_values(row)).returning(table))
            return FeedbackRecord.model_validate(result.one())

    # ---- reads -----------------------------------------------------------------------------------------
    async def call_exists(self, call_id: str) -> bool:
        async with self.engine.connect() as conn:
            got = await conn.execute(select(m.Call.id).where(m.Call.id == call_id))
            return got.first() is not None

    async def call_agent(self, call_id: str) -> tuple[bool, str | None]:
        """(the call exists, the agent recorded when it was opened): who may read it."""
        async with self.engine.connect() as conn:
            got = (await conn.execute(select(m.Call.agent).where(m.Call.id == call_id))).first()
            return (False, None) if got is None else (True, got.agent)

    async def resume_state(self, call_id: str) -> ResumeState | None:
        """Status, last seq and eid and the last 20 chunks of a stored call, or None when unknown."""
        async with self.engine.connect() as conn:
            call = (await conn.execute(select(m.Call).where(m.Call.id == call_id))).first()
            if call is None:
                return None
            last = await conn.execute(select(func.max(m.Chunk.seq)).where(m.Chunk.call_id == call_id))
            last_seq = last.scalar_one_or_none()
            rows = await conn.execute(
                select(m.Chunk).where(m.Chunk.call_id == call_id).order_by(m.Chunk.seq.desc()).limit(20)
            )
            chunks = [ChunkRecord.model_validate(r) for r in reversed(rows.all())]
        return ResumeState(
            status=call.status,
            last_seq=last_seq if last_seq is not None else -1,
            last_eid=call.last_eid,
            chunks=chunks,
            guidance_state=dict(call.guidance_state or {}),
            live_state=call.live_state,
        )

    async def list_calls(self, *, limit: int = 100, status: str | None = None) -> list[CallSummary]:
        async with self.engine.connect() as conn:
            q = select(m.Call).order_by(m.Call.updated_at.desc()).limit(limit)
            if status:
                q = q.where(m.Call.status == status)
            calls = (await conn.execute(q)).all()
            ids = [c.id for c in calls]
            open_counts: dict[str, int] = {}
            if ids:
                rows = await conn.execute(
                    select(m.Alert.call_id, func.count())
                    .where(m.Alert.call_id.in_(ids), m.Alert.acked_at.is_(None))
                    .group_by(m.Alert.call_id)
                )
                open_counts = {cid: int(n) for cid, n in rows.all()}
        summaries = [CallSummary.model_validate(c) for c in calls]
        for summary in summaries:
            summary.open_alerts = open_counts.get(summary.id, 0)
        return summaries

    async def calls_started_between(
        self, since: datetime, until: datetime, *, agent: str | None = None, limit: int = 10_000
    ) -> list[str]:
        """Ids of the calls that began in ``[since, until)`` (handled by ``agent``, if given), oldest first."""
        async with self.engine.connect() as conn:
            q = (
                select(m.Call.id)
                .where(m.Call.started_at >= since, m.Call.started_at < until)
                .order_by(m.Call.started_at)
                .limit(limit)
            )
            if agent is not None:
                q = q.where(m.Call.agent == agent)
            return [row[0] for row in (await conn.execute(q)).all()]

    async def get_call(self, call_id: str) -> CallRecord | None:
        async with self.engine.connect() as conn:
            call = (await conn.execute(select(m.Call).where(m.Call.id == call_id))).first()
            if call is None:
                return None
            chunks = await conn.execute(
                select(m.Chunk).where(m.Chunk.call_id == call_id).order_by(m.Chunk.seq)
            )
            flags = await conn.execute(select(m.Flag).where(m.Flag.call_id == call_id).order_by(m.Flag.id))
            alerts = (
                await conn.execute(
                    select(m.Alert).where(m.Alert.call_id == call_id).order_by(m.Alert.created_at)
                )
            ).all()
            acks = await conn.execute(
                select(m.AlertAck).where(m.AlertAck.call_id == call_id).order_by(m.AlertAck.id)
            )
            sugg = await conn.execute(
                select(m.SuggestionRow).where(m.SuggestionRow.call_id == call_id).order_by(m.SuggestionRow.id)
            )
            fb = await conn.execute(
                select(m.Feedback).where(m.Feedback.call_id == call_id).order_by(m.Feedback.id)
            )
            acks_by_alert: dict[str, list[AckRecord]] = {}
            for a in acks.all():
                acks_by_alert.setdefault(a.alert_id, []).append(AckRecord.model_validate(a))
            record = CallRecord.model_validate(call)
            record.open_alerts = sum(1 for a in alerts if a.acked_at is None)
            record.transcript = [ChunkRecord.model_validate(r) for r in chunks.all()]
            record.flags = [FlagRecord.model_validate(f) for f in flags.all()]
            record.alerts = [_alert(a, acks_by_alert.get(a.id, [])) for a in alerts]
            record.suggestions = [SuggestionRecord.model_validate(x) for x in sugg.all()]
            record.feedback = [FeedbackRecord.model_validate(f) for f in fb.all()]
            report = (
                await conn.execute(select(m.IncidentReport.record).where(m.IncidentReport.call_id == call_id))
            ).first()
            record.incident_report = dict(report.record) if report is not None else None
            return record

    async def save_incident_report(self, call_id: str, record: dict[str, Any], *, by: str) -> None:
        """Store a supervisor's edited incident record of a call (replacing the previous edit)."""
        row = m.IncidentReport(call_id=call_id, record=record, updated_by=by, updated_at=utcnow())
        await self.write([Upsert(row)])

    async def get_alert(self, alert_id: str) -> AlertRecord | None:
        async with self.engine.connect() as conn:
            a = (await conn.execute(select(m.Alert).where(m.Alert.id == alert_id))).first()
            if a is None:
                return None
            acks = await conn.execute(select(m.AlertAck).where(m.AlertAck.alert_id == alert_id))
            return _alert(a, [AckRecord.model_validate(x) for x in acks.all()])

    async def open_alerts(self, *, limit: int = 1000) -> list[AlertRecord]:
        """The latest unacknowledged alerts, oldest first (a worker's alert index after a restart)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(m.Alert)
                .where(m.Alert.acked_at.is_(None))
                .order_by(m.Alert.created_at.desc())
                .limit(limit)
            )
            return [_alert(a, []) for a in reversed(rows.all())]

    async def list_feedback(self, *, limit: int = 1000) -> list[FeedbackRecord]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(m.Feedback).order_by(m.Feedback.id.desc()).limit(limit))
            return [FeedbackRecord.model_validate(f) for f in rows.all()]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
    except Exception:  # an in-memory database has no WAL; nothing to tune
        pass
    finally:
        cur.close()


def _alert(a: Any, acks: list[AckRecord]) -> AlertRecord:
    record = AlertRecord.model_validate(a)
    record.acks = acks
    return record
