"""Decoding of one inbound WebSocket frame, with limits: size, JSON nesting depth, valid Unicode.

Every way a frame can be bad ends in a ``FrameError`` with a machine-readable reason and a message that never
repeats the frame (at most a short redacted prefix), so a hostile frame can neither crash the socket (1,000
nested arrays, a lone surrogate ``\\ud800``) nor be reflected back or logged.

Example:
    >>> parse_frame('{"type": "ping"}', max_bytes=1024, max_depth=8)
    {'type': 'ping'}
    >>> parse_frame('[' * 50 + ']' * 50, max_bytes=1024, max_depth=8)
    Traceback (most recent call last):
    ...
    assistant.events.frames.FrameError: JSON nested more than 8 levels deep; at most 8 are allowed
"""

from __future__ import annotations

import json
import re
from typing import Any

from assistant.calls.redaction import redact
from assistant.errors import InvalidInputError

_SURROGATE = re.compile("[\ud800-\udfff]")


class FrameError(InvalidInputError):
    """A frame that cannot be used; ``reason`` is the ``error`` event's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def preview(text: str, limit: int = 24) -> str:
    """A short, redacted start of untrusted text for an error message (never the whole input)."""
    head = text[:limit]
    return repr(redact(_SURROGATE.sub("\ufffd", head)).text) + ("..." if len(text) > limit else "")


def _depth(obj: Any, max_depth: int) -> int:
    """Nesting depth of a decoded JSON value, iteratively (no recursion), stopping past ``max_depth``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, d)
            if deepest > max_depth:
                return deepest
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, d + 1) for child in children)
    return deepest


def _bad_string(obj: Any) -> str | None:
    """The path of the first string (key or value) holding a lone surrogate, which no UTF-8 can carry."""
    stack: list[tuple[Any, str]] = [(obj, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path or "message"
        elif isinstance(value, dict):
            for k, v in value.items():
                if _SURROGATE.search(k):
                    return f"{path}.<key>".lstrip(".")
                stack.append((v, f"{path}.{k}".lstrip(".")))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(value))
    return None


def parse_frame(raw: str | bytes, *, max_bytes: int, max_depth: int) -> Any:
    """The decoded JSON value of ``raw``; raise FrameError when it is too large, too deep, not JSON or not
    valid Unicode."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise FrameError(
            "frame_too_large",
            f"frame of {size} bytes; at most {max_bytes} (ASSISTANT_MAX_FRAME_BYTES) are accepted",
        )
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8", "strict")
        except UnicodeDecodeError:
            raise FrameError(
                "malformed_json", "binary frame is not UTF-8 text; send JSON as a text frame"
            ) from None
    else:
        text = raw
    # Only a frame with many brackets can be deep: checking the count first keeps the common frame cheap.
    brackets = text.count("[") + text.count("{")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise FrameError(
            "too_deep", f"JSON nested too deeply; at most {max_depth} levels are allowed"
        ) from None
    except ValueError as e:
        where = f"line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        msg = e.msg if isinstance(e, json.JSONDecodeError) else "invalid JSON"
        raise FrameError(
            "malformed_json", f"expected a JSON object, got invalid JSON: {msg} {where}"
        ) from None
    if brackets > max_depth and _depth(obj, max_depth) > max_depth:
        raise FrameError(
            "too_deep", f"JSON nested more than {max_depth} levels deep; at most {max_depth} are allowed"
        )
    bad = _bad_string(obj)
    if bad is not None:
        raise FrameError(
            "invalid_text",
            f"{bad}: contains a lone UTF-16 surrogate (such as \\ud800), which is not text; "
            "send valid Unicode",
        )
    return obj
