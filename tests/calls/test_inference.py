from __future__ import annotations

import asyncio

import pytest

from assistant.inference import MicroBatcher
from assistant.testing import KeywordAnalyzer
from assistant.types import Utterance


def test_micro_batcher_batches_concurrent_utterances_across_calls() -> None:
    analyzer = KeywordAnalyzer()

    async def run() -> list[list[str]]:
        b = MicroBatcher(analyzer, max_batch=16, max_wait_ms=20)
        await b.start()
        try:
            results = await asyncio.gather(*(b.predict(Utterance(f"idiot {i}")) for i in range(40)))
        finally:
            await b.stop()
        return [r.flagged for r in results]

    flagged = asyncio.run(run())
    assert all(f == ["insult"] for f in flagged)
    assert max(analyzer.batch_sizes) == 16 and analyzer.calls <= 4


def test_micro_batcher_same_scores_batched_or_alone() -> None:
    texts = ["you idiot", "get me a manager", "thanks"]

    async def run() -> tuple[list, list]:
        b = MicroBatcher(KeywordAnalyzer(), max_batch=8, max_wait_ms=5)
        await b.start()
        try:
            together = await asyncio.gather(*(b.predict(Utterance(t)) for t in texts))
            alone = [await b.predict(Utterance(t)) for t in texts]
        finally:
            await b.stop()
        return together, alone

    together, alone = asyncio.run(run())
    assert [r.flagged for r in together] == [r.flagged for r in alone]


class _Failing:
    def predict(self, items: list[str]) -> list[str]:
        if "boom" in items:
            raise ValueError("model failed")
        return [s.upper() for s in items]


def test_a_failed_batch_fails_its_callers_and_the_batcher_goes_on() -> None:
    async def run() -> tuple[BaseException | str, str]:
        b: MicroBatcher[str, str] = MicroBatcher(_Failing(), max_batch=1, max_wait_ms=0)
        await b.start()
        try:
            failed = (await asyncio.gather(b.predict("boom"), return_exceptions=True))[0]
            return failed, await b.predict("ok")
        finally:
            await b.stop()

    failed, ok = asyncio.run(run())
    assert isinstance(failed, ValueError) and ok == "OK"


def test_predict_after_stop_says_to_start_the_batcher() -> None:
    from assistant.inference import BatcherStopped

    async def run() -> None:
        b = MicroBatcher(KeywordAnalyzer())
        await b.start()
        await b.stop()
        await b.predict(Utterance("hello"))

    with pytest.raises(BatcherStopped, match="start"):
        asyncio.run(run())


def test_each_batch_reports_its_size_pass_time_and_the_oldest_wait() -> None:
    from assistant.inference import BatchStats

    seen: list[BatchStats] = []

    async def run() -> None:
        b = MicroBatcher(KeywordAnalyzer(), max_batch=4, max_wait_ms=20, on_batch=seen.append)
        await b.start()
        try:
            await asyncio.gather(*(b.predict(Utterance(f"hello {i}")) for i in range(10)))
        finally:
            await b.stop()

    asyncio.run(run())
    assert sum(s.size for s in seen) == 10 and max(s.size for s in seen) == 4
    assert all(s.seconds >= 0 and s.waited_s >= 0 for s in seen)
    # Items queued together: later batches waited for the earlier ones to run.
    assert seen[-1].waited_s >= seen[0].waited_s
