"""Call guidance through the running service: demo replays, the QA and incident-report endpoints, the report.

Replays stream the demo transcripts through the real source socket (the keyword analyzer stands in for the
classifier here; ``test_guidance_real_model_abusive_replay`` repeats the abusive call on the shipped model).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from streaming_support import TRANSCRIPTS, LiveServer, make_settings

from assistant.api.app import create_app
from assistant.auth import issue_token
from assistant.cli import main as cli_main
from assistant.errors import ConfigurationError
from assistant.testing import KeywordAnalyzer, RuleAdvisor

SECRET = "guidance-test-secret-of-at-least-32-bytes"
ABUSIVE_AGENT_LINE = "I want to help you with this, and I can do that best if we focus on the refund."


def _replay(
    client: TestClient, name: str, call_id: str, *, agent: str | None = None, headers=None
) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Stream a demo transcript as a live call; the call's events (from the source socket)."""
    url = f"/v1/calls/{call_id}/stream" + (f"?agent={agent}" if agent else "")
    events: list[dict[str, Any]] = []
    with client.websocket_connect(url, headers=headers or {}) as src:
        assert src.receive_json()["type"] == "ready"
        for line in (TRANSCRIPTS / f"{name}.jsonl").read_text().splitlines():
            chunk = json.loads(line)
            chunk.pop("call_id")
            src.send_json(chunk)
        src.send_json({"type": "end"})
        while True:
            ev = src.receive_json()
            events.append(ev)
            if ev["type"] == "call_ended":
                return events


def _stages(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(st, e["seq"]) for e in events if e["type"] == "guidance" for st in e["stages_entered"]]


def test_guidance_abusive_replay_events_qa_and_incident(client: TestClient) -> None:
    events = _replay(client, "billing-dispute-abusive", "g-abusive", agent="agent-7")
    guidance = [e for e in events if e["type"] == "guidance"]
    assert _stages(events) == [
        ("greeting", 1),
        ("identification", 3),
        ("problem_resolution", 5),
        ("information_sharing", 7),
        ("problem_resolution", 13),
        ("information_sharing", 13),
        ("closing", 17),
    ]
    # The checklist ticks each step on the turn that did it.
    ticked = {step: e["seq"] for e in guidance for step in e["steps_done"]}
    assert ticked == {"greeting_given": 1, "identity_verified": 4, "further_help_offered": 17}
    # The protocol, turn by turn: redirect due at 8 and done at 9, first warning due at 10 and given at 11,
    # final warning due at 12 (supervisors alerted, well-being offered).
    moves = [
        (e["seq"], e["protocol_due"], e["protocol_given"])
        for e in guidance
        if e["protocol_due"] or e["protocol_given"]
    ]
    assert moves == [
        (8, ["redirect"], []),
        (9, [], ["redirect"]),
        (10, ["first_warning"], []),
        (11, [], ["first_warning"]),
        (12, ["final_warning"], []),
    ]
    last = guidance[-1]["protocol"]
    assert last["reached"] == ["redirect", "first_warning", "final_warning"]
    assert last["due"] == "final_warning" and not last["may_end_call"] and last["supervisor_alerted"]
    assert [w["id"] for w in last["wellbeing"]] == ["short_break", "supervisor_join"]
    # Each final chunk's guidance comes before its `processed`.
    order = [(e["type"], e.get("seq")) for e in events]
    assert order.index(("guidance", 12)) < order.index(("processed", 12))

    qa = client.get("/v1/calls/g-abusive/qa").json()
    assert qa["score"] == 0.6 and qa["agent"] == "agent-7"
    steps = {s["step"]: s for s in qa["steps"]}
    assert set(steps) == {
        "greeting_given",
        "identity_verified",
        "issue_summarised",
        "further_help_offered",
        "customer_thanked",
    }
    assert {k for s in qa["steps"] for k in s} >= {"step", "done", "seq", "evidence"}
    assert steps["greeting_given"]["evidence"].startswith(
        "Thank you for calling Northwind Telecom, this is Sam."
    )
    assert steps["identity_verified"]["seq"] == 3 and "[EMAIL]" not in steps["identity_verified"]["evidence"]
    assert (steps["issue_summarised"]["done"], steps["issue_summarised"]["seq"]) == (False, None)

    report = client.get("/v1/calls/g-abusive/incident-report", headers={"Accept": "application/json"}).json()
    assert {
        "date_time",
        "duration_s",
        "agent",
        "customer",
        "description",
        "actions_taken",
        "supervisor_involved",
        "follow_up",
    } <= report.keys()
    assert report["agent"] == {"id": "agent-7", "name": "Sam"}
    assert report["duration_s"] == pytest.approx(114.3)
    assert (
        report["customer"]["contact"] == "e-mail [EMAIL] (given at seq 4)" and report["customer"]["redacted"]
    )
    assert "dana.whitfield" not in json.dumps(report)
    assert [q["seq"] for q in report["quotes"]] == [8, 10, 12, 14]
    actions = {a["seq"]: a for a in report["actions_taken"]}
    assert actions[9] == actions[9] | {"kind": "redirect", "text": ABUSIVE_AGENT_LINE}
    assert actions[11]["kind"] == "first_warning" and report["warnings_given"] == ["first_warning"]
    assert all(a["kind"] != "suggested" and "suggested" not in a["text"] for a in report["actions_taken"])
    assert report["supervisor"]["alerted_at_seq"] is not None
    assert report["follow_up"]


