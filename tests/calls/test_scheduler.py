"""Overload by priority: the advice lane (coalescing, bounds), degraded/recovered, and the batcher's limits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from assistant.calls.scheduler import AdviceLane, Change, Degradation, Turn, feature_of
from assistant.inference import MicroBatcher, Shed


def turns(*speakers: str) -> list[Turn[None]]:
    return [Turn(seq, sp, queued=float(seq)) for seq, sp in enumerate(speakers, start=1)]


def drain(lane: AdviceLane[None]) -> tuple[list[int], list[int]]:
    advised, shed = [], []
    while True:
        taken = lane.take()
        shed += [t.seq for t in taken.shed]
        if taken.turn is None:
            return advised, shed
        advised.append(taken.turn.seq)


def test_only_the_newest_pending_suggestion_of_a_call_is_worked_on() -> None:
    lane: AdviceLane[None] = AdviceLane(max_pending=10)
    for t in turns("customer", "agent", "customer", "customer", "agent"):
        lane.put(t)
    advised, shed = drain(lane)
    # Customer turns 1 and 3 are replaced by 4; the agent's turns keep their order (step tracking is stateful).
    assert advised == [2, 4, 5] and shed == [1, 3]


def test_a_lone_customer_turn_is_never_coalesced_away() -> None:
    lane: AdviceLane[None] = AdviceLane(max_pending=2)
    for t in turns("agent", "customer"):
        lane.put(t)
    assert drain(lane) == ([1, 2], [])


def test_over_the_bound_step_tracking_goes_first() -> None:
    lane: AdviceLane[None] = AdviceLane(max_pending=3)
    for t in turns("agent", "customer", "agent", "agent", "agent"):
        lane.put(t)
    advised, shed = drain(lane)
    assert advised == [2, 4, 5] and shed == [1, 3]  # the oldest agent turns, never the waiting customer turn
    assert {feature_of("agent"), feature_of("customer")} == {"steps", "suggestions"}


def test_wait_returns_turns_then_none_once_closed() -> None:
    async def run() -> list[int | None]:
        lane: AdviceLane[None] = AdviceLane(max_pending=4)
        got: list[int | None] = []

        async def consumer() -> None:
            while True:
                taken = await lane.wait()
                if taken.turn is None and not taken.shed:
                    got.append(None)
                    return
                if taken.turn is not None:
                    got.append(taken.turn.seq)

        task = asyncio.create_task(consumer())
        await asyncio.sleep(0)
        lane.put(Turn(1, "agent", 0.0))
        await asyncio.sleep(0)
        lane.put(Turn(2, "customer", 0.0))
        lane.close()
        await asyncio.wait_for(task, 1.0)
        return got

    assert asyncio.run(run()) == [1, 2, None]


def test_degradation_says_behind_once_and_recovers_after_quiet_time() -> None:
    d = Degradation(recover_s=5.0)
    assert d.behind("suggestions", now=0.0) == Change(("suggestions",), ())
    assert d.behind("suggestions", now=3.0) is None
    assert d.behind("steps", now=4.0) == Change(("suggestions", "steps"), ())
    assert d.check(now=7.0) is None  # suggestions were behind 4 s ago
    assert d.check(now=8.5) == Change(("steps",), ("suggestions",))
    assert d.clear(["steps", "red_flags"]) == Change((), ("steps",))
    assert d.clear(["steps"]) is None and d.features == ()
    assert Change(("red_flags",), ("steps",)).event_fields() == {
        "features": ["red_flags"],
        "recovered": ["steps"],
    }
    with pytest.raises(ValueError):
        Degradation(recover_s=0)


class SlowEcho:
    """A batch predictor that takes ``delay_s`` per pass and records its batches."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.release.set()

    def predict(self, items: list[str], /) -> list[str]:
        self.release.wait(5.0)
        time.sleep(self.delay_s)
        self.batches.append(list(items))
        return [x.upper() for x in items]


