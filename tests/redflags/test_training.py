"""Training code on a tiny slice: seeded overfit, save/reload, batch equals one at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from assistant.labels import LABELS
from assistant.redflags.classifier import RedFlagClassifier, write_int8_calibration
from assistant.redflags.data import Example
from assistant.redflags.training import TrainConfig, asr_style, train
from assistant.types import Utterance

ALL = frozenset(LABELS)


def _ex(text: str, *labels: str, known: frozenset[str] = ALL) -> Example:
    return Example(text, (), frozenset(labels), known, "unit", "train", text)


TINY = [
    _ex("you are a useless idiot", "insult"),
    _ex("get me your manager right now", "escalation_request"),
    _ex("i will sue you and report you to the regulator", "legal_threat"),
    _ex("thanks so much have a nice day"),
    _ex("i want to cancel my account and switch to another bank", "churn_risk"),
    _ex("what the fuck is going on", "profanity"),
    _ex("i know where you live and i will hurt you", "threat"),
    _ex("this is the third time i call and it is still not fixed", "frustration"),
    _ex("can you check my balance please"),
]


def tiny_cfg(**changes: Any) -> TrainConfig:
    """The recipe that overfits TINY in a few seconds, with ``changes``."""
    recipe: dict[str, Any] = {
        "epochs": 10,
        "batch_size": 9,
        "lr": 3e-4,
        "head_lr": 1e-2,
        "asr_style_prob": 0.0,
        "seed": 7,
    }
    return TrainConfig(**{**recipe, **changes})


@pytest.fixture(scope="module")
def overfit() -> RedFlagClassifier:
    return train(TINY * 3, TINY, tiny_cfg(), progress=False)


@pytest.mark.slow
def test_training_overfits_a_tiny_set(overfit: RedFlagClassifier) -> None:
    results = overfit.predict([Utterance(e.text) for e in TINY])
    for ex, res in zip(TINY, results, strict=True):
        assert set(res.flagged) == set(ex.labels), ex.text


@pytest.mark.slow
def test_training_spans_point_into_the_text(overfit: RedFlagClassifier) -> None:
    text = "you are a useless idiot"
    res = overfit.predict([Utterance(text)])[0]
    spans = res.labels["insult"].spans
    assert spans, "a flagged label must come with at least one span"
    for s in spans:
        assert text[s.start : s.end] == s.text and s.text.strip()


@pytest.mark.slow
def test_training_is_seeded(overfit: RedFlagClassifier) -> None:
    cfg = tiny_cfg()
    again = train(TINY * 3, TINY, cfg, progress=False)
    batch = [Utterance(e.text) for e in TINY]
    assert torch.allclose(again.probabilities(batch), overfit.probabilities(batch), atol=1e-5)


@pytest.mark.slow
def test_save_and_reload_give_equal_scores(overfit: RedFlagClassifier, tmp_path: Path) -> None:
    overfit.save(tmp_path / "m")
    loaded = RedFlagClassifier.load(tmp_path / "m")
    batch = [Utterance(e.text, ("earlier turn",)) for e in TINY]
    assert torch.allclose(loaded.probabilities(batch), overfit.probabilities(batch), atol=1e-6)
    assert loaded.config.thresholds == overfit.config.thresholds


def test_masked_labels_are_not_taught() -> None:
    from assistant.redflags.training import _targets

    ex = _ex("cancel my card", "churn_risk", known=frozenset({"churn_risk"}))
    y, mask = _targets([ex])
    assert mask[0].tolist() == [float(label == "churn_risk") for label in LABELS]
    assert y[0, LABELS.index("churn_risk")] == 1.0


def test_soft_targets_only_when_asked() -> None:
    from assistant.redflags.training import _targets

    ex = Example("you are thick", (), frozenset(), ALL, "unit", "train", "s", soft=(("insult", 1 / 3),))
    hard, _ = _targets([ex])
    soft, _ = _targets([ex], soft=True)
    j = LABELS.index("insult")
    assert hard[0, j] == 0.0  # the majority said no: thresholds and scores use this
    assert soft[0, j] == pytest.approx(1 / 3)


def test_asr_style_lowercases_and_drops_punctuation() -> None:
    assert asr_style("Hello, I'm REALLY upset!!") == "hello i'm really upset"


def test_repeated_sources_appear_n_times_and_others_once() -> None:
    from assistant.redflags.training import with_repeats

    rows = [_ex("a"), Example("b", (), frozenset(), ALL, "convabuse", "train", "b")]
    out = with_repeats(rows, [("convabuse", 3)])
    assert [e.text for e in out] == ["a", "b", "b", "b"]
    assert with_repeats(rows, []) == rows
    with pytest.raises(ValueError, match=">= 1"):
        with_repeats(rows, [("convabuse", 0)])


def test_train_cli_parses_repeats_and_rejects_bad_ones() -> None:
    from assistant.cli._train import _repeats
    from assistant.errors import InvalidInputError

    assert _repeats(["convabuse=3", "written=2"]) == (("convabuse", 3), ("written", 2))
    for bad in ("convabuse", "nosuch=2", "convabuse=0", "convabuse=x"):
        with pytest.raises(InvalidInputError, match="SOURCE=N"):
            _repeats([bad])


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["lse", "gated"])
def test_other_head_poolings_learn_save_and_reload(pooling: str, tmp_path: Path) -> None:
    model = train(TINY * 3, TINY, tiny_cfg(head_pooling=pooling), progress=False)
    for ex, res in zip(TINY, model.predict([Utterance(e.text) for e in TINY]), strict=True):
        assert set(res.flagged) == set(ex.labels), ex.text
    model.save(tmp_path / "m")
    loaded = RedFlagClassifier.load(tmp_path / "m")
    assert loaded.config.head_pooling == pooling and loaded.config.training["head_pooling"] == pooling
    batch = [Utterance(e.text, ("earlier turn",)) for e in TINY]
    assert torch.allclose(loaded.probabilities(batch), model.probabilities(batch), atol=1e-6)
    spans = loaded.predict([Utterance("you are a useless idiot")])[0].labels["insult"].spans
    assert spans and all(s.text.strip() for s in spans)


@pytest.mark.slow
def test_a_shallower_encoder_learns_saves_only_its_tuned_layers_and_reloads(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    cfg = tiny_cfg(encoder_layers=3, trainable_layers=2, head_pooling="gated")
    model = train(TINY * 3, TINY, cfg, progress=False)
    assert len(model.net.encoder.encoder.layer) == 3
    for ex, res in zip(TINY, model.predict([Utterance(e.text) for e in TINY]), strict=True):
        assert set(res.flagged) == set(ex.labels), ex.text
    model.save(tmp_path / "m")
    saved_layers = {
        k.split(".")[3] for k in load_file(str(tmp_path / "m" / "weights.safetensors")) if "layer." in k
    }
    assert saved_layers == {"1", "2"}  # layer 0 is the base encoder's, loaded from the package
    loaded = RedFlagClassifier.load(tmp_path / "m", torchscript=True)
    assert loaded.config.encoder_layers == 3 and len(loaded.net.encoder.encoder.layer) == 3
    batch = [Utterance(e.text, ("earlier turn",)) for e in TINY]
    assert torch.allclose(loaded.probabilities(batch), model.probabilities(batch), atol=1e-5)


@pytest.mark.slow
def test_a_student_learns_the_teachers_opinion_on_labels_its_rows_do_not_annotate(
    overfit: RedFlagClassifier, tmp_path: Path
) -> None:
    # The student's rows annotate no label at all: whatever it learns about insults comes from the teacher.
    overfit.save(tmp_path / "teacher")
    unannotated = [_ex(e.text, known=frozenset()) for e in TINY]
    cfg = tiny_cfg(
        encoder_layers=2, trainable_layers=2, teacher=str(tmp_path / "teacher"), distill_weight=1.0
    )
    student = train(unannotated * 3, [], cfg, progress=False)
    texts = [Utterance(e.text) for e in TINY]
    teacher_p, student_p = overfit.probabilities(texts), student.probabilities(texts)
    assert (student_p - teacher_p).abs().mean() < 0.1
    insult = LABELS.index("insult")
    assert student_p[0, insult] > 0.5 > student_p[3, insult]  # "useless idiot" vs "thanks so much"
    assert student.config.training["teacher"] == str(tmp_path / "teacher")


def test_distilled_targets_refuse_a_weight_outside_0_1() -> None:
    from assistant.redflags.training import distilled_targets

    with pytest.raises(ValueError, match="between 0 and 1"):
        distilled_targets(torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1, 2), 1.5)


def test_layer_counts_the_base_encoder_cannot_give_are_refused_by_name() -> None:
    from assistant.encoder import base_encoder_path
    from assistant.redflags.model import RedFlagNet

    base = str(base_encoder_path())
    with pytest.raises(ValueError, match="encoder_layers must be between 1 and 6, got 7"):
        RedFlagNet.from_base(base, n_labels=7, trainable_layers=2, encoder_layers=7)
    with pytest.raises(
        ValueError, match="trainable_layers must be between 1 and the 3 encoder layers, got 4"
    ):
        RedFlagNet.from_base(base, n_labels=7, trainable_layers=4, encoder_layers=3)


def test_a_model_with_an_unknown_head_pooling_is_refused(tmp_path: Path) -> None:
    import json
    import shutil

    from assistant.errors import ModelLoadError
    from assistant.settings import get_settings

    shipped = get_settings().redflag_model_path()
    shutil.copytree(shipped, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["head_pooling"] = "max"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="head pooling 'max'"):
        RedFlagClassifier.load(tmp_path / "m")


@pytest.mark.slow
def test_a_lexical_prior_is_learned_saved_and_used_by_the_traced_model(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    model = train(TINY * 3, TINY, tiny_cfg(head_pooling="gated", lexical_prior=True), progress=False)
    for ex, res in zip(TINY, model.predict([Utterance(e.text) for e in TINY]), strict=True):
        assert set(res.flagged) == set(ex.labels), ex.text
    prior = model.net.head.prior
    assert prior is not None and prior.weight.shape == (len(LABELS), 3)
    # "what the fuck" hits the profanity list: its weight for profanity grew from zero
    assert float(prior.weight.detach()[LABELS.index("profanity"), 0]) > 0
    model.save(tmp_path / "m")
    assert "head.prior.weight" in load_file(str(tmp_path / "m" / "weights.safetensors"))
    loaded = RedFlagClassifier.load(tmp_path / "m", torchscript=True)
    assert loaded.config.lexical_prior and loaded.torchscript
    batch = [Utterance(e.text, ("earlier turn",)) for e in TINY]
    assert torch.allclose(loaded.probabilities(batch), model.probabilities(batch), atol=1e-5)
    write_int8_calibration(tmp_path / "m", batch)
    int8 = RedFlagClassifier.load(tmp_path / "m", mode="int8", torchscript=True)  # the prior stays fp32
    assert torch.allclose(int8.probabilities(batch), model.probabilities(batch), atol=0.05)
    # the features reach the head: without the prior's weights the scores change
    with torch.no_grad():
        prior.weight.zero_()
    assert not torch.allclose(loaded.probabilities(batch), model.probabilities(batch), atol=1e-5)


def test_a_model_without_a_prior_computes_no_word_list_features() -> None:
    from assistant.redflags.model import LabelAttentionHead

    head = LabelAttentionHead(hidden=8, n_labels=3, pooling="gated").eval()
    x, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.long)
    assert head.prior is None
    assert torch.equal(head(x, mask).logits, head(x, mask, torch.zeros(2, 0)).logits)
