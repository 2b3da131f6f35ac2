"""End to end in Chromium: the agent sidebar, the supervisor dashboard, the trainer page and the demo start.

The tests share one server and one browser and run in file order: a call is streamed chunk by chunk through the
real source socket while the sidebar and the supervisor page watch it; later tests build on that call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import AUTH_SECRET, TRANSCRIPTS, BrowserServer
from websockets.sync.client import ClientConnection, connect

from assistant.events.bus import call_topic

pytestmark = pytest.mark.browser

CALL = "e2e-billing-abusive"
CHUNKS = [
    json.loads(line) for line in (TRANSCRIPTS / "billing-dispute-abusive.jsonl").read_text().splitlines()
]


class Source:
    """The transcript source of a call (the ASR side), over the real source socket."""

    def __init__(self, server: BrowserServer, call_id: str) -> None:
        self.ws: ClientConnection = connect(f"{server.ws_url}/v1/calls/{call_id}/stream")
        self.ready = json.loads(self.ws.recv(timeout=5))
        assert self.ready["type"] == "ready", self.ready

    def send(self, chunk: dict[str, Any]) -> None:
        self.ws.send(json.dumps({k: v for k, v in chunk.items() if k != "call_id"}))

    def wait_processed(self, seq: int) -> list[dict[str, Any]]:
        events = []
        while True:
            ev = json.loads(self.ws.recv(timeout=5))
            events.append(ev)
            if ev["type"] == "processed" and ev["seq"] == seq:
                return events

    def close(self) -> None:
        self.ws.close()


def chunk(seq: int) -> dict[str, Any]:
    return next(c for c in CHUNKS if c["seq"] == seq)


@pytest.fixture(scope="module")
def pages(browser: Any, server: BrowserServer) -> Iterator[dict[str, Any]]:
    """The agent's sidebar (360 px wide) and the supervisor dashboard, both open before the call starts."""
    sidebar_ctx = browser.new_context(viewport={"width": 360, "height": 760})
    sup_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    for ctx in (sidebar_ctx, sup_ctx):
        ctx.set_default_timeout(5000)  # fail fast: every step here takes milliseconds
    sidebar = sidebar_ctx.new_page()
    sockets: list[str] = []
    sidebar.on("websocket", lambda ws: sockets.append(ws.url))
    sidebar.goto(f"{server.url}/agent?call={CALL}")
    sidebar.wait_for_selector(".conn[data-state=live]")
    supervisor = sup_ctx.new_page()
    supervisor.goto(f"{server.url}/supervisor")
    supervisor.wait_for_selector("#alerts-conn[data-state=live]")
    source = Source(server, CALL)
    yield {"sidebar": sidebar, "supervisor": supervisor, "source": source, "sockets": sockets}
    source.close()
    sidebar_ctx.close()
    sup_ctx.close()


def _api(server: BrowserServer, path: str) -> Any:
    r = httpx.get(server.url + path, timeout=5)
    r.raise_for_status()
    return r.json()


def _shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=False)


def test_sidebar_shows_flag_suggestion_and_script_within_a_second(
    pages: dict[str, Any], artifacts: Path
) -> None:
    sidebar, source = pages["sidebar"], pages["source"]
    for seq in range(1, 8):
        source.send(chunk(seq))
        source.wait_processed(seq)
    sidebar.wait_for_selector(".line[data-seq='7']")
    assert sidebar.locator(".level").inner_text() in ("Calm", "Low")  # calm before the abuse

    t0 = time.monotonic()
    source.send(chunk(8))  # "Should? You people are useless. I'm fed up with this damn company."
    sidebar.wait_for_selector(".line[data-seq='8'] mark.flagged:has-text('useless')", timeout=1000)
    sidebar.wait_for_selector(".script:has-text('I want to help you with this')", timeout=1000)
    elapsed = time.monotonic() - t0
    source.wait_processed(8)
    assert elapsed < 1.0, f"flag and script shown {elapsed:.2f} s after the chunk was sent"

    chips = sidebar.locator(".chips").inner_text()
    assert "insult" in chips and "profanity" in chips
    assert "Stay calm and redirect." in sidebar.locator(".step").inner_text()
    assert sidebar.locator(".checklist li").count() == 6  # the shipped abusive-caller SOP has six steps
    assert sidebar.locator(".meter").get_attribute("data-level") in ("high", "critical")
    # 360 px wide: nothing scrolls sideways, neither the page nor the view.
    overflow = sidebar.evaluate(
        "() => [document.documentElement.scrollWidth - document.documentElement.clientWidth,"
        " document.querySelector('.callview').scrollWidth - document.querySelector('.callview').clientWidth]"
    )
    assert overflow == [0, 0], f"horizontal overflow at 360 px: {overflow}"
    # The copy button copies the script (the clipboard may be denied headless: then the fallback is used).
    sidebar.get_by_role("button", name="Copy script").click()
    sidebar.wait_for_selector("button:has-text('Copied ✓'), button:has-text('Copy failed')")
    _shot(sidebar, artifacts, "agent-sidebar-360")


