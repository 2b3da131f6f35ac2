"""Forwarding alias: the model stand-ins live in ``assistant.testing``; import them from there.

Kept only while ``eval/baselines.py`` (owned by the training-data restructuring) still imports this path;
delete it once that import reads ``from assistant.testing import KeywordAnalyzer``.
"""

from __future__ import annotations

from assistant.testing.fakes import KeywordAnalyzer, RuleAdvisor, RuleAdvisorState

__all__ = ["KeywordAnalyzer", "RuleAdvisor", "RuleAdvisorState"]