class TaggedEcho(SlowEcho):
    """A SlowEcho that appends its tag to a shared ``order`` after each pass (passes of two batchers)."""

    def __init__(self, tag: str, delay_s: float, order: list[str], lock: threading.Lock) -> None:
        super().__init__(delay_s)
        self.tag, self.order, self.lock = tag, order, lock

    def predict(self, items: list[str], /) -> list[str]:
        out = super().predict(items)
        with self.lock:
            self.order.append(self.tag)
        return out


def test_an_item_whose_deadline_passed_in_the_queue_is_shed_not_scored() -> None:
    async def run() -> tuple[list[object], list[list[str]]]:
        model = SlowEcho()
        model.release.clear()  # the first pass blocks: everything behind it queues
        b: MicroBatcher[str, str] = MicroBatcher(model, max_batch=1, max_wait_ms=0, name="t")
        await b.start()
        try:
            first = asyncio.ensure_future(b.predict("a"))
            await asyncio.sleep(0.05)
            late = asyncio.ensure_future(b.predict("b", deadline=time.perf_counter() + 0.01))
            fine = asyncio.ensure_future(b.predict("c", deadline=time.perf_counter() + 30))
            await asyncio.sleep(0.1)
            model.release.set()
            out = await asyncio.gather(first, late, fine, return_exceptions=True)
            return out, model.batches
        finally:
            await b.stop()

    out, batches = asyncio.run(run())
    assert out[0] == "A" and isinstance(out[1], Shed) and out[2] == "C"
    assert ["b"] not in batches


def test_a_full_batcher_sheds_at_once() -> None:
    async def run() -> tuple[object, int]:
        model = SlowEcho()
        model.release.clear()
        b: MicroBatcher[str, str] = MicroBatcher(model, max_batch=1, max_wait_ms=0, max_queued=2, name="t")
        await b.start()
        try:
            held = [asyncio.ensure_future(b.predict(x)) for x in "ab"]
            await asyncio.sleep(0.02)
            with pytest.raises(Shed):
                await b.predict("c")
            backlog = b.backlog
            model.release.set()
            await asyncio.gather(*held)
            return backlog, b.backlog
        finally:
            await b.stop()

    assert asyncio.run(run()) == (2, 0)


def test_the_low_priority_batcher_waits_while_the_high_one_is_a_batch_behind() -> None:
    async def run() -> list[str]:
        order: list[str] = []
        lock = threading.Lock()
        flags, queries = TaggedEcho("flags", 0.01, order, lock), TaggedEcho("queries", 0.01, order, lock)
        high: MicroBatcher[str, str] = MicroBatcher(flags, max_batch=2, max_wait_ms=0, name="hi")
        low: MicroBatcher[str, str] = MicroBatcher(
            queries, max_batch=2, max_wait_ms=0, name="lo", yield_to=high
        )
        await high.start()
        await low.start()
        try:
            hs = [asyncio.ensure_future(high.predict(str(i))) for i in range(8)]
            await asyncio.sleep(0)  # the high batcher has a backlog of 8 before the low one gets work
            ls = [asyncio.ensure_future(low.predict(str(i))) for i in range(2)]
            await asyncio.gather(*hs, *ls)
            return order
        finally:
            await low.stop()
            await high.stop()

    order = asyncio.run(run())
    # The query pass waits until the red flags' backlog is under one batch: at least 3 flag passes first.
    assert order.index("queries") >= 3, order


def test_yield_backlog_makes_the_low_priority_batcher_wait_for_fewer_items() -> None:
    async def run() -> tuple[list[str], float]:
        order: list[str] = []
        lock = threading.Lock()
        flags, queries = TaggedEcho("flags", 0.1, order, lock), TaggedEcho("queries", 0.0, order, lock)
        # Four red-flag items are less than one batch (8): only a yield_backlog below 5 holds the query pass.
        high: MicroBatcher[str, str] = MicroBatcher(flags, max_batch=8, max_wait_ms=0, name="hi")
        low: MicroBatcher[str, str] = MicroBatcher(
            queries, max_batch=2, max_wait_ms=0, name="lo", yield_to=high, yield_backlog=1
        )
        await high.start()
        await low.start()
        try:
            hs = [asyncio.ensure_future(high.predict(str(i))) for i in range(4)]
            await asyncio.sleep(0.02)  # the flag pass (0.1 s) is running with 4 items
            ls = [asyncio.ensure_future(low.predict(str(i))) for i in range(2)]
            await asyncio.gather(*hs, *ls)
            return order, high.backlog
        finally:
            await low.stop()
            await high.stop()

    order, backlog = asyncio.run(run())
    assert order == ["flags", "queries"] and backlog == 0, order
    with pytest.raises(ValueError, match="yield_backlog"):
        MicroBatcher(SlowEcho(0.0), yield_backlog=0)


