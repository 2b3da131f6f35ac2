"""Dataclass state as plain JSON-ready data, fast enough for the per-chunk hot path.

Why not ``dataclasses.asdict``: it deep-copies every leaf and re-reads the fields of every instance; with the
call snapshot and the guidance state converted for every chunk it was 18% of the event loop's time at 500
calls (py-spy, docs/benchmarks.md). ``plain`` copies containers (so the result never aliases live state) and
leaves immutable leaves as they are.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Turn:
    ...     seq: int
    ...     labels: list[str] = field(default_factory=list)
    >>> plain({"turns": [Turn(1, ["insult"])], "at": (1, 2)})
    {'turns': [{'seq': 1, 'labels': ['insult']}], 'at': [1, 2]}
"""

from __future__ import annotations

from typing import Any

_LEAVES = (str, int, float, bool, type(None))


def plain(value: Any) -> Any:
    """``value`` with dataclass instances as dicts, tuples as lists, and every container copied."""
    if isinstance(value, _LEAVES):
        return value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is None:
        raise TypeError(
            f"plain() cannot convert {type(value).__name__}; use dataclasses, dicts, lists and leaves"
        )
    return {name: plain(getattr(value, name)) for name in fields}
