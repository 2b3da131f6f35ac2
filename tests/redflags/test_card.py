"""The model card names the model's own folder, its recipe and its teacher as recorded."""

from pathlib import Path

from assistant.redflags.card import _train_command, write_model_card
from assistant.redflags.classifier import RedFlagConfig


def test_the_reproduce_line_names_every_non_default_option_and_the_teacher_path_as_given() -> None:
    tc = {
        "head_pooling": "gated",
        "encoder_layers": 3,
        "trainable_layers": 2,
        "teacher": "var/redflags-v13",
        "distill_weight": 0.5,
    }
    line = _train_command(Path("models/redflags-fast"), tc)
    assert line == (
        ".venv/bin/assistant train redflags --out models/redflags-fast --head-pooling gated "
        "--encoder-layers 3 --trainable-layers 2 --teacher var/redflags-v13 --distill-weight 0.5"
    )
    plain = _train_command(Path("models/redflags"), {"head_pooling": "gated", "trainable_layers": 6})
    assert "--teacher" not in plain and "--encoder-layers" not in plain and "--trainable-layers" not in plain


def test_the_card_carries_its_folder_the_teacher_and_the_extra_sections(tmp_path: Path) -> None:
    out = tmp_path / "redflags-x"
    out.mkdir()
    cfg = RedFlagConfig(trainable_layers=2, encoder_layers=3, head_pooling="gated")
    metrics = {
        "train_config": {
            "head_pooling": "gated",
            "encoder_layers": 3,
            "trainable_layers": 2,
            "teacher": "var/redflags-v13",
            "distill_weight": 0.25,
            "epochs": 1,
        }
    }
    text = write_model_card(out, cfg, metrics, extra="## Hand-written section\n").read_text()
    assert text.startswith("# Red-flag classifier (models/redflags-x)")
    assert "distilled from `var/redflags-v13` (targets: 0.75 x label + 0.25 x the teacher's" in text
    assert "first 3 of 6 layers" in text
    assert "## Hand-written section" in text
    assert "# first the teacher at var/redflags-v13" in text.split("## How to reproduce")[1]
