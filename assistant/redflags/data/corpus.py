"""Loading the red-flag corpus: every source read, deduplicated across sources, split and capped.

``load_source`` and ``load_corpus`` always read every source, because the duplicate rule spans them all (a
ConvAbuse test text must not be trained on through the written examples or NLU++); the deduplicated corpus is
cached per process and data folder (about 5 s to build).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from assistant.errors import DataError
from assistant.redflags.data.examples import SPLITS, Example
from assistant.redflags.data.sources import MAPPING, READERS, SOURCES
from assistant.redflags.data.splits import bucket, dedup_across_sources
from assistant.redflags.data.written import written_examples
from assistant.settings import PROJECT_ROOT

WRITTEN_DIR = PROJECT_ROOT / "training_data"


def read_source(name: str, data_dir: Path, *, written_dir: Path | None = None) -> list[Example]:
    """One source's rows as mapped, every split, before the cross-source duplicate rule.

    Raises:
        DataError: unknown source, or a missing data directory or file (names the path and the setting).
    """
    if name not in MAPPING:
        raise DataError(f"unknown source {name!r}; expected one of {', '.join(SOURCES)}")
    if name == "written":
        examples = written_examples(written_dir or WRITTEN_DIR)
    else:
        _require_data_dir(data_dir)
        try:
            examples = READERS[name](data_dir)
        except (KeyError, ValueError, IndexError, UnicodeDecodeError) as e:
            raise DataError(
                f"could not read source {name!r} under {data_dir}: {e!r}; is the file as released?"
            ) from e
    return [e for e in examples if e.text]


def _require_data_dir(data_dir: Path) -> None:
    if not data_dir.is_dir():
        raise DataError(
            f"data directory {data_dir} does not exist; set ASSISTANT_DATA_DIR to the folder that holds "
            "the public data sets (default ../shared/datasets)"
        )


def read_all(data_dir: Path, *, written_dir: Path | None = None) -> list[Example]:
    """Every source's rows, before the duplicate rule (what ``overlap_counts`` compares against)."""
    return [e for name in SOURCES for e in read_source(name, data_dir, written_dir=written_dir)]


@functools.lru_cache(maxsize=2)
def _deduplicated(data_dir: Path, written_dir: Path) -> dict[str, list[Example]]:
    by_source: dict[str, list[Example]] = {name: [] for name in SOURCES}
    for e in dedup_across_sources(read_all(data_dir, written_dir=written_dir)):
        by_source[e.source].append(e)
    return by_source


def load_source(name: str, data_dir: Path, *, written_dir: Path | None = None) -> list[Example]:
    """All rows of one source, every split, after the duplicate rule across all sources.

    A text (by ``dedup_key``) that any source has in a later split is dropped from this source's earlier splits
    (test beats valid beats train). Reading needs every source's data, since any of them may hold the text.

    Raises:
        DataError: unknown source, or a missing data directory or file (names the path and the setting).
    """
    if name not in MAPPING:
        raise DataError(f"unknown source {name!r}; expected one of {', '.join(SOURCES)}")
    _require_data_dir(data_dir)
    rows = _deduplicated(data_dir.resolve(), (written_dir or WRITTEN_DIR).resolve())[name]
    return list(rows)


def cap_examples(examples: list[Example], cap: int, seed: int) -> list[Example]:
    """At most ``cap`` examples, positives first but keeping a third of the budget for negatives if any."""
    if len(examples) <= cap:
        return examples

    def order(es: list[Example]) -> list[Example]:
        return sorted(es, key=lambda e: bucket(f"{e.source}:{e.id}", seed=seed))

    pos = order([e for e in examples if e.labels])
    neg = order([e for e in examples if not e.labels])
    n_neg = min(len(neg), max(cap - len(pos), cap // 3))
    return pos[: cap - n_neg] + neg[:n_neg]


def load_corpus(
    data_dir: Path,
    *,
    sources: Sequence[str] | None = None,
    splits: Sequence[str] = SPLITS,
    max_per_source_split: int | None = None,
    seed: int = 13,
    written_dir: Path | None = None,
) -> list[Example]:
    """Examples of several sources and splits; ``max_per_source_split`` caps each (source, split) pair.

    The cap keeps positives first (seeded, stable order) and at least a third of the budget for negatives;
    the seed only picks which rows survive the cap, never the splits.
    """
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise DataError(f"unknown split(s) {bad}; expected some of {SPLITS}")
    out: list[Example] = []
    for name in sources if sources is not None else SOURCES:
        examples = load_source(name, data_dir, written_dir=written_dir)
        for split in splits:
            part = [e for e in examples if e.split == split]
            out.extend(
                part if max_per_source_split is None else cap_examples(part, max_per_source_split, seed)
            )
    return out
