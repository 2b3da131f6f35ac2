"""Deterministic stand-ins for the models, used by the tests and by ``--fake-models`` / ASSISTANT_USE_FAKE_MODELS=1.

Example:
    >>> from assistant.testing import KeywordAnalyzer, RuleAdvisor
"""

from __future__ import annotations

from assistant.testing.fakes import KeywordAnalyzer, RuleAdvisor, RuleAdvisorState

__all__ = ["KeywordAnalyzer", "RuleAdvisor", "RuleAdvisorState"]