def test_supervisor_receives_and_acknowledges_the_alert(
    pages: dict[str, Any], server: BrowserServer, artifacts: Path
) -> None:
    supervisor, sidebar = pages["supervisor"], pages["sidebar"]
    card = supervisor.locator(f".alert[data-call='{CALL}']")
    card.wait_for(timeout=2000)
    assert "useless" in card.inner_text()
    assert supervisor.locator("#open-count").inner_text() == "1 open"
    supervisor.wait_for_selector(f"tr[data-call='{CALL}']")
    _shot(supervisor, artifacts, "supervisor-alert")

    card.get_by_role("button", name="Acknowledge").click()
    supervisor.wait_for_selector(f".alert.acked[data-call='{CALL}']", timeout=2000)
    assert [a for a in _api(server, "/v1/alerts") if a["call_id"] == CALL] == []
    record = _api(server, f"/v1/calls/{CALL}")
    assert record["alerts"] and record["alerts"][0]["acked_by"] == "anonymous"
    sidebar.wait_for_selector(".notice:has-text('is on it')", timeout=2000)  # the agent sees the ack too

    # Open the call's live view, then its incident report, in the side panel.
    supervisor.locator(f"tr[data-call='{CALL}']").get_by_role("button", name=f"Watch call {CALL}").click()
    supervisor.wait_for_selector(".panel .line[data-seq='8'] mark.flagged")
    _shot(supervisor, artifacts, "supervisor-live-call")
    supervisor.get_by_role("button", name="Incident report", exact=True).click()
    supervisor.wait_for_selector(".panel .report h3:has-text('Incident report')")
    assert "Quotes" in supervisor.locator(".panel .report").inner_text()
    _shot(supervisor, artifacts, "supervisor-incident-report")


def test_feedback_buttons_store_feedback(pages: dict[str, Any], server: BrowserServer) -> None:
    sidebar, source = pages["sidebar"], pages["source"]
    sidebar.get_by_role("button", name="Useful").click()
    sidebar.wait_for_selector(".fb-status:has-text('marked useful')")
    source.send(chunk(9))  # the agent follows step 1: the next suggestion is step 2
    source.wait_processed(9)
    sidebar.wait_for_selector(".proc:has-text('step 2 of 6')")
    sidebar.get_by_role("button", name="Wrong").click()
    sidebar.wait_for_selector(".fb-status:has-text('marked wrong')")

    record = _api(server, f"/v1/calls/{CALL}")
    verdicts = [(f["verdict"], f["procedure_id"], f["step_index"]) for f in record["feedback"]]
    assert verdicts == [("useful", "abusive-caller", 0), ("wrong", "abusive-caller", 1)]
    assert all(f["eid"] for f in record["feedback"])
    rows = [json.loads(x) for x in httpx.get(server.url + "/v1/feedback/export").text.splitlines()]
    useful = next(r for r in rows if r["verdict"] == "useful")
    assert "useless" in useful["text"] and "insult" in useful["labels"] and len(useful["context"]) == 3


def test_sidebar_reconnects_after_a_server_side_drop_without_doubling(
    pages: dict[str, Any], server: BrowserServer
) -> None:
    sidebar = pages["sidebar"]
    pages["source"].close()  # the source goes away for a moment (the call waits, detached)
    opened = len(pages["sockets"])

    def drop() -> int:
        # The server drops every sidebar socket of the call as it would a slow consumer (close 4408).
        subs = list(server.app.state.service.bus._fanout._subs.get(call_topic(CALL), ()))
        for sub in subs:
            sub.overflowed = True
            sub._queue.put_nowait(None)
        return len(subs)

    # The agent scrolls up to reread: new lines must not move the transcript (a "New lines" button appears).
    sidebar.eval_on_selector(".transcript", "el => { el.scrollTop = 0; }")
    assert server.call_in_loop(drop) >= 1
    source = pages["source"] = Source(server, CALL)
    assert source.ready["last_seq"] == 9
    for seq in (10, 11, 12):
        source.send(chunk(seq))
        source.wait_processed(seq)
    sidebar.wait_for_selector(".line[data-seq='12']", timeout=5000)
    sidebar.wait_for_selector(".conn[data-state=live]")
    assert sidebar.eval_on_selector(".transcript", "el => el.scrollTop") == 0
    assert sidebar.locator(".jump").is_visible()
    seqs = sidebar.eval_on_selector_all(".line[data-seq]", "els => els.map(e => Number(e.dataset.seq))")
    assert seqs == list(range(1, 13)), seqs
    resumed = pages["sockets"][opened:]
    assert any("after=" in url for url in resumed), pages["sockets"]


