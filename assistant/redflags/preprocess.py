"""Turn an utterance and its context into model inputs, with a documented truncation rule.

Layout: ``[CLS] utterance [SEP] context [SEP]`` (token types 0 and 1). The utterance comes first so its
tokens sit at fixed positions and their character offsets map straight back for spans.

Truncation rule (recent kept, oldest dropped):
1. The utterance keeps its last ``max_text_tokens`` tokens: in a long chunk the most recent words matter.
   Before tokenising, only its last ``max_text_tokens * 12`` characters are read, so 100 kB costs nothing.
2. The context (earlier turns, oldest first) is joined newest-last and keeps its last tokens, filling what
   the utterance leaves of ``max_length`` but at most ``max_context_tokens``; older turns are dropped first.

Normalisation never moves characters: social-media debris (``@user``, ``RT``, URLs, HTML entities) and
control characters are blanked out with spaces of the same length, so offsets stay valid for the raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

_CHARS_PER_TOKEN_BOUND = 12
# Debris that carries no red-flag signal but appears in training tweets; blanked, not deleted.
_DEBRIS = re.compile(
    r"(?:https?://\S+|www\.\S+|@\w+|\bRT\b|&(?:amp|lt|gt|quot|#\d+);|[\x00-\x08\x0b-\x1f\x7f])", re.IGNORECASE
)


def normalize(text: str) -> str:
    """Blank out social-media debris and control characters, keeping every character's position."""
    return _DEBRIS.sub(lambda m: " " * len(m.group(0)), text)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Model inputs plus what is needed to map token scores back to the raw text."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    # 1 on the utterance's own tokens: the head reads its evidence there only (context informs the encoder).
    text_mask: torch.Tensor
    # Per row: (start, end) character offsets in the raw utterance for tokens 1..n_text; n_text = len(list).
    text_offsets: list[list[tuple[int, int]]]
    truncated: list[bool]


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    contexts: list[tuple[str, ...]],
    *,
    max_length: int,
    max_text_tokens: int,
    max_context_tokens: int | None = None,
) -> EncodedBatch:
    """Tokenise a batch under the truncation rule of this module."""
    if len(texts) != len(contexts):
        raise ValueError(
            f"expected one context per text, got {len(texts)} texts and {len(contexts)} contexts"
        )
    char_budget = max_text_tokens * _CHARS_PER_TOKEN_BOUND
    starts = [max(0, len(t) - char_budget) for t in texts]
    views = [normalize(t[s:]) for t, s in zip(texts, starts, strict=True)]
    enc_t = tokenizer(views, add_special_tokens=False, return_offsets_mapping=True)
    windows = [" ".join(c)[-char_budget * 2 :] if c else "" for c in contexts]
    context_ids = _context_ids(tokenizer, windows, max_context_tokens)

    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    rows: list[list[int]] = []
    types: list[list[int]] = []
    offsets: list[list[tuple[int, int]]] = []
    truncated: list[bool] = []
    for i, ids in enumerate(enc_t["input_ids"]):
        offs = enc_t["offset_mapping"][i]
        cut = starts[i] > 0 or len(ids) > max_text_tokens
        ids, offs = ids[-max_text_tokens:], offs[-max_text_tokens:]
        room = max_length - len(ids) - 3
        if max_context_tokens is not None:
            room = min(room, max_context_tokens)
        ctx = context_ids[i][-room:] if room > 0 else []
        row = [cls_id, *ids, sep_id]
        tt = [0] * len(row)
        if ctx:
            row += [*ctx, sep_id]
            tt += [1] * (len(ctx) + 1)
        rows.append(row)
        types.append(tt)
        offsets.append([(a + starts[i], b + starts[i]) for a, b in offs])
        truncated.append(cut)

    # Padded Python lists, then one tensor each: per-row tensor writes cost the model thread ~10 us apiece,
    # holding the GIL the event loop needs (py-spy at 500 calls).
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
    token_types = torch.tensor([tt + [0] * (width - len(tt)) for tt in types], dtype=torch.long)
    text_mask = torch.tensor([_utterance_mask_row(width, len(o)) for o in offsets], dtype=torch.long)
    return EncodedBatch(input_ids, attention, token_types, text_mask, offsets, truncated)


def _context_ids(
    tokenizer: PreTrainedTokenizerBase, windows: list[str], max_tokens: int | None
) -> list[list[int]]:
    """The token ids of each context window, or of its tail where that gives the same last ``max_tokens`` ids.

    Why: a row keeps at most ``max_tokens`` (8) context tokens, but its window may be 1,152 characters, and
    tokenising all of it was most of a batch's tokenising (32 rows with four earlier turns, ~290 characters each:
    5.1 -> 3.3 ms). The tail starts after a space, and BERT tokenises word by word, so its ids are the window's
    last ids (a property test holds it to that); a tail that gives fewer than ``max_tokens`` of them (a very long
    unknown word) is tokenised whole instead.
    """
    tails = list(windows)
    if max_tokens is not None:
        budget = (max_tokens + 1) * _CHARS_PER_TOKEN_BOUND
        for i, w in enumerate(windows):
            cut = w.find(" ", len(w) - budget) if len(w) > budget else -1
            tails[i] = w[cut + 1 :] if cut >= 0 else w
    ids: list[list[int]] = tokenizer([normalize(t) for t in tails], add_special_tokens=False)["input_ids"]
    if max_tokens is None:
        return ids
    short = [
        i
        for i, (t, w) in enumerate(zip(tails, windows, strict=True))
        if len(t) < len(w) and len(ids[i]) < max_tokens
    ]
    if short:
        whole = tokenizer([normalize(windows[i]) for i in short], add_special_tokens=False)["input_ids"]
        for i, row in zip(short, whole, strict=True):
            ids[i] = row
    return ids


def _utterance_mask_row(width: int, n_text: int) -> list[int]:
    if not n_text:
        return [1] + [0] * (width - 1)
    return [0] + [1] * n_text + [0] * (width - n_text - 1)


def utterance_mask(width: int, n_text: int) -> torch.Tensor:
    """Positions 1..n_text (after [CLS]); an empty utterance falls back to [CLS] so the head has an input."""
    return torch.tensor(_utterance_mask_row(width, n_text), dtype=torch.long)
