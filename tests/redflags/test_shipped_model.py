"""Behaviour of the shipped red-flag model (models/redflags) on clear cases per label."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from assistant.labels import LABELS
from assistant.redflags.classifier import RedFlagClassifier, load_classifier
from assistant.settings import get_settings
from assistant.types import Utterance


@pytest.fixture(scope="module")
def shipped() -> RedFlagClassifier:
    return load_classifier(get_settings())


CLEAR = {
    "profanity": ["what the fuck is going on with my bill", "this shit never works"],
    "insult": ["you are a useless idiot", "you're the dumbest person i've ever spoken to"],
    "threat": ["i know where your office is and i'm coming down there to hurt you", "i will kill you"],
    "escalation_request": ["get me your manager right now", "i want to speak to a supervisor please"],
    "legal_threat": ["i'm going to sue your company", "i'll be reporting you to the ombudsman"],
    "churn_risk": ["i want to cancel my account today", "i'm switching to another provider"],
    "frustration": [
        "this is the third time i've called about this and it's still not fixed",
        "i'm so fed up with this nobody ever helps me",
    ],
}
CALM = [
    "hi good morning i'm calling about my bill",
    "can you transfer the money to my savings account",
    "thank you so much you've been really helpful",
    "my account number is four five six",
    "yes that's correct",
]


@pytest.mark.parametrize(("label", "text"), [(k, t) for k, texts in CLEAR.items() for t in texts])
def test_shipped_model_flags_clear_cases(shipped: RedFlagClassifier, label: str, text: str) -> None:
    result = shipped.predict([Utterance(text)])[0]
    assert label in result.flagged, {k: v.probability for k, v in result.labels.items()}
    assert result.labels[label].spans, "a flag comes with the words that drove it"


@pytest.mark.parametrize("text", CALM)
def test_shipped_model_stays_calm_on_ordinary_talk(shipped: RedFlagClassifier, text: str) -> None:
    result = shipped.predict([Utterance(text)])[0]
    assert result.flagged == [], {k: v.probability for k, v in result.labels.items()}


def test_shipped_model_done_when_example(shipped: RedFlagClassifier) -> None:
    text = "you are useless, get me your manager"
    result = shipped.predict([Utterance(text)])[0]
    assert {"insult", "escalation_request"} <= set(result.flagged)
    words = " ".join(s.text for s in result.labels["escalation_request"].spans)
    assert "manager" in words


def test_shipped_model_batch_equals_one_at_a_time(shipped: RedFlagClassifier) -> None:
    texts = [t for ts in CLEAR.values() for t in ts] + CALM
    fp32 = load_classifier(get_settings(), mode="fp32")
    # int8 runs rows one at a time (its activation scale is per batch), so it must match exactly.
    int8 = load_classifier(get_settings(), mode="int8")
    # bf16 sums padded rows in a different order: allow one bf16 step near 1.0 (2**-8 = 0.0039).
    for clf, atol in ((fp32, 1e-5), (int8, 1e-5), (shipped, 5e-3)):
        batch = clf.probabilities([Utterance(t, ("hello",)) for t in texts])
        singles = torch.cat([clf.probabilities([Utterance(t, ("hello",))]) for t in texts])
        assert torch.allclose(batch, singles, atol=atol), (clf.precision, (batch - singles).abs().max())


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

    batches = [[Utterance(t) for t in texts] for texts in CLEAR.values()] + [[Utterance(t) for t in CALM]]
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
