"""Weight averaging of red-flag models ("model soups"): the arithmetic, the refusals, the command end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_training import TINY, tiny_cfg  # the tiny recipe of the training tests (same folder)

from assistant.errors import InvalidInputError, ModelLoadError
from assistant.redflags.averaging import Ingredient, average, check_compatible, parse_ingredient
from assistant.redflags.classifier import RedFlagClassifier
from assistant.redflags.training import train
from assistant.types import Utterance

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small models of one recipe and two seeds, saved and loaded as the command loads them."""
    root = tmp_path_factory.mktemp("soup")
    paths = []
    for seed in (7, 8):
        model = train(
            TINY * 3, TINY, tiny_cfg(encoder_layers=2, trainable_layers=2, seed=seed), progress=False
        )
        model.config.training = {"sources": ["written"], "seed": seed}
        model.save(
            root / f"m{seed}", metrics={"train_config": {"seed": seed, "epochs": 10}, "train_seconds": 1.0}
        )
        paths.append(root / f"m{seed}")
    return paths[0], paths[1]


def test_the_average_of_a_model_with_itself_scores_as_the_model(pair: tuple[Path, Path]) -> None:
    a = RedFlagClassifier.load(pair[0])
    soup = average([a, RedFlagClassifier.load(pair[0])], [1.0, 3.0], ["a", "a again"])
    batch = [Utterance(e.text, ("earlier turn",)) for e in TINY]
    assert torch.equal(soup.probabilities(batch), a.probabilities(batch))


def test_the_average_is_the_weighted_mean_of_the_tuned_weights(pair: tuple[Path, Path]) -> None:
    a, b = (RedFlagClassifier.load(p) for p in pair)
    soup = average([a, b], [1.0, 3.0], ["a", "b"])
    sa, sb, ss = (m.net.tuned_state_dict() for m in (a, b, soup))
    assert set(ss) == set(sa)
    for key in sa:
        assert torch.allclose(ss[key], (0.25 * sa[key] + 0.75 * sb[key]).half().float(), atol=1e-3), key
    assert any(not torch.equal(ss[k], sa[k]) for k in sa) and any(not torch.equal(ss[k], sb[k]) for k in sb)
    assert [x["share"] for x in soup.config.training["averaged"]] == [0.25, 0.75]
    assert (
        soup.config.training["sources"] == ["written"] and soup.config.training["seed"] == 7
    )  # the first's data
    assert all(torch.equal(a.net.tuned_state_dict()[k], sa[k]) for k in sa)  # the ingredients are untouched


def test_models_of_another_architecture_are_refused_by_the_setting_that_differs(
    pair: tuple[Path, Path],
) -> None:
    a, b = (RedFlagClassifier.load(p) for p in pair)
    for key, value in (("head_pooling", "lse"), ("encoder_layers", 3), ("max_context_tokens", 16)):
        with pytest.raises(ModelLoadError, match=f"{key} is"):
            check_compatible([a.config, replace(b.config, **{key: value})], ["a", "b"])
    with pytest.raises(InvalidInputError, match="at least two"):
        average([RedFlagClassifier.load(pair[0])], [1.0], ["a"])
    with pytest.raises(InvalidInputError, match="positive weight"):
        average([RedFlagClassifier.load(p) for p in pair], [1.0, 0.0], ["a", "b"])


def test_ingredients_parse_as_dir_or_dir_and_weight() -> None:
    assert parse_ingredient("var/m1") == Ingredient(Path("var/m1"), 1.0)
    assert parse_ingredient("var/m1:2.5") == Ingredient(Path("var/m1"), 2.5)
    assert parse_ingredient("runs/a:b/m1") == Ingredient(Path("runs/a:b/m1"), 1.0)  # a colon inside a path
    for bad in ("var/m1:x", "var/m1:0", "var/m1:-1"):
        with pytest.raises(InvalidInputError, match=r"WEIGHT|positive"):
            parse_ingredient(bad)


def test_the_command_writes_a_model_with_thresholds_chosen_on_validation_and_a_card(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.cli import main

    out = tmp_path / "soup"
    assert (
        main(
            [
                "train",
                "average",
                f"{pair[0]}:1",
                f"{pair[1]}:1",
                "--out",
                str(out),
                "--limit",
                "300",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    loaded = RedFlagClassifier.load(out)
    assert loaded.config.thresholds == printed["thresholds"]
    assert loaded.config.thresholds != RedFlagClassifier.load(pair[0]).config.thresholds
    metrics = json.loads((out / "metrics.json").read_text())
    assert "written" in metrics["test"] and metrics["rows"]["valid"] == 300
    card = (out / "MODEL_CARD.md").read_text()
    assert "weight average of 2 models" in card
    assert f"assistant train average --out models/soup {pair[0]}:0.5 {pair[1]}:0.5" in card
    assert main(["train", "average", str(pair[0]), str(pair[1]), "--out", str(pair[0])]) == 2
    assert "one of the models averaged" in capsys.readouterr().err
