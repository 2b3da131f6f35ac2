"""The trainer page's behavioural-suite report: the endpoint without a browser, then the page in Chromium."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_support import BrowserServer, browser_settings
from fastapi.testclient import TestClient

from assistant.api.app import create_app
from assistant.auth import issue_token
from assistant.eval.checklist import load_cases, run_suite
from assistant.testing import KeywordAnalyzer, RuleAdvisor

SECRET = "checklist-test-secret-0123456789abcdef"  # a throwaway secret for this test's app, never a real one


class _Model:
    """A stand-in model: flags churn on 'cancel' (so the negation test 'don't want to cancel' fails)."""

    name = "model"

    def score(self, texts, contexts):  # type: ignore[no-untyped-def]
        p = np.array([0.9 if "cancel" in t else 0.1 for t in texts])
        return {"churn_risk": (p, p >= 0.5)}


def suite_report(tmp_path: Path) -> dict[str, Any]:
    """A real `run_suite` report on two tiny capabilities (the format `assistant eval checklist --json` writes)."""
    cases = tmp_path / "cases"
    cases.mkdir(exist_ok=True)
    rows = {
        "negation": [
            {"id": "n1", "type": "MFT", "text": "I want to cancel", "expect": {"churn_risk": True}},
            {"id": "n2", "type": "MFT", "text": "I don't want to cancel", "expect": {"churn_risk": False}},
        ],
        "asr_noise": [
            {"id": "a1", "type": "INV", "text": "Cancel it.", "labels": ["churn_risk"], "perturb": ["asr"]}
        ],
    }
    for cap, lines in rows.items():
        (cases / f"{cap}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return {**run_suite(load_cases(cases, list(rows)), [_Model()]), "mode": "fp32", "device": "cpu"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        browser_settings(tmp_path, auth_secret=SECRET), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor()
    )
    with TestClient(app) as c:
        yield c


def _auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, role=role, subject='t-1')}"}


def test_latest_checklist_is_404_until_written_then_the_newest_suite_report(
    client: TestClient, tmp_path: Path
) -> None:
    trainer = _auth("trainer")
    r = client.get("/v1/reports/checklist/latest", headers=trainer)
    assert r.status_code == 404 and "assistant eval checklist --json" in r.json()["detail"]
    reports = tmp_path / "reports"
    reports.mkdir()
    old = {**suite_report(tmp_path), "mode": "int8"}
    (reports / "old-suite.json").write_text(json.dumps(old))
    (reports / "new-suite.json").write_text(json.dumps(suite_report(tmp_path)))
    os.utime(reports / "old-suite.json", (1_000_000, 1_000_000))
    (reports / "redflags.json").write_text(
        json.dumps({"per_label": {}, "macro_f1": 0.5})
    )  # newest, not a suite
    (reports / "broken.json").write_text("{not json")
    got = client.get("/v1/reports/checklist/latest", headers=trainer).json()
    assert got["file"] == "new-suite.json" and got["report"]["mode"] == "fp32"
    neg = got["report"]["capabilities"]["negation"]
    assert neg["systems"]["model"]["pass_rate"] == 0.5 and neg["failures"]["model"][0]["id"] == "n2"
    # The red-flag report lookup is unchanged: a suite report is never taken for an evaluation report.
    assert client.get("/v1/reports/latest", headers=trainer).json()["file"] == "redflags.json"


def test_latest_checklist_is_for_trainers_and_supervisors(client: TestClient) -> None:
    assert client.get("/v1/reports/checklist/latest").status_code == 401
    assert client.get("/v1/reports/checklist/latest", headers=_auth("agent")).status_code == 403
    assert client.get("/v1/reports/checklist/latest", headers=_auth("supervisor")).status_code == 404


@pytest.mark.browser
def test_trainer_page_shows_the_suite_and_the_model_failures(
    browser: Any, server: BrowserServer, tmp_path: Path
) -> None:
    reports = server.app.state.settings.var_dir / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "checklist.json").write_text(json.dumps(suite_report(tmp_path)))
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    ctx.set_default_timeout(5000)
    try:
        page = ctx.new_page()
        page.goto(server.url + "/trainer")
        page.wait_for_selector("#suite table")
        table = page.locator("#suite table").first.text_content() or ""
        assert "negation" in table and "0.500" in table and "asr noise" in table
        page.get_by_text("negation: 1 model failure").click()
        assert "I don't want to cancel" in page.locator("#suite").inner_text()
        # The red-flag report is still the one shown above it.
        assert "0.774" in (page.locator("#report table").text_content() or "")
    finally:
        ctx.close()
