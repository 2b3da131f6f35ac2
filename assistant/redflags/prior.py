"""A lexical prior for the red-flag head: which of the project's word lists an utterance hits.

Why: the keyword peer (alt-profanity-check) scores in-dialogue abuse nearly as well as the transformer, and
several sources' ``profanity`` labels are defined by the same lexicon (``training_data/DATASHEET.md``). Given
the hits as three numbers, the head can learn how much each list is worth per label (a linear term on the
logits, zero at the start, trained with the head) instead of rediscovering rare swear words from few rows.
Models trained without it (``RedFlagConfig.lexical_prior`` false) ignore these features.

Example:
    >>> lexical_features(["what the hell is this", "you absolute moron", "thanks"]).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from assistant.redflags._lexicon import has_insulting_word, has_profanity, has_violent_wording

# The order of the features (columns); a model's prior weights are stored in this order.
LEXICAL_FEATURES: tuple[str, ...] = ("profanity", "demeaning_word", "violent_wording")
_CHECKS = (has_profanity, has_insulting_word, has_violent_wording)


def lexical_features(texts: Sequence[str]) -> torch.Tensor:
    """(N, 3) float 0/1: each text's hits on the profanity, demeaning-word and violent-wording lists."""
    return torch.tensor([[float(check(t)) for check in _CHECKS] for t in texts], dtype=torch.float32)
