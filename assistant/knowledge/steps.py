"""Step tracking: did the agent just say a step's script line? Lexical, so agent turns need no encoder pass.

A step counts as done when the agent's utterance holds enough of the step's script words, each weighted by how
rare it is among all the scripts (IDF): "is there anything else I can help you with today" says the closing
script; "thank you" says nothing in particular. Placeholders of a script (``[amount]``, ``[Name]``) are left out,
and words are the BM25 tokens (lower-cased, stop words out, light stemming), so "charged" meets "charge".

Why not the query encoder, as before: it was a second encoder pass for every agent turn (half of the query
encoder's load, about a quarter of the service's CPU on an AVX2 CPU), and it recognised fewer script lines. On
the shipped knowledge base (docs/benchmarks.md, "Step tracking"), for the 71 scripts said verbatim it found
34 (cosine to the step passage >= 0.55, which also holds the step's title and action), the matcher 71; with a
quarter of the words dropped 22 vs 59; it marks fewer steps of other procedures (1 vs 6 of 994 pairs). It misses
paraphrases with other words ("escalate to my manager" for "involve my supervisor"); the encoder caught 2 such
of the 63 real agent turns.

Example:
    >>> sorted(script_words("Your reference is [number]; the credit will show on your next statement."))
    ['credit', 'next', 'reference', 'show', 'statement']
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

from assistant.knowledge.bm25 import tokenize
from assistant.knowledge.document import Procedure

_PLACEHOLDER_RE = re.compile(r"\[[^\]]*\]")
DEFAULT_THRESHOLD = 0.6  # share of a script's IDF weight the utterance must hold (docs/benchmarks.md)


def script_words(script: str) -> frozenset[str]:
    """The BM25 tokens of a script, placeholders left out."""
    return frozenset(tokenize(_PLACEHOLDER_RE.sub(" ", script)))


class ScriptMatcher:
    """Finds the step of a procedure whose script an utterance says, by IDF-weighted word overlap."""

    def __init__(self, procedures: Mapping[str, Procedure], *, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._steps: dict[str, list[tuple[int, frozenset[str]]]] = {}
        for pid, proc in procedures.items():
            steps = [(s.index, script_words(s.script)) for s in proc.steps if s.script]
            self._steps[pid] = [(k, words) for k, words in steps if words]
        df = Counter(w for steps in self._steps.values() for _, words in steps for w in words)
        n = sum(len(steps) for steps in self._steps.values())
        self._idf = {w: math.log(1.0 + n / c) for w, c in df.items()}
        self._total = {
            (pid, k): sum(self._idf[w] for w in words)
            for pid, steps in self._steps.items()
            for k, words in steps
        }

    def match(self, procedure_id: str, text: str) -> tuple[int, float] | None:
        """``(step index, score)`` of the procedure's step best said by ``text``, or None below the threshold."""
        steps = self._steps.get(procedure_id)
        if not steps:
            return None
        said = set(tokenize(text))
        if not said:
            return None
        best: tuple[int, float] | None = None
        for k, words in steps:
            score = sum(self._idf[w] for w in words & said) / self._total[(procedure_id, k)]
            if score >= self.threshold and (best is None or score > best[1]):
                best = (k, round(score, 4))
        return best
