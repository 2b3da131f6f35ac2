"""`assistant calibrate`: int8 calibrations measured on training rows, as a user runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant import precision
from assistant.cli import main
from assistant.redflags.classifier import RedFlagClassifier
from assistant.settings import get_settings


def _data_dir() -> Path:
    data_dir = get_settings().data_dir
    if not (data_dir / "nlupp").exists():
        pytest.skip(f"public data sets not found at {data_dir} (set ASSISTANT_DATA_DIR)")
    return data_dir


@pytest.mark.slow
def test_calibrate_redflags_writes_what_int8_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = _data_dir()
    model = tmp_path / "m"
    shutil.copytree(get_settings().models_dir / "redflags-fast", model)
    (model / precision.CALIBRATION_FILE).unlink()
    args = ["calibrate", "redflags", "--model", str(model), "--data-dir", str(data_dir), "--rows", "40"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == {"out": str(model / precision.CALIBRATION_FILE), "rows": 40}
    clf = RedFlagClassifier.load(model, mode="int8")
    assert clf.precision == "int8"
    assert main([*args[:-1], "0"]) == 2  # --rows 0
    assert "--rows must be positive" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrate_retrieval_covers_all_six_layers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = _data_dir()
    out = tmp_path / "retrieval.safetensors"
    args = ["calibrate", "retrieval", "--data-dir", str(data_dir), "--rows", "30", "--out", str(out)]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 30
    from assistant.knowledge.embedder import SentenceEmbedder

    emb = SentenceEmbedder(layers=4)  # the shallower query encoder uses the first four layers' scales
    calibration = precision.Int8Calibration.load(out, weights=emb.weights_digest())
    assert len(calibration.maxima) == 6 * 6  # q, k, v, attention out, FFN up and down, per layer
    assert all(bool((v > 0).all()) for v in calibration.maxima.values())
    emb.set_query_precision("int8", calibration=out)
    assert emb.query_precision == "int8"