def test_several_workers_run_passes_side_by_side_and_stop_cleanly() -> None:
    both = threading.Barrier(2, timeout=5.0)

    class Meeting:
        """Each pass waits until a second pass runs at the same time (a single worker would time out)."""

        def predict(self, items: list[str], /) -> list[str]:
            both.wait()
            return items

    async def run() -> list[str]:
        b: MicroBatcher[str, str] = MicroBatcher(Meeting(), max_batch=1, max_wait_ms=0, name="w", workers=2)
        await b.start()
        try:
            return list(await asyncio.gather(b.predict("a"), b.predict("b")))
        finally:
            await b.stop()
            assert b._threads == []

    assert asyncio.run(run()) == ["a", "b"]
    with pytest.raises(ValueError, match="workers"):
        MicroBatcher(Meeting(), workers=0)


def test_a_skipped_turns_red_flags_are_carried_into_the_next_advice() -> None:
    from assistant.calls.scheduler import carry_flags
    from assistant.labels import LABELS
    from assistant.types import LabelScore, RedFlagResult

    def result(**probs: float) -> RedFlagResult:
        labels = {n: LabelScore(n, probs.get(n, 0.01), 0.5, probs.get(n, 0.01) >= 0.5) for n in LABELS}
        return RedFlagResult(labels, {"abusive": max(labels[n].probability for n in ("insult", "threat"))})

    skipped, calm = result(insult=0.9), result(churn_risk=0.7)
    merged = carry_flags(skipped, calm)
    assert merged is not None and sorted(merged.flagged) == ["churn_risk", "insult"]
    assert merged.groups["abusive"] == 0.9 and merged.labels["insult"].probability == 0.9
    assert carry_flags(None, calm) is calm and carry_flags(result(), calm) is calm
    assert carry_flags(skipped, None) is skipped
    stronger = carry_flags(result(insult=0.6), result(insult=0.8))
    assert stronger is not None and stronger.labels["insult"].probability == 0.8


def test_a_helper_worker_stays_out_of_a_light_load() -> None:
    class Names:
        def __init__(self) -> None:
            self.threads: set[str] = set()

        def predict(self, items: list[str], /) -> list[str]:
            self.threads.add(threading.current_thread().name)
            return items

    async def run() -> set[str]:
        model = Names()
        b: MicroBatcher[str, str] = MicroBatcher(model, max_batch=8, max_wait_ms=0, name="w", workers=2)
        await b.start()
        try:
            for i in range(20):  # one at a time: never a full batch waiting
                await b.predict(str(i))
        finally:
            await b.stop()
        return model.threads

    assert asyncio.run(run()) == {"w_0"}


def test_a_helper_worker_takes_a_queued_burst_while_the_first_pass_runs() -> None:
    helper_ran = threading.Event()

    class Gate:
        """The first worker's pass ends only once the helper has run a pass beside it."""

        def __init__(self) -> None:
            self.passes: list[tuple[str, list[str]]] = []

        def predict(self, items: list[str], /) -> list[str]:
            name = threading.current_thread().name
            self.passes.append((name, list(items)))
            if name == "w_0" and items == ["a"]:
                assert helper_ran.wait(timeout=5.0), "the helper never ran a pass beside the first"
            else:
                helper_ran.set()
            return items

    async def run() -> list[str]:
        b: MicroBatcher[str, str] = MicroBatcher(
            model, max_batch=8, max_wait_ms=0, name="w", workers=2, helper_backlog=2
        )
        await b.start()
        try:
            first = asyncio.ensure_future(b.predict("a"))
            while not model.passes:  # the first pass is in flight
                await asyncio.sleep(0.001)
            return list(await asyncio.gather(first, b.predict("b"), b.predict("c")))
        finally:
            await b.stop()

    model = Gate()
    assert asyncio.run(run()) == ["a", "b", "c"]
    assert ("w_1", ["b", "c"]) in model.passes
    with pytest.raises(ValueError, match="helper_backlog"):
        MicroBatcher(Gate(), helper_backlog=0)