def test_guidance_other_demo_calls(client: TestClient) -> None:
    events = _replay(client, "manager-request", "g-mgr")
    assert [s for s, _ in _stages(events)] == ["greeting", "identification", "problem_resolution"]
    assert client.get("/v1/calls/g-mgr/qa").json()["score"] == 0.6
    report = client.get("/v1/calls/g-mgr/incident-report?format=json").json()
    assert report["supervisor_involved"] and report["supervisor"]["handover_seq"] == 11
    assert [a["kind"] for a in report["actions_taken"]] == ["de-escalation", "response", "handover"]
    summary = client.get("/v1/calls/g-mgr/summary").json()
    assert summary["outcome"] == "handed over to a supervisor (seq 11)"

    events = _replay(client, "calm-call", "g-calm")
    assert all(not e["protocol"]["active"] for e in events if e["type"] == "guidance")
    qa = client.get("/v1/calls/g-calm/qa").json()
    assert qa["score"] == 0.4 and [s["step"] for s in qa["steps"] if s["done"]] == [
        "greeting_given",
        "identity_verified",
    ]
    summary = client.get("/v1/calls/g-calm/summary").json()
    assert (
        summary["reason"] == "Hi Alex, I'd like to update the e-mail address on my account."
        and not summary["incident"]
    )


def test_guidance_incident_report_formats_and_edits(client: TestClient) -> None:
    _replay(client, "billing-dispute-abusive", "g-edit", agent="agent-7")
    md = client.get("/v1/calls/g-edit/incident-report")
    assert md.headers["content-type"].startswith("text/markdown") and "**Agent**: Sam (ID agent-7)" in md.text
    assert f'[REDIRECT]: "{ABUSIVE_AGENT_LINE}"' in md.text
    for pdf in (
        client.get("/v1/calls/g-edit/incident-report", headers={"Accept": "application/pdf"}),
        client.get("/v1/calls/g-edit/incident-report?format=pdf"),
    ):
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF-")

    r = client.patch(
        "/v1/calls/g-edit/incident-report",
        json={"follow_up": ["Call the customer back about refund R-2291."], "status": "reviewed"},
    )
    assert r.status_code == 200, r.text
    again = client.get("/v1/calls/g-edit/incident-report?format=json").json()
    assert (
        again["follow_up"] == ["Call the customer back about refund R-2291."]
        and again["status"] == "reviewed"
    )
    assert again["edits"][0]["fields"] == ["follow_up", "status"]
    assert [a["seq"] for a in again["actions_taken"]] == [9, 11, 13, 15, 17]  # the call's facts stay
    # PUT: fields left out go back to the draft; the edit history stays.
    put = client.put(
        "/v1/calls/g-edit/incident-report", json={"description": "Reviewed with the agent."}
    ).json()
    assert put["description"] == "Reviewed with the agent." and put["status"] == "draft"
    assert put["follow_up"] != again["follow_up"] and len(put["edits"]) == 2
    # Bad edits are refused and change nothing.
    assert client.patch("/v1/calls/g-edit/incident-report", json={"actions_taken": []}).status_code == 422
    assert client.patch("/v1/calls/g-edit/incident-report", json={"status": "closed"}).status_code == 422
    assert (
        client.get("/v1/calls/g-edit/incident-report?format=json").json()["description"]
        == "Reviewed with the agent."
    )
    assert client.get("/v1/calls/nope/incident-report").status_code == 404
    assert client.get("/v1/calls/nope/qa").status_code == 404


