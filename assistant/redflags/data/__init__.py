"""Training and evaluation data for the red-flag classifier: public data sets plus our written examples.

One module per concern:
- ``examples``: the row types (``Example``, ``EvalRow``) and split names;
- ``sources``: one reader per public data set and the mapping table ``MAPPING`` onto red-flag labels;
- ``written``: our templates (``training_data/templates/``) expanded into rows, split by template id;
- ``splits``: fixed hash splits, the duplicate key and the duplicate rule across all sources;
- ``corpus``: loading sources and corpora (deduplicated across sources, capped);
- ``evalfiles``: evaluation files: which labels a row decides, writing and reading them.

Splits are fixed: official splits where the authors made them, otherwise a seeded hash of a stable id (the
conversation for ConvAbuse, the content words for Bitext, the template for our written rows). A text that any
source has in a later split is dropped from every earlier split of every source (test beats valid beats train),
so no test text is trained on or picks a threshold.

Example:
    >>> from assistant.settings import get_settings
    >>> rows = load_source("convabuse", get_settings().data_dir)  # doctest: +SKIP
    >>> sorted({r.split for r in rows})  # doctest: +SKIP
    ['test', 'train', 'valid']
"""

from assistant.redflags.data.corpus import (
    WRITTEN_DIR,
    cap_examples,
    load_corpus,
    load_source,
    read_all,
    read_source,
)
from assistant.redflags.data.evalfiles import eval_labels, read_eval_jsonl, to_eval_rows
from assistant.redflags.data.examples import SPLITS, EvalRow, Example, Split
from assistant.redflags.data.sources import MAPPING, SOURCES, SourceSpec
from assistant.redflags.data.splits import (
    SPLIT_SEED,
    Overlap,
    content_signature,
    dedup_across_sources,
    dedup_key,
    hash_split,
    overlap_counts,
)
from assistant.redflags.data.written import written_rows

__all__ = [
    "MAPPING",
    "SOURCES",
    "SPLITS",
    "SPLIT_SEED",
    "WRITTEN_DIR",
    "EvalRow",
    "Example",
    "Overlap",
    "SourceSpec",
    "Split",
    "cap_examples",
    "content_signature",
    "dedup_across_sources",
    "dedup_key",
    "eval_labels",
    "hash_split",
    "load_corpus",
    "load_source",
    "overlap_counts",
    "read_all",
    "read_eval_jsonl",
    "read_source",
    "to_eval_rows",
    "written_rows",
]
