"""The benchmark's pure measurement: percentiles, lost and doubled events, the summary and the targets."""

from __future__ import annotations

import math

import pytest

from assistant.eval.bench import (
    CallRecord,
    account,
    check_targets,
    merge_config,
    parse_shed,
    percentile,
    speedup,
    summarize,
)


def test_percentile_interpolates_like_numpy() -> None:
    xs = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(xs, 50) == 3.0
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 5.0
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def _record(call_id: str, sent: dict[int, float], done: dict[int, float]) -> CallRecord:
    r = CallRecord(call_id)
    r.sent.update(sent)
    for eid, (seq, t) in enumerate(done.items(), start=1):
        r.on_event({"type": "processed", "seq": seq, "eid": eid}, t)
    return r


def test_account_matches_sends_with_processed_events_and_counts_lost_chunks() -> None:
    a = _record("a", {1: 0.0, 2: 1.0, 3: 2.0}, {1: 0.010, 2: 1.050})  # seq 3 never processed: lost
    b = _record("b", {1: 0.5}, {1: 0.520})
    acc = account([a, b], t0=0.0)
    assert acc.sent == 4 and acc.processed == 3 and acc.lost == 1 and acc.doubled == 0
    assert sorted(acc.latencies_ms) == pytest.approx([10.0, 20.0, 50.0])
    assert acc.sent_at_s == sorted(acc.sent_at_s)  # in send order, for the plot over time


def test_account_counts_doubled_events_and_errors() -> None:
    r = CallRecord("c")
    r.sent[1] = 0.0
    r.on_event({"type": "transcript", "seq": 1, "eid": 1}, 0.001)
    r.on_event({"type": "transcript", "seq": 1, "eid": 1}, 0.002)  # the same eid again: doubled
    r.on_event({"type": "processed", "seq": 1, "eid": 2}, 0.003)
    r.on_event({"type": "processed", "seq": 1, "eid": 3}, 0.004)  # a second processed for seq 1: doubled
    r.on_event({"type": "error", "reason": "analysis_failed", "eid": 4}, 0.005)
    acc = account([r], t0=0.0)
    assert acc.doubled == 2 and acc.errors == 1 and acc.lost == 0
    assert acc.latencies_ms == [pytest.approx(3.0)]  # the first processed counts


def test_summarize_reports_throughput_percentiles_and_lost_events() -> None:
    r = _record("a", {i: i * 0.1 for i in range(1, 11)}, {i: i * 0.1 + 0.005 * i for i in range(1, 10)})
    s = summarize(account([r], t0=0.0), elapsed_s=2.0)
    assert s["chunks_sent"] == 10 and s["chunks_processed"] == 9
    assert s["throughput"] == 4.5
    assert s["lost_events"] == 1 and s["errors"] == 0
    assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]


def test_closed_loop_throughput_counts_only_chunks_done_while_the_load_ran() -> None:
    r = _record("a", {1: 0.0, 2: 0.5}, {1: 0.4, 2: 1.5})
    acc = account([r], t0=0.0, t_end=1.0)
    assert summarize(acc, elapsed_s=1.0, closed_loop=True)["throughput"] == 1.0
    assert summarize(acc, elapsed_s=1.0)["throughput"] == 2.0


def test_targets_and_speedup() -> None:
    good = {"p95_ms": 90.0, "p99_ms": 200.0, "errors": 0, "lost_events": 0, "rss_mb_max": 900.0}
    assert all(check_targets(good).values())
    bad = {**good, "p99_ms": math.inf, "lost_events": 3}
    checks = check_targets(bad)
    assert not checks["p99<=300ms"] and not checks["no lost events"] and checks["p95<=150ms"]
    key = "saturation_throughput"
    assert speedup({key: 300.0}, {key: 100.0}, key=key) == 3.0
    assert speedup({key: 300.0}, {key: 0}, key=key) is None


def test_the_speedup_compares_equal_work_chunks_with_skipped_suggestions_do_not_count() -> None:
    """A service that skips suggestions to keep up processes more chunks per second for less work: the speedup
    counts only the chunks each side served with every feature."""
    full = _record("a", {1: 0.0, 2: 0.1, 3: 0.2, 4: 0.3}, {1: 0.05, 2: 0.15, 3: 0.25, 4: 0.35})
    skipping = CallRecord("b")
    skipping.sent.update({1: 0.0, 2: 0.1, 3: 0.2, 4: 0.3})
    for seq, shed in ((1, None), (2, ["suggestions"]), (3, ["suggestions"]), (4, [])):
        event = {"type": "processed", "seq": seq, "eid": seq, **({"shed": shed} if shed is not None else {})}
        skipping.on_event(event, 0.05 + 0.1 * (seq - 1))
    assert skipping.partial == {2, 3}
    sat_full = summarize(account([full], t0=0.0, t_end=1.0), elapsed_s=1.0, closed_loop=True)
    sat_skip = summarize(account([skipping], t0=0.0, t_end=1.0), elapsed_s=1.0, closed_loop=True)
    assert sat_skip["throughput"] == 4.0 and sat_skip["complete_throughput"] == 2.0
    assert sat_skip["chunks_partial"] == 2 and sat_full["chunks_partial"] == 0
    optimized, naive = merge_config({}, sat_full, None), merge_config({}, sat_skip, None)
    assert speedup(optimized, naive) == 2.0
    assert speedup(optimized, naive, key="saturation_throughput") == 1.0


def test_red_flag_latency_counts_customer_chunks_to_their_flag_or_scored_event() -> None:
    r = CallRecord("a")
    r.sent.update({1: 0.0, 2: 1.0, 3: 2.0, 4: 3.0})
    r.customer.update({1, 3, 4})  # seq 2 is an agent turn: no red-flag result expected
    r.on_event({"type": "flag", "seq": 1, "eid": 1, "labels": ["insult"]}, 0.020)
    r.on_event({"type": "scored", "seq": 3, "eid": 2, "labels": []}, 2.008)
    r.on_event({"type": "scored", "seq": 3, "eid": 3, "labels": []}, 2.050)  # only the first counts
    r.on_event({"type": "degraded", "eid": 4, "features": ["suggestions"]}, 2.1)
    acc = account([r], t0=0.0)
    assert acc.flags_sent == 3 and acc.flags_lost == 1  # seq 4 never got its red-flag result
    assert acc.flags_latencies_ms == [pytest.approx(8.0), pytest.approx(20.0)]
    s = summarize(acc, elapsed_s=4.0)
    assert s["flags_lost"] == 1 and s["flags_p50_ms"] == pytest.approx(14.0) and s["degraded_events"] == 1
    checks = check_targets({**s, "rss_mb_max": 100.0})
    assert checks["no flags lost"] is False and checks["flags p95<=500ms"] is True


def test_shed_counters_are_read_from_the_metrics_page() -> None:
    page = "\n".join(
        [
            "# HELP assistant_shed_total work skipped under overload, by kind",
            "# TYPE assistant_shed_total counter",
            'assistant_shed_total{kind="suggestions"} 412.0',
            'assistant_shed_total{kind="steps"} 3.0',
            'assistant_shed_created{kind="steps"} 1.76e+09',
            'assistant_chunks_total{kind="final"} 9000.0',
        ]
    )
    assert parse_shed(page) == {"suggestions": 412.0, "steps": 3.0}
    assert parse_shed("") == {}
