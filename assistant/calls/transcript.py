"""Transcript files: one call per JSON Lines file, one chunk per line (``ChunkIn``).

Read by ``assistant replay``, the demo calls of the landing page and the benchmark's call scripts.

Example:
    >>> sorted(demo_transcripts())[:1]
    ['billing-dispute-abusive']
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from assistant.errors import InvalidInputError
from assistant.events.messages import ChunkIn
from assistant.settings import PROJECT_ROOT

TRANSCRIPTS_DIR = PROJECT_ROOT / "eval" / "transcripts"


def load_transcript(path: Path) -> list[ChunkIn]:
    """Read and validate a transcript file; InvalidInputError names the bad line."""
    if not path.is_file():
        raise InvalidInputError(f"transcript file not found: {path}")
    chunks: list[ChunkIn] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            chunks.append(ChunkIn.model_validate_json(line))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "line"
            raise InvalidInputError(
                f"{path}:{n}: {where}: {err['msg']} (expected a chunk object per line)"
            ) from e
    if not chunks:
        raise InvalidInputError(f"{path}: no chunks; expected one JSON object per line")
    ids = {c.call_id for c in chunks if c.call_id}
    if len(ids) > 1:
        raise InvalidInputError(f"{path}: chunks of several calls {sorted(ids)[:3]}; one call per file")
    return chunks


def demo_transcripts(folder: Path = TRANSCRIPTS_DIR) -> dict[str, Path]:
    """Transcript files by name (the file stem), sorted."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.jsonl"))}
