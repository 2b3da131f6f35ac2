"""Behaviour of the shipped red-flag model (models/redflags) on clear cases per label."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from assistant.labels import LABELS
from assistant.redflags.classifier import RedFlagClassifier, load_classifier
from assistant.redflags.data import dedup_key, load_corpus
from assistant.settings import get_settings
from assistant.types import Utterance


@pytest.fixture(scope="module")
def shipped() -> RedFlagClassifier:
    return load_classifier(get_settings())


# Cases written apart from the training data, in a file the training code never reads; test_cases_are_unseen
# proves that none of them is (after normalisation) a training or validation text of any source.
CASES_FILE = Path(__file__).parent / "shipped_model_cases.jsonl"
CASES = [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_cases_are_unseen(data_dir: Path) -> None:
    seen = {dedup_key(e.text) for e in load_corpus(data_dir, splits=["train", "valid"])}
    assert [c["text"] for c in CASES if dedup_key(c["text"]) in seen] == []
    assert {label for c in CASES for label in c["flags"]} == set(LABELS)  # every label has a case
    assert sum(1 for c in CASES if not c["flags"]) >= 5


def test_training_code_never_reads_the_cases_file() -> None:
    root = Path(__file__).resolve().parents[2] / "assistant"
    readers = [p for p in root.rglob("*.py") if CASES_FILE.name in p.read_text(encoding="utf-8")]
    assert readers == []


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:40] for c in CASES])
def test_shipped_model_on_unseen_cases(shipped: RedFlagClassifier, case: dict[str, Any]) -> None:
    result = shipped.predict([Utterance(case["text"])])[0]
    probs = {k: round(v.probability, 3) for k, v in result.labels.items()}
    if not case["flags"]:
        assert result.flagged == [], probs
        return
    assert set(case["flags"]) <= set(result.flagged), probs
    for label in case["flags"]:
        assert result.labels[label].spans, "a flag comes with the words that drove it"
    for label, word in case.get("span", {}).items():
        assert word in " ".join(s.text for s in result.labels[label].spans)


def test_shipped_model_batch_equals_one_at_a_time(shipped: RedFlagClassifier) -> None:
    texts = [c["text"] for c in CASES]
    fp32 = load_classifier(get_settings(), mode="fp32")
    # int8 scales each token alone, so a row's scores do not depend on its batch, but for fp32 noise tipping an
    # int8 rounding (at most 2.1e-3 measured, tests/test_precision.py).
    int8 = load_classifier(get_settings(), mode="int8")
    for clf, atol in ((fp32, 1e-5), (int8, 5e-3)):
        batch = clf.probabilities([Utterance(t, ("hello",)) for t in texts])
        singles = torch.cat([clf.probabilities([Utterance(t, ("hello",))]) for t in texts])
        assert torch.allclose(batch, singles, atol=atol), (clf.precision, (batch - singles).abs().max())
    # bf16 (the shipped mode on CPUs with bf16 units) sums padded rows in a different order, and keeps 8 bits
    # of mantissa: compare logits, within 0.1 (which moves p=0.5 by 0.025) or two bf16 steps at the logit's
    # magnitude, whichever is larger (measured on the session-12 model: 0.031 where |logit| < 6, 0.125 at -12.5,
    # two steps of 0.0625; such a logit is a probability of 4e-6 either way).
    batch_p = shipped.probabilities([Utterance(t, ("hello",)) for t in texts])
    singles_p = torch.cat([shipped.probabilities([Utterance(t, ("hello",))]) for t in texts])
    if shipped.precision != "bf16":
        # The shipped mode here is int8 (a CPU without bf16 units) or fp32 (a GPU): their bounds above, in
        # probabilities. In logits int8's 5e-3 can be 0.12 at p = 0.03 (capped-AVX2 Xeon), past bf16's rule.
        atol = 5e-3 if shipped.precision == "int8" else 1e-5
        assert torch.allclose(batch_p, singles_p, atol=atol), (
            shipped.precision,
            (batch_p - singles_p).abs().max(),
        )
        return
    batch, singles = _logit(batch_p), _logit(singles_p)
    step = 2.0 ** (torch.floor(torch.log2(torch.maximum(batch.abs(), singles.abs()).clamp(min=1.0))) - 7)
    allowed = torch.clamp(2 * step, min=0.1) + 1e-6
    gap = (batch - singles).abs()
    assert bool((gap <= allowed).all()), (shipped.precision, gap.max(), (gap - allowed).max())


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.logit(p.double().clamp(1e-6, 1 - 1e-6))


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t ", "\x00\xff\x1b[31m binary", "😡😡😡 🤬", "Vous êtes vraiment incompétent", "a" * 100_000],
)
def test_shipped_model_odd_input_gives_a_result(shipped: RedFlagClassifier, text: str) -> None:
    result = shipped.predict([Utterance(text)])[0]
    assert set(result.labels) == set(LABELS)
    assert all(0.0 <= s.probability <= 1.0 for s in result.labels.values())
    if len(text) > 10_000:
        assert result.truncated


def test_shipped_model_config_describes_itself(shipped: RedFlagClassifier) -> None:
    cfg = shipped.config
    assert cfg.labels == list(LABELS)
    assert set(cfg.thresholds) == set(LABELS)
    assert cfg.base_weights_sha256 and cfg.trained_with.get("torch")


def test_shipped_model_loads_fast() -> None:
    code = (
        "import time; t=time.perf_counter();"
        "from assistant.redflags.classifier import load_classifier; from assistant.settings import get_settings;"
        "t1=time.perf_counter(); load_classifier(get_settings()); print(time.perf_counter()-t1)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    # The budget is 3 s; a loaded CI machine gets slack, the benchmark reports the real figure.
    assert float(out.stdout.strip().splitlines()[-1]) < 10.0


def test_cli_analyze_prints_flags_with_spans() -> None:
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "analyze",
            "you are useless, get me your manager",
            "--no-suggestions",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    flagged = {f["label"]: f for f in data["flags"]}
    assert {"insult", "escalation_request"} <= set(flagged)
    assert flagged["insult"]["spans"]
    assert time.perf_counter() - t0 < 180


def test_two_threads_scoring_at_once_get_the_scores_one_thread_gets(shipped: RedFlagClassifier) -> None:
    # The service's red-flag batcher runs two worker threads on the one classifier (no lock around passes).
    import threading

    by_first_flag: dict[str, list[Utterance]] = {}
    for case in CASES:
        by_first_flag.setdefault((case["flags"] or ["none"])[0], []).append(Utterance(case["text"]))
    batches = list(by_first_flag.values())
    alone = [[r.labels[k].probability for r in shipped.predict(b) for k in LABELS] for b in batches]
    together: dict[int, list[list[float]]] = {0: [], 1: []}

    def score(worker: int) -> None:
        for _ in range(3):
            for b in batches:
                together[worker].append([r.labels[k].probability for r in shipped.predict(b) for k in LABELS])

    threads = [threading.Thread(target=score, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for w in (0, 1):
        assert together[w] == alone * 3
