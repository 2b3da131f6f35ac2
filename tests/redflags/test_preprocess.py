from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from assistant.encoder import base_encoder_path
from assistant.redflags.preprocess import _context_ids, encode, normalize


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(str(base_encoder_path()))


def test_normalize_keeps_offsets() -> None:
    raw = "RT @bob: you idiot &amp; https://x.co/a"
    norm = normalize(raw)
    assert len(norm) == len(raw)
    assert norm.index("you idiot") == raw.index("you idiot")
    assert "@bob" not in norm and "https" not in norm


def test_encode_keeps_recent_text_and_context(tokenizer) -> None:  # type: ignore[no-untyped-def]
    long_text = "old words " * 5000 + "get me your manager"
    batch = encode(
        tokenizer, [long_text, "hi"], [(), ("first turn", "second turn")], max_length=64, max_text_tokens=32
    )
    assert batch.truncated == [True, False]
    assert batch.input_ids.shape[1] <= 64
    last = batch.text_offsets[0][-1]
    assert long_text[last[0] : last[1]] == "manager"
    # the context of row 2 is type 1 and ends with the newest turn
    ids = batch.input_ids[1][batch.attention_mask[1].bool()].tolist()
    assert tokenizer.decode(ids).endswith("first turn second turn [SEP]")


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01\x02", "🔥🔥🔥 😡", "Sie sind ein Idiot", "ç" * 50_000])
def test_encode_never_fails_on_odd_text(tokenizer, text: str) -> None:  # type: ignore[no-untyped-def]
    batch = encode(tokenizer, [text], [()], max_length=128, max_text_tokens=96)
    assert batch.input_ids.shape[0] == 1 and batch.input_ids.shape[1] <= 128


def test_context_budget_keeps_only_the_most_recent_context_tokens(tokenizer) -> None:  # type: ignore[no-untyped-def]
    context = ("i want to cancel my account", "are you sure you want to close it")
    capped = encode(tokenizer, ["yes"], [context], max_length=64, max_text_tokens=32, max_context_tokens=4)
    full = encode(tokenizer, ["yes"], [context], max_length=64, max_text_tokens=32)
    ids = capped.input_ids[0][capped.attention_mask[0] == 1].tolist()
    assert tokenizer.decode(ids) == "[CLS] yes [SEP] want to close it [SEP]"
    assert int(full.attention_mask.sum()) > int(capped.attention_mask.sum())
    assert capped.text_offsets == full.text_offsets  # the utterance itself is never cut by the budget


_WORDS = st.sampled_from(
    [
        "get",
        "me",
        "your",
        "manager",
        "NOW!!",
        "idiot,",
        "https://x.co/a?b=c",
        "@bob",
        "RT",
        "&amp;",
        "café",
        "naïve",
        "日本語",
        "\u0301accent",
        "supercalifragilisticexpialidocious",
        "x" * 130,
        "😡😡",
        "\x07",
        "a.b.c",
    ]
)
_SEPARATORS = st.sampled_from([" ", "  ", "\t", "\n", " . "])


@given(
    words=st.lists(st.tuples(_WORDS, _SEPARATORS), min_size=0, max_size=120),
    max_tokens=st.integers(min_value=1, max_value=16),
)
@settings(max_examples=150, deadline=None)
def test_a_context_tail_gives_the_same_last_tokens_as_the_whole_window(  # type: ignore[no-untyped-def]
    tokenizer, words: list[tuple[str, str]], max_tokens: int
) -> None:
    window = "".join(w + sep for w, sep in words).strip(" ")
    trimmed = _context_ids(tokenizer, [window], max_tokens)[0]
    whole = _context_ids(tokenizer, [window], None)[0]
    assert trimmed[-max_tokens:] == whole[-max_tokens:]
