"""The query map: retrieval query vectors from the red-flag pass (assistant.redflags.querymap)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from assistant.cli import main
from assistant.digest import file_sha256
from assistant.errors import ModelLoadError
from assistant.knowledge.embedder import SentenceEmbedder
from assistant.redflags.classifier import RedFlagClassifier, load_classifier
from assistant.redflags.querymap import (
    QUERY_MAP_FILE,
    QueryMap,
    choose_query_map,
    fit_query_map,
    load_query_map,
    mean_cosine,
)
from assistant.settings import PROJECT_ROOT, Settings, get_settings
from assistant.types import Utterance

FAST = PROJECT_ROOT / "models" / "redflags-fast"
LINES = [
    Utterance("you are a useless idiot", ("hi how can I help",)),
    Utterance("I want to cancel my account"),
    Utterance("get me your manager now or I call my lawyer", ("my bill is wrong", "let me check")),
    Utterance("ok thanks"),
]


def _toy(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    w = np.random.default_rng(99).normal(size=(8, 5)).astype(np.float32)  # one target map for every draw
    y = x @ w + rng.normal(scale=0.05, size=(n, 5)).astype(np.float32)
    return x, y / np.linalg.norm(y, axis=1, keepdims=True)


def test_a_fitted_map_reproduces_a_linear_target_and_keeps_the_best_ridge() -> None:
    train, valid = _toy(), _toy(seed=1)
    m = choose_query_map(train, valid, target_fingerprint="enc", target_layers=4, ridges=(1e6, 0.1))
    assert m.report["ridge"] == 0.1 and m.report["valid_cosine"] > 0.99
    assert set(m.report["tried"]) == {"1000000.0", "0.1"}
    assert mean_cosine(m.apply_numpy(valid[0]), valid[1]) == pytest.approx(m.report["valid_cosine"], abs=1e-4)
    v = m.apply(torch.from_numpy(valid[0]))
    assert v.dtype == np.float32 and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_fitting_refuses_mismatched_rows() -> None:
    x, y = _toy()
    with pytest.raises(ValueError, match="as many feature rows"):
        fit_query_map(x, y[:-1], ridge=1.0, target_fingerprint="e", target_layers=4)


def test_a_saved_map_loads_only_for_its_weights_and_retrieval_encoder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"the model's weights")
    m = fit_query_map(
        *_toy(),
        ridge=1.0,
        target_fingerprint="enc-4",
        target_layers=4,
        report={"rows": 3},
        model_sha256=file_sha256(weights),
    )
    path = m.save(tmp_path / QUERY_MAP_FILE)
    back = QueryMap.load(path)
    assert (back.target_fingerprint, back.target_layers, back.report) == (
        "enc-4",
        4,
        {"rows": 3, "ridge": 1.0},
    )
    x = _toy(seed=2)[0]
    assert mean_cosine(back.apply_numpy(x), m.apply_numpy(x)) > 0.9999  # stored as float16
    assert load_query_map(tmp_path, "enc-4", n_features=8, weights_file=weights) is not None
    assert load_query_map(tmp_path, "another encoder", n_features=8, weights_file=weights) is None
    assert load_query_map(tmp_path, None, n_features=8, weights_file=weights) is None
    with pytest.raises(ModelLoadError, match="reads 8 features"):
        load_query_map(tmp_path, "enc-4", n_features=384, weights_file=weights)
    weights.write_bytes(
        b"retrained weights"
    )  # a retrained model: the old map is not used, and the log says so
    assert load_query_map(tmp_path, "enc-4", n_features=8, weights_file=weights) is None
    assert "write it again with `assistant train query-map" in caplog.text


def test_a_damaged_map_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / QUERY_MAP_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="assistant train query-map"):
        QueryMap.load(tmp_path / QUERY_MAP_FILE)


@pytest.fixture(scope="module")
def space() -> str:
    return SentenceEmbedder(layers=4).fingerprint


@pytest.mark.parametrize(("mode", "torchscript"), [("fp32", False), ("int8", True)])
def test_the_shipped_fast_model_returns_query_vectors_without_changing_its_scores(
    space: str, mode: str, torchscript: bool
) -> None:
    plain = RedFlagClassifier.load(FAST, mode=mode, torchscript=torchscript)
    mapped = RedFlagClassifier.load(FAST, mode=mode, torchscript=torchscript, query_space=space)
    assert plain.query_space is None and mapped.query_space == space
    if torchscript:  # the group loop stays in TorchScript with the third output (classifier._Groups)
        assert mapped._groups is not None and plain._groups is not None
    assert torch.equal(plain.probabilities(LINES), mapped.probabilities(LINES))
    results = mapped.predict(LINES)
    vectors = np.stack([r.query_vector for r in results])
    assert vectors.shape == (len(LINES), 384)
    assert all(r.query_vector is None for r in plain.predict(LINES))
    assert "query_vector" not in results[0].to_dict()
    # Close to the retrieval encoder's own query vectors (held-out mean cosine in the model card).
    encoder = SentenceEmbedder(layers=4)
    encoder.warm_up()
    own = encoder.encode([u.text for u in LINES])
    assert float((vectors * own).sum(axis=1).mean()) > 0.85
    # One row alone or in a batch: the same vector (padding does not leak into the mean).
    alone = mapped.query_vectors(LINES[:1])[0]
    assert float(alone @ vectors[0]) > 0.999


def test_a_map_for_another_retrieval_encoder_is_not_used(space: str) -> None:
    six = SentenceEmbedder().fingerprint  # all six layers: the shipped fast model's map is for four
    assert six != space
    clf = RedFlagClassifier.load(FAST, mode="fp32", query_space=six)
    assert clf.query_map is None and clf.predict(LINES[:1])[0].query_vector is None
    with pytest.raises(ModelLoadError, match="without a query map"):
        clf.query_vectors(LINES[:1])


def test_shared_pass_on_refuses_a_model_without_a_matching_map(tmp_path: Path) -> None:
    settings = Settings(redflag_model=str(FAST), query_encoder_layers=6, shared_query_pass="on")
    with pytest.raises(ModelLoadError, match="assistant train query-map"):
        load_classifier(settings)
    assert load_classifier(settings.model_copy(update={"shared_query_pass": "auto"})).query_map is None
    four = settings.model_copy(update={"query_encoder_layers": 4})
    assert load_classifier(four).query_map is not None
    assert load_classifier(four.model_copy(update={"shared_query_pass": "off"})).query_map is None


def test_train_query_map_writes_a_map_the_model_then_uses(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], space: str
) -> None:
    model = tmp_path / "fast"
    shutil.copytree(FAST, model)
    (model / QUERY_MAP_FILE).unlink()
    args = ["train", "query-map", "--model", str(model), "--layers", "4", "--data-dir", str(data_dir)]
    assert main([*args, "--rows", "60", "--valid-rows", "30", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["train_rows"] == 60 and report["valid_rows"] == 30 and report["layers"] == 4
    assert -1.0 <= report["valid_cosine"] <= 1.0
    clf = RedFlagClassifier.load(model, mode="fp32", query_space=space)
    assert clf.query_map is not None and clf.query_map.report["train_rows"] == 60


def test_eval_retrieval_measures_the_shared_pass_and_says_so(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text(
        '{"query": "get me your manager right now", "relevant": ["escalation-to-supervisor"]}\n'
        '{"query": "you useless idiot", "relevant": ["abusive-caller"]}\n'
    )
    out = tmp_path / "r.json"
    monkeypatch.setenv("ASSISTANT_REDFLAG_MODEL", str(FAST))
    monkeypatch.setenv("ASSISTANT_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()  # the CLI reads the process-wide settings: read them again with these
    request.addfinalizer(get_settings.cache_clear)
    args = ["eval", "retrieval", "--data", str(data), "--encoder-layers", "4", "--mode", "fp32"]
    assert main([*args, "--shared-pass", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["queries"] == "red-flag pass" and report["encoder_layers"] == 4
    assert report["recall@3"] == 1.0  # two plain cases: both procedures in the top three
    assert "queries from the red-flag pass" in capsys.readouterr().out
    # No map for six layers: a clear error, not a silent fallback to the encoder's own pass.
    assert main([*args[:-4], "--encoder-layers", "6", "--shared-pass"]) == 2
    assert "no query map for this retrieval encoder" in capsys.readouterr().err


def test_serve_says_where_queries_come_from_as_the_classifier_decides(tmp_path: Path) -> None:
    from assistant.cli._serve import query_pass_choice

    four = Settings(redflag_model=str(FAST), query_encoder_layers=4)
    assert query_pass_choice(four).startswith("from the red-flag pass")
    assert "first 4 layers" in query_pass_choice(four.model_copy(update={"query_encoder_layers": 6}))
    assert "=off" in query_pass_choice(four.model_copy(update={"shared_query_pass": "off"}))
    stale = tmp_path / "fast"
    shutil.copytree(FAST, stale)
    (stale / "weights.safetensors").write_bytes((stale / "weights.safetensors").read_bytes() + b" ")
    line = query_pass_choice(four.model_copy(update={"redflag_model": str(stale)}))
    assert line.startswith("their own encoder pass") and "other red-flag weights" in line
