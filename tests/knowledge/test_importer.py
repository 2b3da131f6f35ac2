from __future__ import annotations

import json
from pathlib import Path

import pytest
from kb_helpers import WriteSop, sop_text

from assistant.errors import InvalidInputError
from assistant.knowledge.document import load_knowledge_base
from assistant.knowledge.importer import import_pack
from assistant.settings import load_settings

ABCD = load_settings().data_dir / "abcd"
needs_abcd = pytest.mark.skipif(not (ABCD / "guidelines.json").exists(), reason="ABCD data set not present")


@needs_abcd
def test_import_abcd_gives_55_procedures_keyed_like_kb_json(tmp_path: Path) -> None:
    report = import_pack(ABCD / "guidelines.json", packs_dir=tmp_path / "packs")
    kb_keys = set(json.loads((ABCD / "kb.json").read_text()))
    assert len(report.procedure_ids) == 55
    assert {pid.removeprefix("abcd/") for pid in report.procedure_ids} == kb_keys
    kb = load_knowledge_base([report.folder])
    assert kb.problems == [] and len(kb) == 55
    refund = kb.by_id()["abcd/refund_initiate"]
    assert refund.title.endswith("Initiate Refund")
    assert refund.steps[0].title == "Pull up Account"
    assert kb.by_id()["abcd/slow_speed"].title.endswith("Website Too Slow")


def test_import_markdown_folder_skips_bad_files(write_sop: WriteSop, tmp_path: Path) -> None:
    write_sop("acme", "good.md", sop_text("acme/returns", "Returns", [("A", "a")]))
    write_sop("acme", "bad.md", "---\nid: broken\n---\n")
    report = import_pack(tmp_path / "acme", packs_dir=tmp_path / "packs")
    assert report.name == "acme" and report.procedure_ids == ("acme/returns",)
    assert len(report.problems) == 1 and "bad.md" in str(report.problems[0])
    assert (tmp_path / "packs" / "acme" / "good.md").exists()
    assert not (tmp_path / "packs" / "acme" / "bad.md").exists()


def test_import_rejects_other_inputs(tmp_path: Path) -> None:
    other = tmp_path / "x.json"
    other.write_text("[1, 2]")
    with pytest.raises(InvalidInputError):
        import_pack(other, packs_dir=tmp_path / "packs")
    with pytest.raises(InvalidInputError):
        import_pack(tmp_path / "missing", packs_dir=tmp_path / "packs")
    with pytest.raises(InvalidInputError):
        import_pack(tmp_path, packs_dir=tmp_path / "packs", name="Bad Name")