def test_landing_page_starts_a_demo_call(browser: Any, server: BrowserServer, artifacts: Path) -> None:
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    ctx.set_default_timeout(5000)
    try:
        page = ctx.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#transcript option[value='billing-dispute-abusive']", state="attached")
        assert page.locator("#transcript").input_value() == "billing-dispute-abusive"
        page.select_option("#speed", "10")
        _shot(page, artifacts, "landing")
        with ctx.expect_page() as popup_info:
            page.get_by_role("button", name="Start demo call").click()
        popup = popup_info.value
        popup.wait_for_load_state()
        assert "/agent?call=demo-billing-dispute-abusive-" in popup.url
        popup.wait_for_selector(".line[data-seq='2']", timeout=5000)
        call_id = popup.url.split("call=")[1]
        page.wait_for_selector("#demo-links a:has-text('Open supervisor dashboard')")
        sup = ctx.new_page()
        sup.goto(f"{server.url}/supervisor")
        sup.wait_for_selector(f"tr[data-call='{call_id}']", timeout=5000)
    finally:
        ctx.close()


def test_trainer_page_shows_report_and_exports_feedback(
    browser: Any, server: BrowserServer, artifacts: Path
) -> None:
    ctx = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(5000)
    try:
        page = ctx.new_page()
        page.goto(server.url + "/trainer")
        page.wait_for_selector("#report table")
        table = page.locator("#report table").text_content() or ""
        assert "insult" in table and "0.774" in table and "tfidf-logreg F1" in table and "0.824" in table
        assert "p50 4.2 ms" in page.locator("#report").inner_text()
        page.wait_for_selector("#feedback tr")
        assert page.locator("#feedback tr").count() >= 2
        _shot(page, artifacts, "trainer")
        with page.expect_download() as dl:
            page.get_by_role("button", name="Export labeled JSONL").click()
        rows = [json.loads(x) for x in Path(dl.value.path()).read_text().splitlines()]
        assert rows and all({"text", "context", "labels"} <= set(r) for r in rows)
    finally:
        ctx.close()


def test_pages_pass_the_token_to_sockets_and_fetches(browser: Any, auth_server: BrowserServer) -> None:
    from assistant.auth import issue_token

    agent = issue_token(AUTH_SECRET, role="agent", subject="agent-7")
    source_token = issue_token(AUTH_SECRET, role="source", subject="asr")
    call = "auth-call"
    ctx = browser.new_context(viewport={"width": 360, "height": 760})
    ctx.set_default_timeout(5000)
    try:
        page = ctx.new_page()
        page.goto(f"{auth_server.url}/agent?call={call}&token={agent}")
        page.wait_for_selector(".conn[data-state=live]")
        with connect(f"{auth_server.ws_url}/v1/calls/{call}/stream?agent=agent-7&token={source_token}") as ws:
            ws.recv(timeout=5)
            ws.send(json.dumps({"seq": 1, "speaker": "customer", "text": "my bill is wrong, you idiot"}))
            page.wait_for_selector(".line[data-seq='1'] mark.flagged")
        page.get_by_role("button", name="Useful").click()
        page.wait_for_selector(".fb-status:has-text('marked useful')")
        r = httpx.get(f"{auth_server.url}/v1/calls/{call}", headers={"Authorization": f"Bearer {agent}"})
        assert [f["subject"] for f in r.json()["feedback"]] == ["agent-7"]

        # Without a token the page says so and does not retry in a loop (close 4401 is final).
        anon = browser.new_context()
        try:
            p2 = anon.new_page()
            p2.goto(f"{auth_server.url}/agent?call={call}")
            p2.wait_for_selector(".conn[data-state=closed]", timeout=5000)
            assert "Not allowed" in p2.locator(".notice").inner_text()
        finally:
            anon.close()
    finally:
        ctx.close()