def test_guidance_supervisor_report_route(client: TestClient) -> None:
    _replay(client, "billing-dispute-abusive", "g-r1", agent="agent-7")
    _replay(client, "calm-call", "g-r2", agent="agent-7")
    _replay(client, "manager-request", "g-r3", agent="agent-9")
    r = client.get("/v1/reports/supervisor?since=2000-01-01").json()
    agents = {a["agent"]: a for a in r["agents"]}
    assert agents["agent-7"]["calls"] == 2 and agents["agent-7"]["adherence"] == 0.5
    assert agents["agent-9"]["escalations"] == 1
    assert (
        client.get("/v1/reports/supervisor?since=2000-01-01&agent=agent-9").json()["agents"][0]["calls"] == 1
    )
    csv_r = client.get("/v1/reports/supervisor?since=2000-01-01&format=csv")
    assert csv_r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_r.text)))
    assert {row["call_id"] for row in rows} == {"g-r1", "g-r2", "g-r3"}
    png = client.get("/v1/reports/supervisor?since=2000-01-01&format=png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert client.get("/v1/reports/supervisor?since=yesterday").status_code == 422
    assert client.get("/v1/reports/supervisor?since=2026-01-02&until=2026-01-01").status_code == 422
    assert client.get("/v1/reports/supervisor?since=2000-01-01&until=2000-01-02").json()["calls"] == []


@pytest.fixture
def auth_client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        make_settings(tmp_path, auth_secret=SECRET), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor()
    )
    with TestClient(app) as c:
        yield c


def _h(role: str, subject: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, role=role, subject=subject or f'{role}-1')}"}


def test_guidance_incident_report_is_for_supervisors_when_auth_is_on(auth_client: TestClient) -> None:
    _replay(auth_client, "billing-dispute-abusive", "g-auth", agent="agent-7", headers=_h("source"))
    url = "/v1/calls/g-auth/incident-report"
    assert auth_client.get(url).status_code == 401
    assert auth_client.get(url, headers=_h("agent")).status_code == 403
    assert auth_client.get(url, headers=_h("trainer")).status_code == 403
    assert auth_client.patch(url, json={"status": "reviewed"}, headers=_h("agent")).status_code == 403
    assert auth_client.get(url, headers=_h("supervisor")).status_code == 200
    edited = auth_client.patch(
        url, json={"supervisor_involved": True}, headers=_h("supervisor", "sup-3")
    ).json()
    assert edited["edits"][0]["by"] == "sup-3"
    # The call's own agent reads its QA; another agent may not (per-call access, issue 17).
    assert auth_client.get("/v1/calls/g-auth/qa", headers=_h("agent", "agent-7")).status_code == 200
    assert auth_client.get("/v1/calls/g-auth/qa", headers=_h("agent")).status_code == 403
    assert auth_client.get("/v1/reports/supervisor?since=2000-01-01", headers=_h("agent")).status_code == 403


