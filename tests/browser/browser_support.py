"""Helpers of the browser tests (a module with a unique name: ``conftest`` is not importable reliably)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from live_server import TRANSCRIPTS, LiveServer, make_settings

from assistant.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
__all__ = ["ARTIFACTS", "CHROMIUM", "CHROMIUM_ARGS", "TRANSCRIPTS", "BrowserServer", "browser_settings"]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


BrowserServer = LiveServer


def browser_settings(var_dir: Path, **overrides: object) -> Settings:
    return make_settings(var_dir, db_name="browser.db", **overrides)


AUTH_SECRET = (
    "browser-test-secret-0123456789abcdef"  # a throwaway secret for the auth test server, never a real one
)

# A small evaluation report in the format of `assistant eval redflags --json`, for the trainer page.
FAKE_REPORT: dict[str, Any] = {
    "n": 120,
    "names": ["insult", "profanity", "abusive"],
    "primary_metric": "macro_f1",
    "per_label": {
        "insult": {"precision": 0.8, "recall": 0.75, "f1": 0.774, "support": 40, "n": 120, "roc_auc": 0.91},
        "profanity": {
            "precision": 0.9,
            "recall": 0.85,
            "f1": 0.874,
            "support": 20,
            "n": 120,
            "roc_auc": 0.95,
        },
        "abusive": {"precision": 0.85, "recall": 0.8, "f1": 0.824, "support": 50, "n": 120, "roc_auc": None},
    },
    "macro_f1": 0.824,
    "baselines": {
        "tfidf-logreg": {
            "per_label": {
                "insult": {
                    "precision": 0.7,
                    "recall": 0.6,
                    "f1": 0.646,
                    "support": 40,
                    "n": 120,
                    "roc_auc": 0.8,
                },
                "profanity": {
                    "precision": 0.8,
                    "recall": 0.7,
                    "f1": 0.747,
                    "support": 20,
                    "n": 120,
                    "roc_auc": 0.85,
                },
                "abusive": {
                    "precision": 0.75,
                    "recall": 0.7,
                    "f1": 0.724,
                    "support": 50,
                    "n": 120,
                    "roc_auc": 0.8,
                },
            },
            "macro_f1": 0.706,
        }
    },
    "device": "cpu",
    "mode": "fp32",
    "latency": {
        "single_p50_ms": 4.2,
        "single_p95_ms": 6.8,
        "batch_size": 64,
        "batch_throughput_per_s": 910.0,
    },
}
