"""`assistant bench --workers`: the scaling run over several workers on Redis and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.cluster.servers import PostgresServer, RedisServer


@pytest.mark.cluster
@pytest.mark.slow
def test_scaling_run_spreads_calls_over_the_workers_and_reports_each_count(tmp_path: Path) -> None:
    if not (RedisServer.available() and PostgresServer.available()):
        pytest.skip("needs redis-server and postgresql (make cluster-services)")
    out = tmp_path / "scaling.json"
    argv = [
        "bench", "--fake-models", "--model-ms", "20", "--workers", "1,2",
        "--saturation-calls", "8", "--saturation-duration", "2", "--warmup", "0", "--grace", "5",
        "--json", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert [r["workers"] for r in report["rows"]] == [1, 2] and report["model_ms"] == 20
    for row in report["rows"]:
        assert row["errors"] == 0 and row["lost_chunks"] == 0 and row["throughput"] > 0
    one, two = report["rows"]
    assert one["speedup"] == 1.0 and two["speedup"] == round(two["throughput"] / one["throughput"], 2)
    # 20 ms per customer utterance, slept, in each of a worker's two red-flag threads (ASSISTANT_REDFLAG_WORKERS;
    # the second runs once 4 wait): one worker cannot pass ~200 chunks/s (half the turns are scored).
    assert one["throughput"] < 230


def test_scaling_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--workers", "1,2"]) == 2
    assert "--fake-models" in capsys.readouterr().err
    assert main(["bench", "--fake-models", "--workers", "0,x"]) == 2
    assert "--workers takes counts" in capsys.readouterr().err
    assert main(["bench", "--model-ms", "5"]) == 2
    assert "add --fake-models" in capsys.readouterr().err
