from __future__ import annotations

from pathlib import Path

from kb_helpers import WriteSop, sop_text

from assistant.guidance.incident import incident_fields
from assistant.knowledge.document import load_knowledge_base, parse_file
from assistant.settings import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "knowledge_base"


def test_parse_valid_document_has_steps_and_scripts(write_sop: WriteSop) -> None:
    path = write_sop("kb", "a.md", sop_text("a", "A", [("One", "say one"), ("Two", "say two")]))
    result = parse_file(path)
    assert result.procedure is not None and not result.problems
    proc = result.procedure
    assert [s.script for s in proc.steps] == ["say one", "say two"]
    assert proc.steps[1].title == "Two"
    assert proc.step_source(1).endswith("(Step 2: Two)")
    assert f":{proc.steps[1].line} " in proc.step_source(1)


def test_parse_bad_front_matter_reports_path_and_line(write_sop: WriteSop) -> None:
    text = '---\nid: x\ntitle: [unclosed\n---\n## Steps\n1. **A.** a\n   > Say: "a"\n'
    path = write_sop("kb", "bad.md", text)
    result = parse_file(path)
    assert result.procedure is None
    problem = result.problems[0]
    assert problem.path == path and problem.line >= 2
    assert str(problem).startswith(f"{path}:{problem.line}:")
    assert "YAML" in problem.message


def test_parse_missing_steps_and_missing_script_are_reported(write_sop: WriteSop) -> None:
    no_steps = sop_text("x", "X", [("A", "a")]).split("## Steps")[0]
    assert "Steps" in parse_file(write_sop("kb", "nosteps.md", no_steps)).problems[0].message
    no_say = sop_text("y", "Y", [("A", "a"), ("B", "b")]).replace('   > Say: "b"', "")
    problem = parse_file(write_sop("kb", "nosay.md", no_say)).problems[0]
    assert "step 2 has no script" in problem.message
    assert problem.line == no_say.splitlines().index("2. **B.** B now.") + 1


def test_parse_missing_keys_and_bad_stage(write_sop: WriteSop) -> None:
    text = sop_text("z", "Z", [("A", "a")]).replace('version: "1.0"\n', "")
    assert "missing version" in parse_file(write_sop("kb", "nover.md", text)).problems[0].message
    text = sop_text("w", "W", [("A", "a")], stage="lunch")
    assert "stage" in parse_file(write_sop("kb", "stage.md", text)).problems[0].message


def test_load_skips_malformed_and_duplicate_ids_without_crashing(write_sop: WriteSop, tmp_path: Path) -> None:
    write_sop("kb", "a.md", sop_text("same", "First", [("A", "a")]))
    write_sop("kb", "b.md", sop_text("same", "Second", [("B", "b")]))
    write_sop("kb", "c.md", "no front matter at all")
    write_sop("kb", "README.md", "# not an SOP")
    kb = load_knowledge_base([tmp_path / "kb", tmp_path / "does-not-exist"])
    assert [p.title for p in kb.procedures] == ["First"]
    messages = [str(p) for p in kb.problems]
    assert len(messages) == 2
    assert any("duplicate id 'same'" in m and "b.md" in m for m in messages)
    assert any("c.md:1:" in m for m in messages)


def test_load_empty_knowledge_base_is_valid(tmp_path: Path) -> None:
    kb = load_knowledge_base([tmp_path])
    assert len(kb) == 0 and kb.problems == []


def test_shipped_knowledge_base_parses_and_covers_the_required_procedures() -> None:
    kb = load_knowledge_base([SHIPPED])
    assert kb.problems == []
    ids = set(kb.by_id())
    required = {
        "call-greeting", "call-identification", "call-problem-resolution", "call-information-sharing",
        "call-closing", "billing-inquiry", "escalation-to-supervisor", "de-escalation", "abusive-caller",
        "technical-problems", "system-outage", "customer-ends-call", "incident-documentation",
        "legal-threat", "cancellation-retention",
    }  # fmt: skip
    assert required <= ids
    stages = {p.stage for p in kb.procedures}
    assert stages == {"greeting", "identification", "problem_resolution", "information_sharing", "closing"}
    answered = {a for p in kb.procedures for a in p.answers}
    for label in (
        "profanity",
        "insult",
        "threat",
        "escalation_request",
        "legal_threat",
        "churn_risk",
        "frustration",
    ):
        assert label in answered, label


def test_incident_fields_match_the_incident_sop() -> None:
    text = (SHIPPED / "incident-documentation.md").read_text(encoding="utf-8")
    fields = incident_fields()
    assert len({f.name for f in fields}) == len(fields) >= 6
    for f in fields:
        assert f"**{f.label}**" in text, f.label
