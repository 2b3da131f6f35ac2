"""The fast red-flag model (models/redflags-fast) and how ``ASSISTANT_REDFLAG_MODEL=auto`` picks between the two."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant import precision
from assistant.redflags.classifier import RedFlagClassifier, load_classifier
from assistant.settings import FAST_REDFLAG_MODEL, FULL_REDFLAG_MODEL, get_settings, load_settings
from assistant.types import Utterance

CASES_FILE = (
    Path(__file__).parent / "shipped_model_cases.jsonl"
)  # written apart from training (test_shipped_model)


def _settings(monkeypatch: pytest.MonkeyPatch, *, bf16: bool, **overrides: object):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: bf16)
    return load_settings(
        **{"redflag_model": "auto", "inference_mode": "auto", "query_inference_mode": "auto", **overrides}
    )


def test_auto_picks_the_full_model_where_bf16_units_make_it_cheap_and_the_fast_one_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    models = get_settings().models_dir
    assert _settings(monkeypatch, bf16=True).redflag_model_path() == models / FULL_REDFLAG_MODEL
    assert _settings(monkeypatch, bf16=False).redflag_model_path() == models / FAST_REDFLAG_MODEL
    # A name always wins over the CPU.
    named = _settings(monkeypatch, bf16=False, redflag_model=FULL_REDFLAG_MODEL)
    assert named.redflag_model_path() == models / FULL_REDFLAG_MODEL


def test_auto_falls_back_to_the_full_model_when_the_fast_one_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FULL_REDFLAG_MODEL).mkdir()
    settings = _settings(monkeypatch, bf16=False, models_dir=tmp_path)
    assert settings.redflag_model_path() == tmp_path / FULL_REDFLAG_MODEL
    assert "fast red-flag model is missing" in caplog.text


def test_retraining_by_default_never_overwrites_the_fast_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from assistant.cli import _train

    seen: dict[str, Path] = {}
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setenv("ASSISTANT_REDFLAG_MODEL", "auto")
    get_settings.cache_clear()
    run = SimpleNamespace(seconds=1.0, metrics={"test": {}})
    monkeypatch.setattr("assistant.redflags.recipe.run_training", lambda *a, **k: run)
    monkeypatch.setattr("assistant.redflags.recipe.save_run", lambda run, out: seen.setdefault("out", out))
    parser = argparse.ArgumentParser()
    _train.register(parser.add_subparsers())
    args = parser.parse_args(["train", "redflags", "--no-progress"])
    try:
        assert args.handler(args) == 0
    finally:
        get_settings.cache_clear()
    assert seen["out"] == get_settings().models_dir / FULL_REDFLAG_MODEL


@pytest.fixture(scope="module")
def fast() -> RedFlagClassifier:
    return load_classifier(get_settings().model_copy(update={"redflag_model": FAST_REDFLAG_MODEL}))


def test_the_fast_model_keeps_three_layers_and_the_full_models_labels(fast: RedFlagClassifier) -> None:
    assert fast.config.encoder_layers == 3 and len(fast.net.encoder.encoder.layer) == 3
    # Distilled, and the card names the teacher it records (the session-10 six-layer model).
    teacher = fast.config.training["teacher"]
    card = (get_settings().models_dir / FAST_REDFLAG_MODEL / "MODEL_CARD.md").read_text()
    assert teacher and f"distilled from `{teacher}`" in card and f"--teacher {teacher}" in card
    full = json.loads((get_settings().models_dir / FULL_REDFLAG_MODEL / "config.json").read_text())
    assert fast.config.labels == full["labels"]


def test_the_fast_model_on_the_unseen_cases(fast: RedFlagClassifier) -> None:
    cases = [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    results = fast.predict([Utterance(c["text"]) for c in cases])
    wrong = [
        (c["text"], c["flags"], r.flagged)
        for c, r in zip(cases, results, strict=True)
        if (set(c["flags"]) - set(r.flagged)) or (not c["flags"] and r.flagged)
    ]
    assert wrong == []


def test_the_shipped_models_fit_their_30_mb_budget() -> None:
    models = get_settings().models_dir
    total = sum(p.stat().st_size for p in models.rglob("*") if p.is_file())
    assert total <= 30_000_000, f"models/ holds {total / 1e6:.1f} MB; the budget is 30 MB"


def test_serve_says_which_red_flag_model_and_retrieval_depth_auto_chose_and_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from assistant.cli._serve import encoder_choice, model_choice

    assert "redflags-fast (auto: no bf16 units" in model_choice(_settings(monkeypatch, bf16=False))
    assert "redflags (auto: a GPU or bf16 units" in model_choice(_settings(monkeypatch, bf16=True))
    assert encoder_choice(_settings(monkeypatch, bf16=False, query_encoder_layers=0)).startswith(
        "4 of 6 layers (auto: no bf16 units"
    )
    assert encoder_choice(_settings(monkeypatch, bf16=True, query_encoder_layers=0)).startswith(
        "6 of 6 layers (auto"
    )
    assert encoder_choice(_settings(monkeypatch, bf16=True, query_encoder_layers=5)) == "5 of 6 layers"
    from assistant.cli._serve import precision_choice

    avx2 = precision_choice(_settings(monkeypatch, bf16=False))
    assert avx2.startswith("red flags int8 (auto: no bf16 units")
    assert "retrieval queries int8 (auto: no bf16 units" in avx2
    amx = precision_choice(_settings(monkeypatch, bf16=True))
    assert (
        amx.startswith("red flags bf16 (auto: a GPU or bf16 units") and "retrieval queries bf16 (auto" in amx
    )
    named = _settings(monkeypatch, bf16=False, inference_mode="fp32", query_inference_mode="int8")
    assert precision_choice(named) == "red flags fp32, retrieval queries int8"
    named = model_choice(_settings(monkeypatch, bf16=False, redflag_model=FULL_REDFLAG_MODEL))
    assert named.endswith(FULL_REDFLAG_MODEL)
