from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from assistant.errors import ConfigurationError
from assistant.labels import GROUPS, LABELS, expand
from assistant.settings import load_settings


def test_namespace_maps_design_folders_under_assistant() -> None:
    api = importlib.import_module("assistant.api")
    ev = importlib.import_module("assistant.eval")
    assert api.__file__ is not None and api.__file__.replace("\\", "/").endswith("/api/__init__.py")
    assert ev.__file__ is not None and ev.__file__.replace("\\", "/").endswith("/eval/__init__.py")


def test_namespace_claims_no_generic_top_level_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = "import importlib.util as u; print(u.find_spec('api'), u.find_spec('eval'))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "None None"


def test_labels_match_product_contract() -> None:
    assert LABELS == (
        "profanity",
        "insult",
        "threat",
        "escalation_request",
        "legal_threat",
        "churn_risk",
        "frustration",
    )
    assert set(GROUPS) == {"abusive", "escalation"}
    assert expand(["insult"]) == {"insult", "abusive"}


def test_settings_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_PORT", "not-a-port")
    with pytest.raises(ConfigurationError, match="ASSISTANT_PORT"):
        load_settings()


def test_settings_embedded_default_is_sqlite_under_var() -> None:
    s = load_settings()
    assert s.resolved_database_url().startswith("sqlite+aiosqlite:///")
    assert s.resolved_database_url().endswith("var/assistant.db")