def test_guidance_state_survives_a_restart(tmp_path: Path) -> None:
    lines = [json.loads(x) for x in (TRANSCRIPTS / "billing-dispute-abusive.jsonl").read_text().splitlines()]
    settings = make_settings(tmp_path)
    for part in (lines[:11], lines[11:]):  # the service restarts after seq 11 (the first warning)
        app = create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
        with TestClient(app) as c, c.websocket_connect("/v1/calls/g-restart/stream") as src:
            src.receive_json()
            for chunk in part:
                src.send_json({k: v for k, v in chunk.items() if k != "call_id"})
            last = part[-1]["seq"]
            while (ev := src.receive_json())["type"] != "processed" or ev["seq"] != last:
                pass
            if part is lines[11:]:
                src.send_json({"type": "end"})
                while src.receive_json()["type"] != "call_ended":
                    pass
    with TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())) as c:
        record = c.get("/v1/calls/g-restart").json()
        assert record["guidance_state"]["protocol"]["steps"]["first_warning"]["given_seq"] == 11
        qa = c.get("/v1/calls/g-restart/qa").json()
        assert qa["score"] == 0.6 and [s["stage"] for s in qa["stages"]][-1] == "closing"
        report = c.get("/v1/calls/g-restart/incident-report?format=json").json()
        assert report["warnings_given"] == ["first_warning"]


def test_guidance_bad_policy_file_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "protocol.yaml"
    bad.write_text("version: 1\nsteps: []\n")
    with pytest.raises(ConfigurationError, match="ASSISTANT_ABUSE_PROTOCOL_FILE"):
        create_app(
            make_settings(tmp_path, abuse_protocol_file=bad),
            analyzer=KeywordAnalyzer(),
            advisor=RuleAdvisor(),
        )


@pytest.mark.slow
def test_guidance_real_model_abusive_replay(tmp_path: Path) -> None:
    """The shipped classifier flags the same abusive turns, so the protocol goes the same way."""
    from assistant.redflags.classifier import load_classifier

    settings = make_settings(tmp_path, use_fake_models=False)
    clf = load_classifier(settings)
    clf.warm_up()
    with TestClient(create_app(settings, analyzer=clf, advisor=RuleAdvisor())) as c:
        events = _replay(c, "billing-dispute-abusive", "g-real", agent="agent-7")
        last = [e for e in events if e["type"] == "guidance"][-1]["protocol"]
        assert last["reached"] == ["redirect", "first_warning", "final_warning"]
        report = c.get("/v1/calls/g-real/incident-report?format=json").json()
        assert [(a["seq"], a["kind"]) for a in report["actions_taken"]][:2] == [
            (9, "redirect"),
            (11, "first_warning"),
        ]
        assert c.get("/v1/calls/g-real/qa").json()["score"] == 0.6


def test_guidance_cli_replay_records_the_agent(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's "done when": `assistant replay ... --agent agent-7`, then a complete record and the QA view."""
    path = TRANSCRIPTS / "billing-dispute-abusive.jsonl"
    args = [
        "replay",
        str(path),
        "--url",
        live_server.ws_url,
        "--speed",
        "0",
        "--call-id",
        "g-cli",
        "--agent",
        "agent-7",
    ]
    assert cli_main(args) == 0
    assert "call ended" in capsys.readouterr().out
    base = live_server.http_url
    assert httpx.get(f"{base}/v1/calls/g-cli").json()["agent"] == "agent-7"
    report = httpx.get(
        f"{base}/v1/calls/g-cli/incident-report", headers={"Accept": "application/json"}
    ).json()
    assert report["agent"] == {"id": "agent-7", "name": "Sam"}
    assert report["actions_taken"][0] == report["actions_taken"][0] | {"seq": 9, "text": ABUSIVE_AGENT_LINE}
    qa = httpx.get(f"{base}/v1/calls/g-cli/qa").json()
    assert qa["agent"] == "agent-7" and qa["score"] == 0.6


def test_guidance_cli_replay_prints_the_checklist_and_protocol(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = TRANSCRIPTS / "billing-dispute-abusive.jsonl"
    assert (
        cli_main(["replay", str(path), "--url", live_server.ws_url, "--speed", "0", "--call-id", "g-cli-out"])
        == 0
    )
    out = capsys.readouterr().out
    assert "STAGE identification" in out and "CHECKLIST ✓ Standard greeting given" in out
    assert "PROTOCOL due: first_warning" in out and "PROTOCOL done: first_warning" in out
    assert 'PROTOCOL due: final_warning (severity high): "This is my final warning' in out
    assert "WELL-BEING offered: Take a short break, Ask a supervisor to join" in out
