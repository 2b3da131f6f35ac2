"""Migrations on an empty PostgreSQL: the schema the models describe, at Alembic's head, whoever migrates."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from assistant.cluster.servers import PostgresServer
from assistant.store import Store
from assistant.store import models as m
from assistant.store.repository import MIGRATIONS_DIR

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


async def _empty_database(server: PostgresServer) -> str:
    name = f"empty_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/{name}"


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def _schema(store: Store) -> tuple[set[str], list[str]]:
    async with store.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        versions = [r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))]
    return tables, versions


def test_migrations_build_the_whole_schema_on_an_empty_postgres(postgres_server: PostgresServer) -> None:
    async def scenario() -> None:
        url = await _empty_database(postgres_server)
        store = Store(url)
        await store.start()  # migrates
        try:
            tables, versions = await _schema(store)
            assert {t.name for t in m.metadata.sorted_tables} <= tables
            assert versions == [_head()]
            await store.migrate()  # again: nothing to do
            assert await _schema(store) == (tables, versions)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_workers_starting_together_migrate_an_empty_postgres_once(postgres_server: PostgresServer) -> None:
    """Every worker migrates at start-up; an advisory lock makes the second wait, then find nothing to do."""

    async def scenario() -> None:
        url = await _empty_database(postgres_server)
        stores = [Store(url) for _ in range(3)]
        await asyncio.gather(*(s.start() for s in stores))
        try:
            _, versions = await _schema(stores[0])
            assert versions == [_head()]
        finally:
            for s in stores:
                await s.close()

    asyncio.run(scenario())
