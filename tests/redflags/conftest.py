"""Fixtures for the red-flag tests: the real public data sets, required rather than skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.settings import get_settings


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """ASSISTANT_DATA_DIR (default ../shared/datasets). Missing data fails the test: the leakage guarantees
    (no test text in any training or validation row) can only be checked on the real data, so CI must have it."""
    path = get_settings().data_dir
    if not path.is_dir():
        pytest.fail(
            f"public data sets not found at {path}: set ASSISTANT_DATA_DIR to the folder that holds them "
            "(default ../shared/datasets); these checks are not skipped"
        )
    return path
