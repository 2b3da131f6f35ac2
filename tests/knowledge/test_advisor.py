from __future__ import annotations

from pathlib import Path

import pytest

from assistant.analysis import suggest_once
from assistant.knowledge.advisor import AdvisorConfig, KnowledgeAdvisor, ProcedureProgress
from assistant.knowledge.embedder import FakeEmbedder
from assistant.knowledge.index import build_from_settings
from assistant.labels import LABELS
from assistant.settings import Settings, load_settings
from assistant.types import LabelScore, NextStepAdvisor, RedFlagResult


def flags(*labels: str) -> RedFlagResult:
    return RedFlagResult(
        {name: LabelScore(name, 0.9 if name in labels else 0.01, 0.5, name in labels) for name in LABELS}, {}
    )


@pytest.fixture
def advisor(kb_settings: Settings) -> KnowledgeAdvisor:
    emb = FakeEmbedder()
    build_from_settings(kb_settings, emb)
    adv = KnowledgeAdvisor(kb_settings, emb, config=AdvisorConfig(min_score=0.2, switch_margin=0.15))
    adv.warm_up()
    return adv


def test_advisor_implements_the_protocol_and_state_is_storable(advisor: KnowledgeAdvisor) -> None:
    proto: NextStepAdvisor = advisor
    state = proto.start_call()
    out = advisor.advise(state, speaker="customer", text="refund for my boots", context=(), flags=None)
    assert out[0].procedure_id == "refund" and out[0].step_index == 0
    assert out[0].source.endswith("(Step 1: Find order)") and out[0].reason
    data = state.to_dict()
    assert data["procedure_id"] == "refund"
    assert ProcedureProgress.from_dict(data) == state


def test_agent_saying_a_script_marks_the_step_done_and_moves_on(advisor: KnowledgeAdvisor) -> None:
    state = advisor.start_call()
    first = advisor.advise(
        state, speaker="customer", text="wrong charge on my bill invoice", context=(), flags=None
    )
    assert (first[0].procedure_id, first[0].step_index) == ("billing", 0)
    after = advisor.advise(
        state, speaker="agent", text="let me open your billing account", context=(), flags=None
    )
    assert state.done["billing"] == [0]
    assert (after[0].procedure_id, after[0].step_index) == ("billing", 1)
    advisor.advise(
        state, speaker="agent", text="the charge on your bill is for the monthly fee", context=(), flags=None
    )
    nxt = advisor.advise(state, speaker="customer", text="oh I see", context=(), flags=None)
    assert (nxt[0].procedure_id, nxt[0].step_index) == ("billing", 2)
    assert "steps done by the agent: 1, 2" in nxt[0].reason


def test_hysteresis_keeps_the_procedure_on_weak_competing_matches(advisor: KnowledgeAdvisor) -> None:
    state = advisor.start_call()
    advisor.advise(
        state, speaker="customer", text="charge on my bill invoice payment", context=(), flags=None
    )
    out = advisor.advise(
        state, speaker="customer", text="yes the monthly one, maybe a return", context=(), flags=None
    )
    assert state.procedure_id == "billing" and state.switches == 0
    assert out[0].procedure_id == "billing"
    out = advisor.advise(
        state, speaker="customer", text="refund money back return item boots refund", context=(), flags=None
    )
    assert state.procedure_id == "refund" and state.switches == 1


def test_red_flag_forces_a_switch_and_frustration_adds_a_companion(advisor: KnowledgeAdvisor) -> None:
    state = advisor.start_call()
    out = advisor.advise(
        state, speaker="customer", text="charge on my bill again", context=(), flags=flags("frustration")
    )
    assert [s.procedure_id for s in out] == ["billing", "calm"]
    out = advisor.advise(
        state, speaker="customer", text="just do it", context=(), flags=flags("escalation_request")
    )
    assert out[0].procedure_id == "escalation" and "escalation_request" in out[0].reason
    # A weaker topical match does not override the forced procedure.
    out = advisor.advise(state, speaker="customer", text="the bill charge", context=(), flags=flags())
    assert out[0].procedure_id == "escalation"


def test_empty_knowledge_base_gives_no_suggestion(tmp_path: Path) -> None:
    settings = load_settings(knowledge_dir=tmp_path / "empty", var_dir=tmp_path / "var")
    adv = KnowledgeAdvisor(settings, FakeEmbedder())
    adv.warm_up()
    assert suggest_once(adv, "I want a refund", (), None) == []


def test_new_sop_is_picked_up_at_the_next_call(advisor: KnowledgeAdvisor, small_kb: Path) -> None:
    from kb_helpers import sop_text

    (small_kb / "wifi.md").write_text(
        sop_text("wifi", "Router wifi", [("Reboot", "please restart the router")])
    )
    out = suggest_once(advisor, "my router wifi is broken", (), None)
    assert out[0].procedure_id == "wifi"


def test_new_calls_look_for_changed_sops_at_most_every_kb_refresh_s(
    kb_settings: Settings, fake_embedder: FakeEmbedder
) -> None:
    settings = kb_settings.model_copy(update={"kb_refresh_s": 3600.0})
    advisor = KnowledgeAdvisor(settings, fake_embedder)
    advisor.warm_up()
    looks: list[int] = []
    real = advisor._kb_signature

    def counting() -> tuple[object, ...]:
        looks.append(1)
        return real()

    advisor._kb_signature = counting  # type: ignore[method-assign]
    for _ in range(5):
        advisor.start_call()
    assert len(looks) == 1  # the first new call looked; the next four within the hour did not


def test_first_call_after_boot_looks_for_changed_sops(
    kb_settings: Settings, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # time.monotonic() counts from boot: a few seconds after boot it is smaller than kb_refresh_s, and the
    # first call must still look at the files (the bug was "last look at 0.0" read as a recent look).
    import assistant.knowledge.advisor as advisor_module

    settings = kb_settings.model_copy(update={"kb_refresh_s": 3600.0})
    advisor = KnowledgeAdvisor(settings, fake_embedder)
    advisor.warm_up()
    monkeypatch.setattr(advisor_module.time, "monotonic", lambda: 5.0)
    looks: list[int] = []
    real = advisor._kb_signature

    def counting() -> tuple[object, ...]:
        looks.append(1)
        return real()

    advisor._kb_signature = counting  # type: ignore[method-assign]
    advisor.start_call()
    advisor.start_call()
    assert len(looks) == 1
