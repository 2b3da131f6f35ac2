"""Red-flag evaluation files (``shared/PRODUCT.md``): what a source's rows say per label, writing and reading them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import DataError
from assistant.labels import GROUPS, LABEL_TO_GROUP, is_known
from assistant.redflags.data.examples import EvalRow, Example
from assistant.redflags.data.sources import MAPPING


def eval_labels(example: Example, names: Sequence[str]) -> list[str] | None:
    """The example's truth over ``names`` (labels or group names), or None when its source leaves one undecided.

    A group is positive when any of its labels is; groups are only asked of sources that annotate the group.
    """
    out: list[str] = []
    for name in names:
        members = GROUPS.get(name)
        if members is not None:
            if example.labels & set(members):
                out.append(name)
        elif name in example.labels:
            out.append(name)
        elif name not in example.known:
            return None
    return out


def to_eval_rows(
    examples: Iterable[Example], *, names: Sequence[str] | None = None
) -> Iterator[dict[str, Any]]:
    """PRODUCT.md red-flag eval rows ``{"text", "context", "labels"}``.

    ``names`` defaults to each source's ``eval_labels`` in ``MAPPING``; rows whose source leaves one of them
    undecided are skipped, since an evaluation file cannot mask a label.
    """
    for e in examples:
        labels = eval_labels(e, names if names is not None else MAPPING[e.source].eval_labels)
        if labels is None:
            continue
        row: dict[str, Any] = {"text": e.text}
        if e.context:
            row["context"] = list(e.context)
        row["labels"] = labels
        yield row


def _parse_eval_row(obj: object) -> EvalRow:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError(f"expected 'text' to be a string, got {type(text).__name__}")
    context = obj.get("context", [])
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise ValueError("expected 'context' to be a list of strings")
    labels = obj.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError("expected 'labels' to be a list of strings (empty for no red flag)")
    unknown = [x for x in labels if not is_known(x)]
    if unknown:
        names = ", ".join((*LABEL_TO_GROUP, *GROUPS))
        raise ValueError(f"unknown label(s) {unknown}; expected labels or groups among {names}")
    return EvalRow(text, tuple(context), frozenset(labels))


def read_eval_jsonl(path: Path) -> list[EvalRow]:
    """Read and validate a red-flag evaluation file; blank lines are skipped.

    Raises:
        DataError: the file is missing, empty, or a line is malformed (the message gives ``path:line``).
    """
    if not path.is_file():
        raise DataError(f"expected a red-flag evaluation file (JSON Lines) at {path}, but there is none")
    rows: list[EvalRow] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: expected UTF-8 JSON Lines, got undecodable bytes ({e.reason})") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(_parse_eval_row(json.loads(line)))
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            raise DataError(f"{path}:{n}: {e}") from e
    if not rows:
        raise DataError(f"{path}: no rows; expected one JSON object per line")
    return rows
