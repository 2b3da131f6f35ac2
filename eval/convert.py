"""Write each public source's split as a red-flag evaluation file (``shared/PRODUCT.md``), so anyone can rerun
the numbers with ``assistant eval redflags --data FILE.jsonl``.

What each file holds is fixed by ``eval_labels`` in ``assistant.redflags.data.MAPPING``: the abuse sources
(ConvAbuse, Davidson, OLID, ETHOS) carry only the ``abusive`` group, since only the group is annotated there;
intent and emotion sources carry the fine labels they annotate; rows that leave one of them undecided are left
out; ``written`` carries every label.

Example:
    >>> convert(["davidson"], "test", Path("eval/data"), data_dir=Path("../shared/datasets"))  # doctest: +SKIP
    {PosixPath('eval/data/davidson_test.jsonl'): 2467}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from assistant.errors import InvalidInputError
from assistant.redflags.data import SOURCES, SPLITS, load_source, to_eval_rows


def output_path(out: Path, source: str, split: str, *, single: bool) -> Path:
    """``out`` itself when it names a ``.jsonl`` file for a single source, else ``out/SOURCE_SPLIT.jsonl``."""
    if out.suffix == ".jsonl":
        if not single:
            raise InvalidInputError(
                f"expected a directory for --out with several sources, got the file {out}"
            )
        return out
    return out / f"{source}_{split}.jsonl"


def convert(
    sources: Sequence[str], split: str, out: Path, *, data_dir: Path, written_dir: Path | None = None
) -> dict[Path, int]:
    """Write one evaluation file per source; return the rows written per file.

    Raises:
        InvalidInputError: an unknown source or split, or a file path given for several sources.
        DataError: a data set could not be read.
    """
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise InvalidInputError(
            f"unknown source(s) {unknown}; expected 'all' or some of {', '.join(SOURCES)}"
        )
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    written: dict[Path, int] = {}
    for source in sources:
        path = output_path(out, source, split, single=len(sources) == 1)
        examples = [e for e in load_source(source, data_dir, written_dir=written_dir) if e.split == split]
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with path.open("w", encoding="utf-8") as f:
            for row in to_eval_rows(examples):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        written[path] = n
    return written
