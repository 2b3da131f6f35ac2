"""Real-time assistant for call-center agents.

One importable namespace: ``assistant`` (library), ``assistant.api`` (the ``api/`` folder, transport) and
``assistant.eval`` (the ``eval/`` folder, evaluation and benchmarks).
"""

from __future__ import annotations

__version__ = "0.1.0"
