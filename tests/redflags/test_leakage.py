"""No test text reaches training or validation, through any source: checked on the real data (never skipped)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from assistant.redflags.data import (
    SOURCES,
    Example,
    content_signature,
    dedup_across_sources,
    dedup_key,
    load_corpus,
    overlap_counts,
)
from assistant.redflags.recipe import DEFAULT_CAPS, training_splits


@pytest.fixture(scope="module")
def corpus(data_dir: Path) -> list[Example]:
    return load_corpus(data_dir)


def _keys(rows: list[Example], split: str) -> set[str]:
    return {dedup_key(e.text) for e in rows if e.split == split}


def test_no_test_text_in_any_training_or_validation_row(corpus: list[Example]) -> None:
    assert {e.source for e in corpus} == set(SOURCES)
    test, valid, train = _keys(corpus, "test"), _keys(corpus, "valid"), _keys(corpus, "train")
    leaks = {
        source: sum(
            1 for e in corpus if e.source == source and e.split != "test" and dedup_key(e.text) in test
        )
        for source in SOURCES
    }
    assert leaks == dict.fromkeys(SOURCES, 0)
    assert not valid & train


def test_overlap_counts_are_zero_after_the_rule(corpus: list[Example]) -> None:
    for o in overlap_counts(corpus):
        assert (o.train_in_valid_or_test, o.valid_in_test, o.test_elsewhere) == (0, 0, 0), o


def test_the_rule_kept_every_official_test_row(corpus: list[Example], data_dir: Path) -> None:
    # Test rows are never dropped: ConvAbuse keeps its 831 official validation rows, CLINC150 its 5,500.
    counts: dict[str, int] = defaultdict(int)
    for e in corpus:
        if e.split == "test":
            counts[e.source] += 1
    assert counts["convabuse"] == 831
    assert counts["clinc150"] == 5500
    assert counts["banking77"] == 3080


def test_bitext_paraphrases_share_a_split(corpus: list[Example]) -> None:
    splits: dict[str, set[str]] = defaultdict(set)
    for e in corpus:
        if e.source == "bitext":
            splits[content_signature(e.text)].add(e.split)
    assert splits and all(len(s) == 1 for s in splits.values())


def test_training_splits_sources_caps_and_no_test_row_in_training(data_dir: Path) -> None:
    caps = {"nlupp": 300, "written": 500, "davidson": 200}
    splits = training_splits(data_dir, sources=["nlupp", "written", "davidson"], caps=caps, seed=13)
    full = load_corpus(data_dir, sources=["nlupp", "written", "davidson"])
    for source, cap in caps.items():
        train = [e for e in splits["train"] if e.source == source]
        assert len(train) == cap  # each source has more training rows than its cap
        assert all(e.split == "train" for e in train)
        # Validation and test rows are all kept, uncapped.
        for split in ("valid", "test"):
            mine = [e.id for e in splits[split] if e.source == source]
            assert mine == [e.id for e in full if e.source == source and e.split == split]
    assert {e.source for part in splits.values() for e in part} == set(caps)
    test = {dedup_key(e.text) for e in load_corpus(data_dir, splits=["test"])}
    assert not any(dedup_key(e.text) in test for e in splits["train"] + splits["valid"])


def test_default_caps_cover_every_source() -> None:
    assert set(DEFAULT_CAPS) == set(SOURCES)


def test_dedup_key_normalises_case_punctuation_fillers_and_whitespace() -> None:
    same = ["Fuck you!", "fuck   you", "um fuck you", "FUCK, YOU.", "uh you know fuck you", "fuck fuck you"]
    assert {dedup_key(t) for t in same} == {"fuck you"}
    assert dedup_key("I don't want to cancel") == dedup_key("i dont want to cancel")
    assert dedup_key("i want to cancel") != dedup_key("i don't want to cancel")
    assert dedup_key("so") == "so" and dedup_key("?!") == "?!"  # nothing but a filler or punctuation


def test_dedup_across_sources_drops_earlier_splits_only() -> None:
    def ex(text: str, source: str, split: str, id_: str) -> Example:
        return Example(text, (), frozenset(), frozenset(), source, split, id_)  # type: ignore[arg-type]

    rows = [
        ex("Fuck you!", "written", "train", "w1"),
        ex("fuck you", "convabuse", "test", "c1"),
        ex("um, no", "nlupp", "train", "n1"),
        ex("no", "convabuse", "valid", "c2"),
        ex("hi", "nlupp", "train", "n2"),
        ex("HI", "clinc150", "train", "k1"),
    ]
    kept = [e.id for e in dedup_across_sources(rows)]
    assert kept == ["c1", "c2", "n2", "k1"]
    counts = {o.source: o for o in overlap_counts(rows)}
    assert counts["written"].train_in_valid_or_test == 1
    assert counts["nlupp"].train_in_valid_or_test == 1
    assert counts["convabuse"].test_elsewhere == 1 and counts["convabuse"].valid_in_test == 0
    assert counts["clinc150"].train_in_valid_or_test == 0


def test_cli_data_overlap_prints_before_and_after(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.cli import main

    assert main(["data", "overlap", "--data-dir", str(data_dir)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:] if line.strip()}
    assert set(lines) == set(SOURCES)
    # After the rule every count is 0; before it, ConvAbuse test rows shared text with other sources.
    for line in lines.values():
        assert line.count("-> 0") == 3, line
    before_test = int(lines["convabuse"].split("->")[2].split()[-1])
    assert before_test > 0
