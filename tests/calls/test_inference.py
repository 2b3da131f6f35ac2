from __future__ import annotations

import asyncio

from assistant.calls.fakes import KeywordAnalyzer
from assistant.inference import MicroBatcher
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