def test_an_item_that_cannot_be_scored_by_its_deadline_is_shed_at_once() -> None:
    async def run() -> tuple[bool, bool, object]:
        model = SlowEcho(delay_s=0.05)
        b: MicroBatcher[str, str] = MicroBatcher(model, max_batch=1, max_wait_ms=0, name="t")
        await b.start()
        try:
            await b.predict("warm")  # the batcher learns what an item costs
            model.release.clear()
            held = [asyncio.ensure_future(b.predict(x)) for x in "abc"]
            await asyncio.sleep(0.02)
            # Three items ahead at ~50 ms each: 100 ms is too soon, 30 s is not.
            tight, loose = b.can_meet(time.perf_counter() + 0.1), b.can_meet(time.perf_counter() + 30)
            try:
                await b.predict("x", deadline=time.perf_counter() + 0.1)
                refused: object = None
            except Shed as e:
                refused = e
            model.release.set()
            await asyncio.gather(*held)
            return tight, loose, refused
        finally:
            await b.stop()

    tight, loose, refused = asyncio.run(run())
    assert not tight and loose
    assert isinstance(refused, Shed) and "past its deadline" in str(refused)


def test_a_pass_takes_only_the_items_it_can_finish_by_their_deadlines() -> None:
    from assistant.inference import _Job

    loop = asyncio.new_event_loop()
    try:
        b: MicroBatcher[str, str] = MicroBatcher(SlowEcho(), max_batch=8, name="t")
        now = time.perf_counter()
        jobs = [_Job("hopeless", loop.create_future(), now, now + 0.05)]
        jobs += [_Job(f"q{i}", loop.create_future(), now, now + 0.35) for i in range(5)]
        assert b._fit(jobs, now) == (jobs, [], [])  # no cost estimate yet: everything is tried
        b._item_s = 0.1
        batch, hopeless, rest = b._fit(jobs, now)
        # 100 ms an item: one pass of three ends at 300 ms, within the 350-ms deadlines; four would not.
        assert [j.utterance for j in hopeless] == ["hopeless"]
        assert [j.utterance for j in batch] == ["q0", "q1", "q2"] and [j.utterance for j in rest] == [
            "q3",
            "q4",
        ]
        no_deadline = [_Job("r", loop.create_future(), now, None) for _ in range(4)]
        assert b._fit(no_deadline, now) == (no_deadline, [], [])
    finally:
        loop.close()


def test_an_int8_red_flag_model_gets_short_batches_others_the_configured_size() -> None:
    from assistant.calls.pipeline import INT8_REDFLAG_BATCH, redflag_batch_size
    from assistant.settings import load_settings
    from assistant.testing import KeywordAnalyzer

    settings = load_settings(batch_max_size=64)
    int8, bf16 = KeywordAnalyzer(), KeywordAnalyzer()
    int8.precision, bf16.precision = "int8", "bf16"  # type: ignore[attr-defined]
    # int8's cost per row is flat past 16 rows: a longer batch only delays its first rows' results (pipeline.py).
    assert redflag_batch_size(settings, int8) == INT8_REDFLAG_BATCH < 64
    assert redflag_batch_size(settings, bf16) == 64
    assert redflag_batch_size(settings, KeywordAnalyzer()) == 64  # the fakes have no precision
    assert redflag_batch_size(load_settings(batch_max_size=4), int8) == 4  # never above the setting
