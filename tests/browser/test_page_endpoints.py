"""The pages' HTTP side without a browser (fast; not marked ``browser``): routes, static files, demo, export."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import browser_settings
from fastapi.testclient import TestClient

from assistant.api.app import create_app
from assistant.testing import KeywordAnalyzer, RuleAdvisor


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(browser_settings(tmp_path), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
    with TestClient(app) as c:
        yield c


def test_pages_served_as_html_and_modules_as_javascript(client: TestClient) -> None:
    for path in ("/", "/agent", "/supervisor", "/trainer"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
    r = client.get("/static/js/callview.js")
    assert r.headers["content-type"].startswith("text/javascript")


def test_static_refuses_paths_outside_the_folder(client: TestClient) -> None:
    for path in ("/static/../pages.py", "/static/%2e%2e/pages.py", "/static/..%2fdemo.py", "/static/nope.js"):
        assert client.get(path).status_code == 404, path


def test_agent_path_redirects_to_query_and_keeps_the_token(client: TestClient) -> None:
    r = client.get("/agent/c-42?token=abc", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/agent?token=abc&call=c-42"
    assert client.get("/agent/bad%20id", follow_redirects=False).status_code == 422


def test_demo_call_replays_a_transcript_server_side(client: TestClient) -> None:
    names = [t["name"] for t in client.get("/v1/demo/transcripts").json()]
    assert "billing-dispute-abusive" in names
    assert client.post("/v1/demo/calls", json={"transcript": "nope"}).status_code == 404
    started = client.post("/v1/demo/calls", json={"transcript": "manager-request", "speed": 0}).json()
    assert started["agent_url"] == f"/agent?call={started['call_id']}"
    deadline = time.monotonic() + 5
    while True:
        record = client.get(f"/v1/calls/{started['call_id']}")
        if record.status_code == 200 and record.json()["status"] == "ended":
            break
        assert time.monotonic() < deadline, "the demo call did not end"
        time.sleep(0.05)
    assert len(record.json()["transcript"]) == started["chunks"]
    assert record.json()["alerts"], "the manager request alerts supervisors"


def test_latest_report_is_404_until_one_is_written(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/v1/reports/latest").status_code == 404
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "old.json").write_text(json.dumps({"per_label": {}, "macro_f1": 0.1}))
    (tmp_path / "reports" / "not-a-report.json").write_text("{}")
    got = client.get("/v1/reports/latest").json()
    assert got["file"] == "old.json" and got["report"]["macro_f1"] == 0.1


def test_feedback_export_is_empty_without_feedback(client: TestClient) -> None:
    r = client.get("/v1/feedback/export")
    assert r.status_code == 200 and r.text == "" and "attachment" in r.headers["content-disposition"]
