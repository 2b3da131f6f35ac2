"""Calibration per label: the ECE of `calibration_block` by hand, and the report's table and reliability plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.eval.redflags import evaluate
from assistant.eval.report import (
    calibration_block,
    calibration_labels,
    plot_calibration_per_label,
    render_report,
)


def test_ece_by_hand_two_bins() -> None:
    # Bin [0, 0.5): p 0.1 0.3 0.2 -> mean 0.2, positives 1 of 3 -> gap |0.2 - 1/3| = 0.1333 (3 rows)
    # Bin [0.5, 1]: p 0.7 0.9 0.6 -> mean 0.7333, positives 2 of 3 -> gap 0.0667 (3 rows)
    # ECE = (3 * 0.1333 + 3 * 0.0667) / 6 = 0.1
    y = [False, True, False, True, True, False]
    p = [0.1, 0.3, 0.2, 0.7, 0.9, 0.6]
    block = calibration_block({"insult": y}, {"insult": p}, n_bins=2)["insult"]
    assert block["count"] == [3, 3]
    assert block["mean_predicted"] == [0.2, 0.7333]
    assert block["fraction_positive"] == [0.3333, 0.6667]
    assert block["ece"] == pytest.approx(0.1, abs=1e-4)


def test_ece_by_hand_ten_bins_pooled_and_edges() -> None:
    # Ten bins, one row each in bins 0, 1, 7, 8, 9 (p = 1.0 falls in the last bin):
    # gaps |0.05-1| + |0.15-0| + |0.75-0| + |0.85-1| + |1.0-1| = 0.95 + 0.15 + 0.75 + 0.15 + 0 = 2.0 -> ECE 0.4
    cal = calibration_block(
        {"churn_risk": [True, False, False, True, True], "insult": [True, False]},
        {"churn_risk": [0.05, 0.15, 0.75, 0.85, 1.0], "insult": [1.0, 0.0]},
    )
    assert cal["n_bins"] == 10
    assert cal["churn_risk"]["count"] == [1, 1, 1, 1, 1]
    assert cal["churn_risk"]["ece"] == pytest.approx(0.4, abs=1e-4)
    assert cal["insult"]["ece"] == 0.0  # certain and right: perfectly calibrated
    # Pooled over both labels: (2.0 + 0) / 7 rows
    assert cal["all"]["ece"] == pytest.approx(2.0 / 7, abs=1e-4)
    with pytest.raises(ValueError, match="align them per row"):
        calibration_block({"insult": [True]}, {"insult": [0.1, 0.2]})


def test_evaluate_writes_per_label_calibration_of_the_model() -> None:
    class _Sure:
        name = "sure"

        def score(self, texts, contexts):  # type: ignore[no-untyped-def]
            p = np.array([0.9 if "idiot" in t else 0.1 for t in texts])
            return {"insult": (p, p >= 0.5), "abusive": (p, p >= 0.5)}

    report = evaluate(
        ["you idiot", "hello", "idiot box on tv", "thanks"],
        [[], [], [], []],
        [["insult"], [], [], []],
        _Sure(),
    )
    cal = report["calibration"]
    assert set(cal) == {"n_bins", "insult", "all"}  # the names in the file, as scored
    # insult: bin 1 (p 0.1, 2 negatives) gap 0.1; bin 9 (p 0.9, 1 of 2 positive) gap 0.4 -> (2*0.1 + 2*0.4) / 4
    assert cal["insult"]["ece"] == pytest.approx(0.25, abs=1e-4)


def _eval_json(ece_shift: float = 0.0) -> dict:
    y = {"insult": [True, False, True, False], "churn_risk": [True, True, False, False]}
    p = {"insult": [0.9, 0.2, 0.7, 0.1], "churn_risk": [min(1.0, 0.8 + ece_shift), 0.6, 0.3, 0.1]}
    per_label = {
        name: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "n": 4, "roc_auc": 1.0} for name in y
    }
    return {
        "n": 4,
        "names": list(y),
        "per_label": per_label,
        "macro_f1": 1.0,
        "baselines": {},
        "calibration": calibration_block(y, p),
        "thresholds": {"insult": 0.5, "churn_risk": 0.9},
    }


def test_report_shows_ece_per_label_and_a_reliability_plot_per_label() -> None:
    runs = [("fp32", _eval_json()), ("int8", _eval_json(0.2))]
    assert calibration_labels(runs) == ["insult", "churn_risk"]  # contract order, no pooled entry
    assert plot_calibration_per_label(runs)  # a PNG (base64)
    page = render_report(runs)
    ece = runs[0][1]["calibration"]["churn_risk"]["ece"]
    assert "Reliability per label" in page and "fp32 ECE (rows)" in page
    assert f"<td>{ece:.3f} (4)</td>" in page
    assert "all labels pooled" in page
    without = render_report([("old", {k: v for k, v in _eval_json().items() if k != "calibration"})])
    assert "No calibration block" in without and "Reliability per label" not in without


@pytest.mark.slow
def test_cli_report_from_eval_json_with_calibration(tmp_path: Path) -> None:
    src = tmp_path / "eval.json"
    src.write_text(json.dumps(_eval_json()))
    out = tmp_path / "report.html"
    run = subprocess.run(
        [sys.executable, "-m", "assistant", "eval", "report", "--inputs", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "Reliability per label" in out.read_text()
