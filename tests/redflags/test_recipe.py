"""The training recipe end to end on a tiny slice of the real data: train, thresholds, test metrics, card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.redflags.classifier import RedFlagClassifier
from assistant.redflags.recipe import run_training, save_run
from assistant.redflags.training import TrainConfig
from assistant.settings import get_settings


@pytest.mark.slow
def test_recipe_trains_saves_and_describes_a_tiny_model(tmp_path: Path) -> None:
    data_dir = get_settings().data_dir
    if not (data_dir / "nlupp").exists():
        pytest.skip(f"public data sets not found at {data_dir} (set ASSISTANT_DATA_DIR)")
    run = run_training(
        data_dir,
        cfg=TrainConfig(epochs=1, batch_size=16, trainable_layers=1, encoder_layers=2),
        sources=["nlupp", "written"],
        caps={"nlupp": 40, "written": 60},
        limit=80,
        progress=False,
    )
    out = tmp_path / "model"
    save_run(run, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["rows"]) == {"train", "valid", "test"} and metrics["rows"]["train"] > 0
    assert metrics["test"], "every source's test split is scored"
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Thresholds" in card and "How to reproduce" in card
    # The card's command reproduces this recipe, and says what the shallower encoder keeps.
    assert (
        "train redflags --out models/model --head-pooling gated --encoder-layers 2 --trainable-layers 1"
        in card
    )
    assert "first 2 of 6 layers are kept" in card
    reloaded = RedFlagClassifier.load(out)
    # The run writes the model's int8 calibration too (measured on its training rows), so int8 loads.
    assert (out / "int8_calibration.safetensors").exists()
    assert RedFlagClassifier.load(out, mode="int8").precision == "int8"
    assert reloaded.config.trainable_layers == 1 and reloaded.config.encoder_layers == 2
    assert len(reloaded.net.encoder.encoder.layer) == 2
    assert set(reloaded.config.thresholds) == set(metrics["thresholds"])
