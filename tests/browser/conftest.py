"""Fixtures of the browser tests: a real uvicorn server on fakes, Debian's Chromium through Playwright.

Every test module here sets ``pytestmark = pytest.mark.browser`` (``pytest -m browser`` runs them alone). They
are skipped with a reason when ``/usr/bin/chromium`` or the Playwright package is missing. Screenshots go to
``test-artifacts/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    ARTIFACTS,
    AUTH_SECRET,
    CHROMIUM,
    CHROMIUM_ARGS,
    FAKE_REPORT,
    BrowserServer,
    browser_settings,
)

from assistant.api.app import create_app
from assistant.testing import KeywordAnalyzer, RuleAdvisor


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserServer]:
    var_dir = tmp_path_factory.mktemp("browser-var")
    (var_dir / "reports").mkdir()
    (var_dir / "reports" / "redflags.json").write_text(json.dumps(FAKE_REPORT))
    app = create_app(browser_settings(var_dir), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
    with BrowserServer(app) as srv:
        yield srv


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserServer]:
    """The same app with authentication on (ASSISTANT_AUTH_SECRET set)."""
    var_dir = tmp_path_factory.mktemp("browser-auth-var")
    app = create_app(
        browser_settings(var_dir, auth_secret=AUTH_SECRET), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor()
    )
    with BrowserServer(app) as srv:
        yield srv


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is open, and
# later tests that call asyncio.run() must not find it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: apt-get install chromium (the browser tests drive Debian's Chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
