"""`assistant bench` end to end against the service with the fake models, over real WebSockets (a few s)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.cli import main


def test_bench_fake_models_writes_report_with_keys_and_no_lost_events(tmp_path: Path) -> None:
    out, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = [
        "bench", "--fake-models", "--calls", "6", "--duration", "2", "--rate-s", "0.5",
        "--saturation-calls", "4", "--saturation-duration", "1", "--single-duration", "1",
        "--warmup", "0", "--grace", "3", "--json", str(out), "--plot", str(plot),
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    for key in ("p50_ms", "p95_ms", "p99_ms", "throughput", "errors", "lost_events", "speedup_vs_naive",
                "rss_mb_max", "cpu_percent_mean", "saturation_throughput", "config", "machine", "naive"):  # fmt: skip
        assert key in report, key
    for run in (report, report["naive"]):
        assert run["errors"] == 0 and run["lost_events"] == 0
        assert run["chunks_sent"] == run["chunks_processed"] > 0
        assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]
        assert run["saturation_throughput"] > 0 and run["rss_mb_max"] > 0
        assert len(run["latencies_ms"]) == run["chunks_processed"]
        assert run["server_cpu_ms_per_chunk"] > 0 and run["client_cpu_ms_per_chunk"] > 0
    assert report["speedup_vs_naive"] > 0
    assert report["machine"]["cores_logical"] >= 1 and report["config"]["calls"] == 6
    assert plot.stat().st_size > 1000


def test_bench_refuses_bad_input_with_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--calls", "0"]) == 2
    assert "--calls must be >= 1" in capsys.readouterr().err
    assert main(["bench", "--url", "http://x"]) == 2


def test_bench_cuda_without_gpu_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["bench", "--device", "cuda", "--calls", "1"]) == 2
    assert "torch sees no GPU" in capsys.readouterr().err


def test_bench_counts_the_calls_a_full_worker_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The started server reads the environment: a worker that takes 3 live calls, offered 5.
    monkeypatch.setenv("ASSISTANT_MAX_LIVE_CALLS", "3")
    out = tmp_path / "bench.json"
    argv = [
        "bench", "--fake-models", "--no-naive", "--calls", "5", "--duration", "2", "--rate-s", "0.5",
        "--saturation-calls", "2", "--saturation-duration", "1", "--single-duration", "0",
        "--warmup", "0", "--grace", "3", "--json", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["refused_calls"] == 2 and report["errors"] == 0 and report["lost_events"] == 0
    assert report["chunks_sent"] == report["chunks_processed"] > 0  # the three calls it took went through
    assert report["targets"]["every call taken"] is False
