"""Tests of the red-flag training and evaluation data: splits, label mapping, converter, eval reader."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from assistant.errors import DataError, InvalidInputError
from assistant.eval.convert import convert
from assistant.labels import LABELS
from assistant.redflags.data import (
    SOURCES,
    WRITTEN_DIR,
    Example,
    dedup_key,
    eval_labels,
    load_corpus,
    load_source,
    read_eval_jsonl,
    to_eval_rows,
    written_rows,
)
from assistant.settings import get_settings

DATA_DIR = get_settings().data_dir
# Missing data fails these tests (the data_dir fixture of conftest.py), it does not skip them.
needs_data = pytest.mark.usefixtures("data_dir")


@pytest.fixture(scope="module")
def convabuse(data_dir: Path) -> list[Example]:
    return load_source("convabuse", data_dir)


@needs_data
@pytest.mark.parametrize("source", ["convabuse", "davidson", "nlupp", "bitext", "written"])
def test_load_source_splits_disjoint_and_stable(source: str) -> None:
    first = load_source(source, DATA_DIR)
    second = load_source(source, DATA_DIR)
    assert [(e.id, e.split) for e in first] == [(e.id, e.split) for e in second]
    by_split: dict[str, set[str]] = defaultdict(set)
    for e in first:
        by_split[e.split].add(dedup_key(e.text))
    assert set(by_split) == {"train", "valid", "test"}
    assert not by_split["train"] & by_split["test"]
    assert not by_split["train"] & by_split["valid"]
    assert not by_split["valid"] & by_split["test"]
    assert len({e.id for e in first}) == len(first)


@needs_data
def test_load_source_labels_are_known_labels() -> None:
    for source in SOURCES:
        for e in load_source(source, DATA_DIR):
            assert e.labels <= e.known <= set(LABELS), (source, e.id)


@needs_data
def test_convabuse_test_is_official_valid_file(convabuse: list[Example]) -> None:
    with (DATA_DIR / "convabuse" / "ConvAbuseEMNLPvalid.csv").open(encoding="utf-8", newline="") as f:
        official = {r["example_id"]: r["user"].strip() for r in csv.DictReader(f)}
    test = {e.id: e.text for e in convabuse if e.split == "test"}
    assert test == official


@needs_data
def test_convabuse_soft_share_agrees_with_majority(convabuse: list[Example]) -> None:
    shares = {e.id: dict(e.soft)["insult"] for e in convabuse}
    assert len(shares) == len(convabuse)
    assert all(0.0 <= s <= 1.0 for s in shares.values())
    # Strict majority: abusive exactly when more than half the annotators said so.
    assert all(("insult" in e.labels) == (shares[e.id] > 0.5) for e in convabuse)
    assert any(0.0 < s < 1.0 for s in shares.values())


@needs_data
def test_convabuse_valid_split_by_conversation(convabuse: list[Example]) -> None:
    with (DATA_DIR / "convabuse" / "ConvAbuseEMNLPtrain.csv").open(encoding="utf-8", newline="") as f:
        conv = {r["example_id"]: r["conv_id"] for r in csv.DictReader(f)}
    train = {conv[e.id] for e in convabuse if e.split == "train"}
    valid = {conv[e.id] for e in convabuse if e.split == "valid"}
    assert valid and not train & valid
    assert 0.2 < len(valid) / (len(train) + len(valid)) < 0.4  # CONVABUSE_VALID_SHARE = 0.30


@needs_data
def test_mapping_hand_checked_rows(convabuse: list[Example]) -> None:
    ca = {e.id: e for e in convabuse}
    assert ca["3826.0"].labels == frozenset()  # "i want to know some question about you ?": not abusive
    question = "Does that question interest you?"
    assert ca["3826.0"].context == (question, "do you know Eminem?", question)
    assert ca["3124.0"].labels == {"insult", "profanity"}  # "no you fat whore"
    assert ca["561.0"].labels == {"insult"}  # "Your programmer is a butt boy": abusive, no swear word
    dv = {e.id: e for e in load_source("davidson", DATA_DIR)}
    assert dv["0"].labels == frozenset()  # class 2 neither
    assert dv["1"].labels == {"profanity", "insult"}  # class 1 offensive, "hoe"
    ol = {e.id: e for e in load_source("olid", DATA_DIR)}
    assert ol["86426"].labels == {"profanity"}  # OFF UNT
    assert ol["90194"].labels == {"insult"} and "threat" not in ol["90194"].known  # OFF TIN, no violence
    nl = {e.id: e for e in load_source("nlupp", DATA_DIR)}
    assert nl["fold0-58"].labels == {"escalation_request"}  # handoff: "let me talk to a real person"
    churn = [e for e in nl.values() if "churn_risk" in e.labels]
    assert churn and all("card" not in e.text.lower() for e in churn)
    b77 = load_source("banking77", DATA_DIR)
    assert any(e.labels == {"churn_risk"} for e in b77)


@needs_data
def test_load_corpus_caps_with_positives_first() -> None:
    full = [e for e in load_source("davidson", DATA_DIR) if e.split == "valid"]
    capped = load_corpus(DATA_DIR, sources=["davidson"], splits=["valid"], max_per_source_split=90, seed=1)
    assert len(capped) == 90
    assert {e.id for e in capped} <= {e.id for e in full}
    assert sum(1 for e in capped if e.labels) == 60  # two thirds positives, a third kept for negatives
    again = load_corpus(DATA_DIR, sources=["davidson"], splits=["valid"], max_per_source_split=90, seed=1)
    assert [e.id for e in capped] == [e.id for e in again]


def test_written_rows_split_by_template() -> None:
    splits: dict[str, set[str]] = defaultdict(set)
    per_label: dict[tuple[str, str], int] = defaultdict(int)
    for row in written_rows(WRITTEN_DIR):
        splits[row["template_id"]].add(row["split"])
        for label in row["labels"]:
            per_label[(label, row["split"])] += 1
    assert all(len(s) == 1 for s in splits.values())
    for label in ("escalation_request", "legal_threat", "churn_risk", "frustration", "threat"):
        assert all(per_label[(label, split)] >= 20 for split in ("train", "valid", "test")), label


def test_eval_labels_skip_undecided_rows() -> None:
    e = Example("cancel it", (), frozenset(), frozenset({"escalation_request"}), "nlupp", "test", "x")
    assert eval_labels(e, ["escalation_request"]) == []
    assert eval_labels(e, ["churn_risk"]) is None
    g = Example("you idiot", (), frozenset({"insult"}), frozenset({"insult"}), "davidson", "test", "y")
    assert eval_labels(g, ["abusive"]) == ["abusive"]


@needs_data
def test_convert_round_trips_through_reader(tmp_path: Path) -> None:
    written = convert(["written"], "test", tmp_path, data_dir=DATA_DIR)
    (path, n), *_ = written.items()
    rows = read_eval_jsonl(path)
    examples = [e for e in load_source("written", DATA_DIR) if e.split == "test"]
    assert n == len(rows) == len(examples)
    assert [(r.text, r.context, r.labels) for r in rows] == [(e.text, e.context, e.labels) for e in examples]


@needs_data
def test_convert_convabuse_writes_abusive_group(tmp_path: Path, convabuse: list[Example]) -> None:
    out = tmp_path / "ca.jsonl"
    convert(["convabuse"], "test", out, data_dir=DATA_DIR)
    rows = read_eval_jsonl(out)
    expected = [["abusive"] if e.labels else [] for e in convabuse if e.split == "test"]
    assert [sorted(r.labels) for r in rows] == expected
    assert next(iter(to_eval_rows(convabuse[:1]))).keys() <= {"text", "context", "labels"}


def test_convert_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown source"):
        convert(["nope"], "test", tmp_path, data_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="directory"):
        convert(["written", "davidson"], "test", tmp_path / "x.jsonl", data_dir=tmp_path)


def test_read_eval_jsonl_reports_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hi", "labels": []}\n\n{"text": "x", "labels": ["rude"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:3: unknown label"):
        read_eval_jsonl(path)
    path.write_text('{"text": "hi", "labels": ["abusive", "insult"]}\n{"text": 5}\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:2: expected 'text'"):
        read_eval_jsonl(path)
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:1:"):
        read_eval_jsonl(path)


def test_load_source_missing_data_dir_names_setting(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="ASSISTANT_DATA_DIR"):
        load_source("davidson", tmp_path / "missing")
    with pytest.raises(DataError, match="ASSISTANT_DATA_DIR"):
        load_source("davidson", tmp_path)  # the folder exists, the file does not
