"""`assistant bench --capacity`: the search for the calls one worker carries, and the command end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import main
from assistant.eval.capacity import PLAN_SHARE, find_capacity, format_capacity, misses

GOOD = {"p95_ms": 40.0, "p99_ms": 90.0, "lost_events": 0, "flags_lost": 0, "errors": 0, "shed": {}}


def _worker(limit: int, tried: list[int]) -> Any:
    """A stand-in load: meets the targets up to ``limit`` calls, misses on p95 beyond."""

    async def run_load(n: int) -> dict[str, Any]:
        tried.append(n)
        return GOOD if n <= limit else {**GOOD, "p95_ms": 900.0}

    return run_load


@pytest.mark.parametrize("limit", [1, 37, 100, 333, 640, 1999])
def test_the_search_finds_the_largest_load_within_the_resolution(limit: int) -> None:
    tried: list[int] = []
    result = asyncio.run(find_capacity(_worker(limit, tried), start=100, resolution=10, max_calls=2000))
    if limit < 10:  # below the resolution: halving stops before it reaches a load that meets them
        assert result.calls == 0 and result.plan == 0
        return
    assert limit - 10 <= result.calls <= limit
    assert result.plan == int(result.calls * PLAN_SHARE)
    assert [p.calls for p in result.probes] == tried and len(tried) == len(set(tried))  # no load tried twice
    assert all(p.ok == (p.calls <= limit) for p in result.probes)
    assert len(tried) <= 16


def test_the_search_stops_at_max_calls_when_every_load_meets_the_targets() -> None:
    tried: list[int] = []
    result = asyncio.run(find_capacity(_worker(10_000, tried), start=100, resolution=25, max_calls=400))
    assert result.calls == 400 and tried == [100, 150, 225, 338, 400]


def test_the_search_refuses_a_resolution_above_the_first_load() -> None:
    with pytest.raises(ValueError, match="resolution"):
        asyncio.run(find_capacity(_worker(10, []), start=10, resolution=50, max_calls=100))


def test_misses_names_every_reason() -> None:
    assert misses(GOOD) == []
    bad = {**GOOD, "p95_ms": 151.0, "p99_ms": None, "lost_events": 2, "flags_lost": 1, "refused_calls": 3,
           "shed": {"suggestions": 4, "step_tracking": 1}}  # fmt: skip
    why = misses(bad)
    assert why == ["p95 151.0 ms > 150", "p99 None ms > 300", "2 events lost", "1 red-flag results lost",
                   "3 calls refused", "5 shed"]  # fmt: skip


def test_the_report_says_the_capacity_and_the_plan() -> None:
    result = asyncio.run(find_capacity(_worker(333, []), start=100, resolution=10, max_calls=2000)).to_dict()
    text = format_capacity(result)
    assert f"capacity: {result['calls']} calls per worker" in text
    assert f"ASSISTANT_MAX_LIVE_CALLS={result['plan']}" in text
    assert "misses: p95 900.0 ms > 150" in text
    none = format_capacity({"calls": 0, "plan": 0, "probes": []})
    assert "no load tried met the targets" in none


def test_capacity_end_to_end_a_worker_that_takes_five_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The started server reads the environment: a worker that takes 5 live calls refuses the sixth, which the
    # search counts as a miss, so the capacity is known in advance.
    monkeypatch.setenv("ASSISTANT_MAX_LIVE_CALLS", "5")
    out = tmp_path / "capacity.json"
    argv = [
        "bench", "--capacity", "--fake-models", "--calls", "2", "--max-calls", "8", "--resolution", "1",
        "--duration", "1", "--rate-s", "0.5", "--warmup", "0", "--grace", "3", "--json", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["calls"] == 5 and report["plan"] == 3
    tried = {p["calls"]: p for p in report["probes"]}
    assert tried[5]["ok"] and not tried[6]["ok"]
    assert any("calls refused" in why for why in tried[6]["why_not"])
    assert report["machine"]["cores_logical"] >= 1 and "cpu_flags" in report["machine"]
    assert "capacity: 5 calls per worker" in capsys.readouterr().out


def test_capacity_refuses_bad_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--capacity", "--calls", "100", "--max-calls", "50"]) == 2
    assert "--max-calls >= --calls" in capsys.readouterr().err
    assert main(["bench", "--capacity", "--calls", "10", "--resolution", "20"]) == 2
    assert "must not exceed --calls" in capsys.readouterr().err
