"""`assistant eval redflags`: the pure evaluate() and the CLI on a tiny file, with and without baselines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.eval.baselines import ProfanityCheck, TfidfLogReg
from assistant.eval.redflags import evaluate, names_in
from assistant.labels import LABELS
from assistant.redflags.data import Example

ROWS = [
    {"text": "you useless idiot", "labels": ["insult"]},
    {"text": "get me your manager now", "labels": ["escalation_request"]},
    {"text": "what the fuck is this", "labels": ["abusive"]},
    {"text": "thanks have a nice day", "labels": []},
    {"text": "i'm going to sue you", "context": ["you were charged twice"], "labels": ["legal_threat"]},
]


class _Perfect:
    """A scorer that knows the answer: every figure must come out 1.0."""

    name = "perfect"

    def score(self, texts, contexts):  # type: ignore[no-untyped-def]
        truth = {r["text"]: r["labels"] for r in ROWS}
        out = {}
        for name in (*LABELS, "abusive", "escalation"):
            y = np.array(
                [name in truth[t] or (name == "abusive" and "insult" in truth[t]) for t in texts], dtype=float
            )
            out[name] = (y, y >= 0.5)
        return out


def test_evaluate_scores_exactly_the_names_in_the_file() -> None:
    labels = [r["labels"] for r in ROWS]
    assert names_in(labels) == ["insult", "escalation_request", "legal_threat", "abusive"]
    report = evaluate([r["text"] for r in ROWS], [r.get("context", []) for r in ROWS], labels, _Perfect(), [])
    assert report["primary_metric"] == "macro_f1" and report["macro_f1"] == 1.0
    assert report["per_label"]["abusive"]["support"] == 2  # the insult row counts for its group
    assert set(report["per_label"]) == set(report["names"])


def test_baselines_run_beside_the_model_on_the_same_rows() -> None:
    all_known = frozenset(LABELS)
    train = [
        Example(
            r["text"], (), frozenset(x for x in r["labels"] if x in LABELS), all_known, "t", "train", str(i)
        )
        for i, r in enumerate(ROWS * 3)
    ]
    tfidf = TfidfLogReg().fit(train, [])
    report = evaluate(
        [r["text"] for r in ROWS],
        [[] for _ in ROWS],
        [r["labels"] for r in ROWS],
        _Perfect(),
        [ProfanityCheck(), tfidf],
    )
    assert set(report["baselines"]) == {"profanity_check", "tfidf_logreg"}
    assert report["baselines"]["profanity_check"]["covers"] == ["abusive"]
    assert "insult" in report["baselines"]["tfidf_logreg"]["per_label"]


@pytest.mark.slow
def test_cli_eval_redflags_writes_the_contract_json(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "eval",
            "redflags",
            "--data",
            str(data),
            "--json",
            str(out),
            "--no-baselines",
            "--no-latency",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert {"per_label", "macro_f1", "baselines"} <= set(report)
    for m in report["per_label"].values():
        assert {"precision", "recall", "f1", "support", "roc_auc"} <= set(m)
    assert "macro F1" in run.stdout


def test_cli_eval_redflags_bad_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "labels": ["not_a_label"]}\n')
    run = subprocess.run(
        [sys.executable, "-m", "assistant", "eval", "redflags", "--data", str(bad), "--no-baselines"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0
    assert run.stderr.strip().startswith("error:") and len(run.stderr.strip().splitlines()) == 1
