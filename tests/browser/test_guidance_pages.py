"""End to end in Chromium: the sidebar's call checklist and abuse protocol, the supervisor's QA view, incident
record (edit and PDF) and report over a period. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import TRANSCRIPTS, BrowserServer, browser_settings
from websockets.sync.client import connect

from assistant.api.app import create_app
from assistant.testing import KeywordAnalyzer, RuleAdvisor

pytestmark = pytest.mark.browser

CALL = "e2e-guidance-abusive"


def _stream(server: BrowserServer, call_id: str, *, agent: str) -> None:
    """The whole demo abusive call through the real source socket, as `assistant replay --agent` sends it."""
    with connect(f"{server.ws_url}/v1/calls/{call_id}/stream?agent={agent}") as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        for line in (TRANSCRIPTS / "billing-dispute-abusive.jsonl").read_text().splitlines():
            chunk = json.loads(line)
            chunk.pop("call_id")
            ws.send(json.dumps(chunk))
        ws.send('{"type": "end"}')
        while json.loads(ws.recv(timeout=5))["type"] != "call_ended":
            pass


def _shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserServer]:
    """A server of its own: the shared one's alert counts are checked by test_pages.py."""
    app = create_app(
        browser_settings(tmp_path_factory.mktemp("guidance-var")),
        analyzer=KeywordAnalyzer(),
        advisor=RuleAdvisor(),
    )
    with BrowserServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def sidebar(browser: Any, server: BrowserServer) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 360, "height": 760})
    ctx.set_default_timeout(5000)
    page = ctx.new_page()
    page.goto(f"{server.url}/agent?call={CALL}")
    page.wait_for_selector(".conn[data-state=live]")
    _stream(server, CALL, agent="agent-7")
    yield page
    ctx.close()


@pytest.fixture(scope="module")
def supervisor(browser: Any, server: BrowserServer, sidebar: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    ctx.set_default_timeout(5000)
    page = ctx.new_page()
    page.goto(f"{server.url}/supervisor")
    page.wait_for_selector(f"tr[data-call='{CALL}']")
    yield page
    ctx.close()


def test_sidebar_ticks_steps_and_shows_the_protocol(sidebar: Any, artifacts: Path) -> None:
    sidebar.wait_for_selector(".conn[data-state=ended]")
    region = sidebar.locator(".cv-guidance")
    assert "Stage: Closing" in region.locator(".g-stage").inner_text()
    done = [
        sidebar.locator(f".g-steps li[data-step='{s}']").get_attribute("class")
        for s in (
            "greeting_given",
            "identity_verified",
            "issue_summarised",
            "further_help_offered",
            "customer_thanked",
        )
    ]
    assert done == ["g-done", "g-done", "g-todo", "g-done", "g-todo"]
    # Hovering a ticked step names the line that did it.
    assert "seq 17" in sidebar.locator(".g-steps li[data-step='further_help_offered']").get_attribute("title")
    protocol = sidebar.locator(".g-protocol")
    assert protocol.is_visible()
    ladder = {
        s: sidebar.locator(f".g-ladder li[data-step='{s}']").get_attribute("class")
        for s in ("redirect", "first_warning", "final_warning", "end_call")
    }
    assert ladder == {
        "redirect": "g-done",
        "first_warning": "g-done",
        "final_warning": "g-due",
        "end_call": "g-todo",
    }
    text = protocol.inner_text()
    assert "Persistent abuse" in text and "Supervisor alerted" in text
    assert "This is my final warning" in sidebar.locator(".g-say").inner_text()
    assert "Take a short break" in text and "Ask a supervisor to join" in text
    assert "You may end the call" not in text
    overflow = sidebar.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow == 0, f"horizontal overflow at 360 px: {overflow}"
    region.scroll_into_view_if_needed()
    _shot(sidebar, artifacts, "agent-sidebar-guidance-360")


def test_supervisor_qa_view_shows_adherence_with_evidence(supervisor: Any, artifacts: Path) -> None:
    supervisor.locator(f"tr[data-call='{CALL}']").get_by_role("button", name=f"QA of call {CALL}").click()
    supervisor.wait_for_selector(".panel .report h3:has-text('Script adherence: 60%')")
    rows = supervisor.locator(".panel .qa-table tbody tr")
    assert rows.count() == 5
    greeting = supervisor.locator(".panel .qa-table tr[data-step='greeting_given']").inner_text()
    assert "✓ yes" in greeting and "Thank you for calling Northwind Telecom, this is Sam." in greeting
    assert "✗ no" in supervisor.locator(".panel .qa-table tr[data-step='issue_summarised']").inner_text()
    assert (
        "Greeting (line 1) → Identification (line 3)" in supervisor.locator(".panel .qa-stages").inner_text()
    )
    assert "agent agent-7" in supervisor.locator(".panel .report").inner_text()
    summary = supervisor.locator(".panel .qa-summary").inner_text()
    assert "I'm calling about my bill" in summary and "resolved on the call" in summary
    _shot(supervisor, artifacts, "supervisor-qa")


def test_supervisor_edits_the_incident_record_and_downloads_the_pdf(
    supervisor: Any, server: BrowserServer, artifacts: Path
) -> None:
    supervisor.get_by_role("button", name="Incident report", exact=True).click()
    supervisor.wait_for_selector(".panel .ir-form h3:has-text('Incident report')")
    text = supervisor.locator(".panel .report").inner_text()
    assert "Sam · ID agent-7" in text
    actions = supervisor.locator(".panel .ir-actions li")
    assert actions.first.inner_text().startswith("Redirect · line 9: “I want to help you with this")
    assert supervisor.locator(".panel .ir-actions li[data-kind='first_warning']").count() == 1
    _shot(supervisor, artifacts, "supervisor-incident-record")

    supervisor.fill(
        "#ir-follow-up", "Call the customer back about refund R-2291.\nCoach the agent on closing."
    )
    supervisor.check("#ir-reviewed")
    supervisor.get_by_role("button", name="Save changes").click()
    supervisor.wait_for_selector(".panel .status-line:has-text('Saved (1 edit)')")
    stored = httpx.get(f"{server.url}/v1/calls/{CALL}/incident-report?format=json", timeout=5).json()
    assert stored["follow_up"] == [
        "Call the customer back about refund R-2291.",
        "Coach the agent on closing.",
    ]
    assert stored["status"] == "reviewed" and stored["edits"][0]["by"] == "anonymous"

    with supervisor.expect_download() as dl:
        supervisor.get_by_role("button", name="Download PDF").click()
    path = dl.value.path()
    assert dl.value.suggested_filename == f"incident-{CALL}.pdf"
    assert Path(path).read_bytes().startswith(b"%PDF-")


def test_supervisor_report_over_a_period(supervisor: Any, artifacts: Path) -> None:
    supervisor.locator("#period").get_by_role("button", name="Show").click()
    supervisor.wait_for_selector("#period-agents:not([hidden]) tbody tr")
    supervisor.wait_for_function("() => document.getElementById('period-chart').naturalWidth > 0")
    agents = supervisor.locator("#period-agents tbody").inner_text()
    assert "agent-7" in agents
    supervisor.locator("#period").scroll_into_view_if_needed()
    _shot(supervisor, artifacts, "supervisor-period-report")
