"""Fixed splits and the one duplicate rule shared by every source.

A split is a function of a stable key under ``SPLIT_SEED`` (or the authors' official split), never of a random
generator's order. ``dedup_key`` is the normal form under which two texts count as the same utterance, whatever
source they come from; ``dedup_across_sources`` drops a text from every row of an earlier split when any source
has it in a later one (test beats valid beats train), so no test text is trained on or used to pick thresholds.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from assistant.redflags.data.examples import SPLIT_RANK, Example, Split

# Fixed once: changing it reshuffles every hash-made split and invalidates reported test figures.
SPLIT_SEED: Final = 13

# Spoken fillers (those the written templates' transcript style inserts, and common ones in ASR output): they
# carry no content, so "um fuck you" and "fuck you" are one text.
FILLERS: Final[tuple[str, ...]] = (
    "okay so",
    "you know",
    "i mean",
    "um",
    "umm",
    "uh",
    "uhh",
    "erm",
    "er",
    "hmm",
    "mm",
    "like",
    "so",
    "well",
)
_FILLER_RE: Final = re.compile(r"\b(?:" + "|".join(re.escape(f) for f in FILLERS) + r")\b")
_WORD_RE: Final = re.compile(r"[^\W_]+")
_STOP: Final = frozenset(ENGLISH_STOP_WORDS) | frozenset(FILLERS) | {"im", "ive", "id", "ill", "dont", "pls"}


def bucket(key: str, *, seed: int = SPLIT_SEED) -> float:
    """A stable number in [0, 1) for a key: the same on every machine and Python version."""
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(key: str, *, valid: float = 0.1, test: float = 0.1) -> Split:
    """The split of a key under the fixed seed: ``test`` for the first share, ``valid`` for the next."""
    b = bucket(key)
    if b < test:
        return "test"
    if b < test + valid:
        return "valid"
    return "train"


def dedup_key(text: str) -> str:
    """The normal form under which two texts are duplicates, across all sources.

    Lower case; apostrophes dropped ("don't" = "dont"); punctuation and symbols become spaces; the fillers of
    ``FILLERS`` are removed; a word repeated straight after itself counts once ("i i want" = "i want", the ASR
    stutter); whitespace collapsed. A text that is nothing but fillers or punctuation keys on its lower-cased
    words ("so" stays "so", "?!" stays "?!").

    Example:
        >>> dedup_key("Um, FUCK   you!!") == dedup_key("fuck you") == "fuck you"
        True
    """
    low = text.lower().replace("'", "").replace("\u2019", "")
    words = _WORD_RE.findall(low)
    kept = _WORD_RE.findall(_FILLER_RE.sub(" ", " ".join(words)))
    if not kept:
        return " ".join(words) or text.strip().lower()
    out = [w for i, w in enumerate(kept) if i == 0 or w != kept[i - 1]]
    return " ".join(out)


def content_signature(text: str) -> str:
    """The sorted set of a text's content words: paraphrases that differ only in function words share it.

    Example:
        >>> content_signature("How can I cancel my order?") == content_signature("can i cancel the order")
        True
        >>> content_signature("i want to cancel the order")
        'cancel order want'
    """
    words = {w for w in dedup_key(text).split() if w not in _STOP}
    return " ".join(sorted(words)) or dedup_key(text)


@dataclass(frozen=True, slots=True)
class Overlap:
    """For one source: its rows whose text (by ``dedup_key``) also occurs in a later split of any source."""

    source: str
    rows: int
    train_in_valid_or_test: int  # train rows whose text is in some source's valid or test split
    valid_in_test: int  # valid rows whose text is in some source's test split
    test_elsewhere: int  # test rows whose text is in some source's (or this one's) train or valid split

    def to_dict(self) -> dict[str, int | str]:
        return {
            "source": self.source,
            "rows": self.rows,
            "train_in_valid_or_test": self.train_in_valid_or_test,
            "valid_in_test": self.valid_in_test,
            "test_elsewhere": self.test_elsewhere,
        }


def _latest_split(examples: Iterable[Example]) -> dict[str, int]:
    best: dict[str, int] = {}
    for e in examples:
        k = dedup_key(e.text)
        best[k] = max(best.get(k, -1), SPLIT_RANK[e.split])
    return best


def dedup_across_sources(examples: list[Example]) -> list[Example]:
    """Drop each row whose text (by ``dedup_key``) occurs in a later split of any source in ``examples``.

    Rows of the same text in the same split stay (across sources too): they are the same evidence twice, not a
    leak. Test rows are never dropped, so the evaluation files keep every official test row.
    """
    best = _latest_split(examples)
    return [e for e in examples if SPLIT_RANK[e.split] == best[dedup_key(e.text)]]


def overlap_counts(examples: list[Example]) -> list[Overlap]:
    """Per source, how many rows share their text with a later (or, for test rows, an earlier) split."""
    best = _latest_split(examples)
    earliest: dict[str, int] = {}
    for e in examples:
        k = dedup_key(e.text)
        earliest[k] = min(earliest.get(k, 3), SPLIT_RANK[e.split])
    rows: Counter[str] = Counter()
    train_hit: Counter[str] = Counter()
    valid_hit: Counter[str] = Counter()
    test_hit: Counter[str] = Counter()
    for e in examples:
        k = dedup_key(e.text)
        rows[e.source] += 1
        if e.split == "train" and best[k] > 0:
            train_hit[e.source] += 1
        elif e.split == "valid" and best[k] > 1:
            valid_hit[e.source] += 1
        elif e.split == "test" and earliest[k] < 2:
            test_hit[e.source] += 1
    return [Overlap(s, rows[s], train_hit[s], valid_hit[s], test_hit[s]) for s in sorted(rows)]
