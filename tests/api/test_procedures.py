"""GET /v1/procedures/{id}: the sidebar checklist names every step of the procedure under way."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from streaming_support import make_settings

from assistant.api.app import create_app
from assistant.knowledge.advisor import KnowledgeAdvisor
from assistant.knowledge.embedder import FakeEmbedder
from assistant.testing import KeywordAnalyzer, RuleAdvisor


def test_procedures_lists_the_steps_of_a_shipped_sop(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, use_fake_models=False)
    advisor = KnowledgeAdvisor(settings, FakeEmbedder())
    advisor.warm_up()
    with TestClient(create_app(settings, analyzer=KeywordAnalyzer(), advisor=advisor)) as client:
        body = client.get("/v1/procedures/escalation-to-supervisor").json()
        assert body["title"] and len(body["steps"]) >= 3
        assert [s["index"] for s in body["steps"]] == list(range(len(body["steps"])))
        assert all(s["title"] and s["script"] for s in body["steps"])
        missing = client.get("/v1/procedures/no-such-sop")
        assert missing.status_code == 404 and "kb list" in missing.json()["detail"]


def test_the_rule_advisor_serves_the_shipped_sops_it_follows(tmp_path: Path) -> None:
    """The stand-in reads the real SOP files, so its checklist matches the knowledge base's."""
    app = create_app(make_settings(tmp_path), analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
    shipped = (Path(__file__).resolve().parents[2] / "knowledge_base" / "abusive-caller.md").read_text()
    with TestClient(app) as client:
        body = client.get("/v1/procedures/abusive-caller").json()
        assert [s["title"] for s in body["steps"]][:2] == ["Stay calm and redirect", "Give a clear warning"]
        assert all(f"**{s['title']}.**" in shipped for s in body["steps"])
        assert client.get("/v1/procedures/legal-threat").status_code == 404  # not one the rules follow
