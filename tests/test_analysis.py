from __future__ import annotations

import pytest

from assistant.analysis import MAX_ANALYZE_CHARS, analyze_once
from assistant.errors import InvalidInputError
from assistant.testing import KeywordAnalyzer, RuleAdvisor


def test_analysis_gives_flags_with_spans_and_a_next_step() -> None:
    result = analyze_once(KeywordAnalyzer(), RuleAdvisor(), "you idiot, get me your manager", ("hello",))
    out = result.to_dict()
    assert {f["label"] for f in out["flags"]} >= {"insult"}
    assert out["suggestions"], "a flagged utterance gets a next step"
    assert set(out["scores"]) >= {"profanity", "insult", "threat"}


def test_analysis_without_advisor_or_text_has_no_suggestions() -> None:
    assert analyze_once(KeywordAnalyzer(), None, "you idiot").suggestions == []
    assert analyze_once(KeywordAnalyzer(), RuleAdvisor(), "   ").suggestions == []


def test_analysis_refuses_oversized_text_with_what_to_do() -> None:
    with pytest.raises(InvalidInputError, match="recent part"):
        analyze_once(KeywordAnalyzer(), None, "x" * (MAX_ANALYZE_CHARS + 1))
