"""Agents' feedback on suggestions as labeled rows in the red-flag evaluation format (``GET /v1/feedback/export``).

A trainer downloads the rows, reviews the ``review: true`` ones, and evaluates or retrains on them with
``assistant eval redflags --data FILE.jsonl``.
"""

from __future__ import annotations

import json
from typing import Any

from assistant.calls.redaction import redact
from assistant.store import Store
from assistant.store.records import CallRecord, FeedbackRecord


def feedback_rows(
    record: CallRecord, items: list[FeedbackRecord], *, context_turns: int = 3
) -> list[dict[str, Any]]:
    """Red-flag evaluation rows (``text``, ``context``, ``labels``) for one call's feedback.

    A feedback item names the suggestion event (``eid``) it is about; the suggestion's ``seq`` gives the
    customer utterance that drove it (the chunk at that seq, or the last customer chunk before it when an
    agent turn moved the step on). ``labels`` are the labels the model flagged on that utterance when the agent
    said the suggestion was ``useful`` (a confirmed example), and ``[]`` when it was ``wrong`` (a candidate false
    alarm; ``review: true`` asks a trainer to check it before training on it). Items whose suggestion cannot be
    found are left out. Extra keys (``verdict``, ``model_labels``, ...) are ignored by the evaluation reader.
    """
    seq_of_eid = {s.eid: s.seq for s in record.suggestions}
    chunks = record.transcript
    labels_at: dict[int, list[str]] = {}
    for f in record.flags:
        labels_at.setdefault(f.seq, [])
        labels_at[f.seq] += [x for x in f.labels if x not in labels_at[f.seq]]
    rows: list[dict[str, Any]] = []
    for fb in items:
        seq = seq_of_eid.get(fb.eid) if fb.eid is not None else None
        if seq is None:
            continue
        idx = max((i for i, c in enumerate(chunks) if c.seq <= seq and c.speaker == "customer"), default=None)
        if idx is None:
            continue
        utterance = chunks[idx]
        model_labels = labels_at.get(utterance.seq, [])
        rows.append(
            {
                "text": utterance.text,
                "context": [c.text for c in chunks[max(0, idx - context_turns) : idx]],
                "labels": list(model_labels) if fb.verdict == "useful" else [],
                "verdict": fb.verdict,
                "review": fb.verdict != "useful",
                "model_labels": model_labels,
                "call_id": record.id,
                "seq": utterance.seq,
                "procedure_id": fb.procedure_id,
                "step_index": fb.step_index,
                "comment": redact(fb.comment).text if fb.comment else fb.comment,
                "feedback_id": fb.id,
            }
        )
    return rows


async def export_lines(store: Store, *, verdict: str | None = None, limit: int = 10_000) -> list[str]:
    """The JSON Lines of the latest ``limit`` feedback items (only ``verdict`` ones if given), oldest first."""
    items = await store.list_feedback(limit=limit)
    if verdict:
        items = [f for f in items if f.verdict == verdict]
    by_call: dict[str, list[FeedbackRecord]] = {}
    for f in reversed(items):  # oldest first in the file
        by_call.setdefault(f.call_id, []).append(f)
    lines: list[str] = []
    for call_id, group in by_call.items():
        record = await store.get_call(call_id)
        if record is not None:
            lines += [json.dumps(r, ensure_ascii=False) for r in feedback_rows(record, group)]
    return lines
