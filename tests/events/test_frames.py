"""Property tests of the frame decoder: any input is either a JSON value within the limits or a FrameError
with a known reason and a message that does not repeat the frame."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.events.frames import FrameError, parse_frame

REASONS = {"frame_too_large", "too_deep", "malformed_json", "invalid_text"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), json_values.map(json.dumps)))
def test_any_frame_decodes_or_fails_cleanly(raw: str | bytes) -> None:
    try:
        parse_frame(raw, max_bytes=256, max_depth=4)
    except FrameError as e:
        assert e.reason in REASONS
        assert len(str(e)) < 300
        if isinstance(raw, str) and len(raw) > 40:
            assert raw not in str(e)


@pytest.mark.parametrize("depth", [5, 1000, 100_000])
def test_deep_nesting_is_refused_at_any_depth(depth: int) -> None:
    with pytest.raises(FrameError) as e:
        parse_frame("[" * depth + "]" * depth, max_bytes=10**6, max_depth=4)
    assert e.value.reason == "too_deep"


def test_lone_surrogates_anywhere_are_refused() -> None:
    for frame in ['"\\ud800"', '{"a": ["\\udfff"]}', '{"\\ud800": 1}']:
        with pytest.raises(FrameError) as e:
            parse_frame(frame, max_bytes=1000, max_depth=4)
        assert e.value.reason == "invalid_text"
    assert parse_frame('"\\ud83d\\ude00"', max_bytes=1000, max_depth=4) == "\U0001f600"  # a valid pair
