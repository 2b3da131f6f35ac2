"""The trainers' report builder: calibration, confusion counts, input recognition and the page, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.eval.report import calibration_block, confusion, kind_of, render_report, run_name


def test_calibration_block_by_hand() -> None:
    c = calibration_block(
        {"insult": [True, False, True, False], "profanity": [True]},
        {"insult": [0.95, 0.05, 0.6, 0.4], "profanity": [0.3]},
        n_bins=2,
    )
    # insult: bin [0, 0.5) holds 0.05 and 0.4 (mean 0.225, none positive), bin [0.5, 1] holds 0.95 and 0.6
    # (mean 0.775, all positive): each gap 0.225, so ECE 0.225.
    assert c["insult"] == {
        "mean_predicted": [0.225, 0.775],
        "fraction_positive": [0.0, 1.0],
        "count": [2, 2],
        "ece": 0.225,
    }
    assert c["profanity"]["ece"] == 0.7  # one row: predicted 0.3, positive
    # Pooled: bin 0 = 0.05, 0.4, 0.3 (mean 0.25, 1/3 positive, gap 1/12 x 3 rows), bin 1 as insult (0.225 x 2)
    # -> (0.25 + 0.45) / 5 = 0.14.
    assert c["all"]["count"] == [3, 2] and c["all"]["ece"] == 0.14
    assert c["n_bins"] == 2
    with pytest.raises(ValueError, match="align them per row"):
        calibration_block({"insult": [True]}, {"insult": [0.1, 0.2]})


def test_confusion_counts_from_precision_recall_support_n() -> None:
    # recall 0.5 of 10 positives -> tp 5; precision 0.8 -> 5 / 0.8 = 6.25 flagged -> fp 1; fn 5; tn 100 - 11.
    assert confusion({"n": 100, "support": 10, "precision": 0.8, "recall": 0.5}) == {
        "tp": 5,
        "fp": 1,
        "fn": 5,
        "tn": 89,
    }
    zero = {"n": 10, "support": 2, "precision": 0.0, "recall": 0.0, "predicted_positive": 3}
    assert confusion(zero) == {"tp": 0, "fp": 3, "fn": 2, "tn": 5}
    assert confusion({"n": 10}) is None


def test_inputs_are_recognised_by_their_keys() -> None:
    assert kind_of({"per_label": {}, "macro_f1": 0.5}) == "redflags"
    assert kind_of({"recall@1": 0.5}) == "retrieval"
    assert kind_of({"p95_ms": 10}) == "bench"
    assert kind_of({"other": 1}) == "unknown"
    assert (
        run_name(Path("var/eval/convabuse.json"), {"mode": "int8", "device": "cpu"}) == "convabuse int8 cpu"
    )
    assert run_name(Path("var/eval/int8.json"), {"mode": "int8"}) == "int8"


def _run(f1: float, precision: float, recall: float) -> dict[str, object]:
    m = {"precision": precision, "recall": recall, "f1": f1, "support": 10, "n": 100, "roc_auc": 0.9}
    return {"per_label": {"insult": m}, "macro_f1": f1, "n": 100, "baselines": {}}


def test_render_report_tables_by_hand() -> None:
    page = render_report(
        [("fp32", _run(0.625, 0.8, 0.5)), ("int8", _run(0.5, 0.5, 0.5)), ("bench", {"p95_ms": 12.5})],
        title="T & Co",
    )
    assert page.startswith("<!doctype html>") and "<h1>T &amp; Co</h1>" in page
    assert "<td>insult</td><td>0.625</td><td>0.500</td><td>-0.125</td>" in page  # int8 minus fp32
    # fp32: tp 5, fp 1, fn 5, tn 89 (see test_confusion_counts...); int8: precision 1/2 -> fp 5, tn 85.
    assert "<td>5 / 1 / 5 / 89</td><td>5 / 5 / 5 / 85</td>" in page
    assert "<h2>Benchmark</h2>" in page and "<h2>Retrieval</h2>" not in page
    assert "No calibration block" in page
    assert render_report([("x", {"other": 1})]).count("Not recognised") == 1
