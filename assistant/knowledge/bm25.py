"""A small Okapi BM25 lexical index over passages (numpy only)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_TOKEN_RE = re.compile(r"[a-z0-9]+")
# Function words that carry no topic; kept short on purpose so that "not", "no", "never" stay searchable.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "hi",
        "him",
        "his",
        "how",
        "i",
        "i'm",
        "if",
        "in",
        "into",
        "is",
        "it",
        "it's",
        "its",
        "just",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "they",
        "this",
        "to",
        "too",
        "um",
        "uh",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yeah",
        "yes",
        "okay",
        "ok",
        "oh",
        "like",
        "well",
        "hey",
        "hello",
    ]
)


def _stem(token: str) -> str:
    """A light suffix stripper so that 'charges', 'charged' and 'charging' meet 'charge'."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            if suffix == "s" and token.endswith("ss"):
                return token
            return token[: -len(suffix)] + keep
    return token


def tokenize(text: str) -> list[str]:
    """Lowercased, stop-word-free, lightly stemmed word tokens."""
    text = text.lower().replace("’", "'")
    return [_stem(t) for t in _TOKEN_RE.findall(text) if t not in STOPWORDS]


class BM25Index:
    """Okapi BM25 with postings lists; ``scores`` returns one score per passage.

    Example:
        >>> idx = BM25Index(["refund for boots", "reset my password"])
        >>> int(idx.scores("boots refund").argmax())
        0
    """

    def __init__(self, texts: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.n = len(texts)
        docs = [tokenize(t) for t in texts]
        lengths = np.array([len(d) for d in docs], dtype=np.float32)
        avgdl = float(lengths.mean()) if self.n and lengths.sum() > 0 else 1.0
        norm: np.ndarray = k1 * (1.0 - b + b * lengths / avgdl)
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for i, d in enumerate(docs):
            for term, tf in Counter(d).items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(float(tf))
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, (ids, tfs) in postings.items():
            df = len(ids)
            idf = math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))
            idx = np.asarray(ids, dtype=np.int64)
            tf_arr = np.asarray(tfs, dtype=np.float32)
            weights = idf * tf_arr * (k1 + 1.0) / (tf_arr + norm[idx])
            self._postings[term] = (idx, weights.astype(np.float32))

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.n, dtype=np.float32)
        for term in set(tokenize(query)):
            hit = self._postings.get(term)
            if hit is not None:
                np.add.at(out, hit[0], hit[1])
        return out
