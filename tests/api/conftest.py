"""Fixtures for the streaming service: an app on fakes with a temporary SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from streaming_support import LiveServer, make_settings

from assistant.api.app import create_app
from assistant.settings import Settings
from assistant.testing import KeywordAnalyzer, RuleAdvisor


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def analyzer() -> KeywordAnalyzer:
    return KeywordAnalyzer()


@pytest.fixture
def app(settings: Settings, analyzer: KeywordAnalyzer) -> FastAPI:
    return create_app(settings, analyzer=analyzer, advisor=RuleAdvisor())


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as srv:
        yield srv
