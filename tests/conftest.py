"""Shared fixtures. Expensive models load once per session; real Redis and PostgreSQL servers start once.

The servers come from the Debian packages (``.ci/run`` installs them); a test that needs a missing one is
skipped with the package to install.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# `auto` picks the red-flag model by CPU (bf16 units or not); the tests that hold a model to its card's figures
# must load the same model on every machine. tests/redflags/test_fast_model.py tests the other one and `auto`.
os.environ.setdefault("ASSISTANT_REDFLAG_MODEL", "redflags")
# Likewise the retrieval encoder's depth (auto: 4 layers without bf16 units); tests/knowledge/test_encoder_layers.py
# tests the shallower one and `auto`.
os.environ.setdefault("ASSISTANT_QUERY_ENCODER_LAYERS", "6")

from assistant.cluster.servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not RedisServer.available():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if not PostgresServer.available():
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # Not under pytest's tmp folder: the postgres user must be able to reach it when the tests run as root.
    with tempfile.TemporaryDirectory(prefix="pgtest-") as base, PostgresServer(Path(base)) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url


@pytest.fixture
def postgres_workdir() -> Iterator[Path]:
    """A folder for a test's own PostgreSQL (outside pytest's root-only tmp folder; see postgres_server)."""
    with tempfile.TemporaryDirectory(prefix="pgtest-") as base:
        os.chmod(base, 0o755)  # the postgres user (tests run as root) must reach the folders inside
        yield Path(base)
