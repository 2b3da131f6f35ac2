"""Helpers for the knowledge-base tests (a plain module, so tests can import it by name)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

SOP = """---
id: {id}
title: {title}
stage: {stage}
answers: [{answers}]
version: "1.0"
last_revised: 2024-01-01
---
# {title}

{summary}

## Steps

{steps}
"""


def sop_text(
    pid: str,
    title: str,
    steps: list[tuple[str, str]],
    *,
    stage: str = "problem_resolution",
    answers: str = "general",
    summary: str = "",
) -> str:
    body = "\n".join(
        f'{n}. **{t}.** {t} now.\n   > Say: "{say}"' for n, (t, say) in enumerate(steps, start=1)
    )
    return SOP.format(id=pid, title=title, stage=stage, answers=answers, summary=summary or title, steps=body)


WriteSop = Callable[..., Path]
