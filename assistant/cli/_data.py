"""`assistant data`: convert public test splits to evaluation files, and count the training data."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from assistant.labels import LABELS
from assistant.redflags.data import SOURCES, SPLITS, load_source
from assistant.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="red-flag training and evaluation data", description=__doc__)
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    c = dsub.add_parser(
        "convert",
        help="write a source's split as red-flag evaluation JSONL",
        description="Write each source's split as the red-flag evaluation JSON Lines of PRODUCT.md "
        "(abuse sources carry the 'abusive' group, the others the fine labels they annotate).",
    )
    c.add_argument("--source", default="all", help=f"one of {', '.join(SOURCES)}, or 'all' (default)")
    c.add_argument("--split", default="test", choices=SPLITS, help="which split to write (default: test)")
    c.add_argument(
        "--out",
        type=Path,
        required=True,
        help="a directory (one SOURCE_SPLIT.jsonl per source) or, for one source, a .jsonl file",
    )
    _data_dir_option(c)
    c.set_defaults(handler=_convert)

    s = dsub.add_parser(
        "stats",
        help="count examples per source, split and label",
        description="Print a table of examples and positives per label for each source and split.",
    )
    s.add_argument("--source", default="all", help=f"one of {', '.join(SOURCES)}, or 'all' (default)")
    _data_dir_option(s)
    s.set_defaults(handler=_stats)

    o = dsub.add_parser(
        "overlap",
        help="count texts shared across splits, before and after the duplicate rule",
        description="Per source: rows whose text (case, punctuation, fillers and whitespace normalised) also "
        "occurs in a later split of any source (train in valid/test, valid in test) or, for test rows, in an "
        "earlier one; before the duplicate rule across sources and after it (all zero after).",
    )
    _data_dir_option(o)
    o.set_defaults(handler=_overlap)


def _data_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder of the public data sets (default: the ASSISTANT_DATA_DIR setting, ../shared/datasets)",
    )


def _sources(name: str) -> list[str]:
    return list(SOURCES) if name == "all" else [name]


def _convert(args: argparse.Namespace) -> int:
    from assistant.eval.convert import convert

    data_dir = args.data_dir or get_settings().data_dir
    for path, n in convert(_sources(args.source), args.split, args.out, data_dir=data_dir).items():
        print(f"{n:>7}  {path}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from assistant.errors import InvalidInputError

    data_dir = args.data_dir or get_settings().data_dir
    if args.source != "all" and args.source not in SOURCES:
        raise InvalidInputError(
            f"unknown source {args.source!r}; expected 'all' or one of {', '.join(SOURCES)}"
        )
    short = {label: label[:5] if label != "escalation_request" else "escal" for label in LABELS}
    short["legal_threat"], short["churn_risk"] = "legal", "churn"
    header = f"{'source':<11}{'split':<6}{'rows':>7}{'none':>7}" + "".join(f"{short[lb]:>7}" for lb in LABELS)
    loaded = [(source, load_source(source, data_dir)) for source in _sources(args.source)]
    print(header)
    print("-" * len(header))
    totals: Counter[str] = Counter()
    for source, examples in loaded:
        for split in SPLITS:
            part = [e for e in examples if e.split == split]
            pos = Counter(lb for e in part for lb in e.labels)
            none = sum(1 for e in part if not e.labels)
            totals.update(pos)
            totals["rows"] += len(part)
            totals["none"] += none
            print(
                f"{source:<11}{split:<6}{len(part):>7}{none:>7}" + "".join(f"{pos[lb]:>7}" for lb in LABELS)
            )
    print("-" * len(header))
    print(
        f"{'total':<17}{totals['rows']:>7}{totals['none']:>7}" + "".join(f"{totals[lb]:>7}" for lb in LABELS)
    )
    print("columns: rows, rows with no label, positives per label (escal = escalation_request)")
    return 0


def _overlap(args: argparse.Namespace) -> int:
    from assistant.redflags.data import dedup_across_sources, overlap_counts, read_all

    raw = read_all(args.data_dir or get_settings().data_dir)
    before = overlap_counts(raw)
    after = {o.source: o for o in overlap_counts(dedup_across_sources(raw))}
    head = (
        f"{'source':<11}{'rows':>7}  {'train in valid/test':>20}{'valid in test':>15}{'test elsewhere':>16}"
    )
    print(head + "   (before -> after)")
    print("-" * (len(head) + 20))
    for b in before:
        a = after[b.source]
        cells = [
            f"{b.train_in_valid_or_test:>9} -> {a.train_in_valid_or_test:<6}",
            f"{b.valid_in_test:>6} -> {a.valid_in_test:<5}",
            f"{b.test_elsewhere:>7} -> {a.test_elsewhere:<5}",
        ]
        print(f"{b.source:<11}{b.rows:>7}  {cells[0]:>20}{cells[1]:>15}{cells[2]:>16}")
    return 0
