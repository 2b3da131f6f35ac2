"""The retrieval encoder cut to its first layers (``ASSISTANT_QUERY_ENCODER_LAYERS``) and how ``auto`` picks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant import precision
from assistant.errors import ModelLoadError
from assistant.knowledge.advisor import retrieval_layers
from assistant.knowledge.embedder import SentenceEmbedder
from assistant.knowledge.index import StaleIndexError, build_from_settings, load_index
from assistant.settings import Settings, load_settings


def test_auto_keeps_six_layers_with_bf16_units_and_four_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert load_settings(query_encoder_layers=0).retrieval_encoder_layers() == 6
    assert retrieval_layers(load_settings(query_encoder_layers=0)) is None  # the whole encoder
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert load_settings(query_encoder_layers=0).retrieval_encoder_layers() == 4
    assert retrieval_layers(load_settings(query_encoder_layers=0)) == 4
    assert load_settings(query_encoder_layers=5).retrieval_encoder_layers() == 5  # a number always wins


def test_the_setting_refuses_depths_the_encoder_does_not_have(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.errors import ConfigurationError

    monkeypatch.setenv("ASSISTANT_QUERY_ENCODER_LAYERS", "7")
    with pytest.raises(ConfigurationError, match="ASSISTANT_QUERY_ENCODER_LAYERS"):
        load_settings()
    with pytest.raises(ModelLoadError, match="at least one encoder layer"):
        SentenceEmbedder(layers=0)


@pytest.fixture(scope="module")
def four() -> SentenceEmbedder:
    emb = SentenceEmbedder(device="cpu", layers=4)
    emb.warm_up()
    return emb


def test_four_layers_run_four_layers_with_their_own_fingerprint(
    four: SentenceEmbedder, minilm: SentenceEmbedder
) -> None:
    assert len(four._model[0].auto_model.encoder.layer) == 4
    assert len(minilm._model[0].auto_model.encoder.layer) == 6
    assert four.fingerprint != minilm.fingerprint and len(four.fingerprint) == 64
    assert (
        SentenceEmbedder(layers=4).fingerprint == four.fingerprint
    )  # stable: an index built with it is reused
    texts = ["I want a refund for my boots", "get me your manager"]
    a, b = four.encode(texts), minilm.encode(texts)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(a, b, atol=1e-3)
    # Queries and passages stay comparable: a text is nearest to itself among the others.
    assert float(a[0] @ four.encode(["i want a refund for my boots"])[0]) > float(a[0] @ a[1])


def test_an_index_built_at_one_depth_is_stale_at_another(
    kb_settings: Settings, four: SentenceEmbedder, minilm: SentenceEmbedder
) -> None:
    build_from_settings(kb_settings, minilm)
    with pytest.raises(StaleIndexError, match="encoder differs"):
        load_index(kb_settings, four, auto_rebuild=False)
    rebuilt = load_index(kb_settings, four, auto_rebuild=True)
    assert rebuilt.vectors.shape[1] == 384 and len(rebuilt.procedures) > 0


def test_eval_retrieval_names_the_depth_it_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.cli import main

    data = tmp_path / "q.jsonl"
    data.write_text('{"query": "I want to speak to your manager", "relevant": ["escalation"]}\n')
    assert main(["eval", "retrieval", "--data", str(data), "--encoder-layers", "9"]) == 2
    assert "--encoder-layers must be 1-6" in capsys.readouterr().err
