"""Length groups for padded batches: a partition of the batch, the cheapest one, within the size cap."""

from __future__ import annotations

import itertools
import random

import pytest

from assistant.padding import length_groups


def cost(lengths: list[int], groups: list[list[int]], overhead: int) -> int:
    return sum(overhead + len(g) * max(lengths[i] for i in g) for g in groups)


def brute_force(lengths: list[int], overhead: int) -> int:
    """Cheapest cost over every way to cut the length-sorted batch (optimal groups are contiguous there)."""
    srt = sorted(lengths)
    n = len(srt)
    best = None
    for cuts in itertools.product([False, True], repeat=n - 1):
        total, start = 0, 0
        for i, cut in enumerate([*cuts, True]):
            if cut:
                total += overhead + (i + 1 - start) * srt[i]
                start = i + 1
        best = total if best is None else min(best, total)
    return best or 0


@pytest.mark.parametrize("seed", range(20))
def test_groups_partition_the_batch_at_least_cost(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(2, 64) for _ in range(rng.randint(1, 9))]
    overhead = rng.choice([0, 8, 32, 200])
    groups = length_groups(lengths, overhead_tokens=overhead)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert cost(lengths, groups, overhead) == brute_force(lengths, overhead)


def test_size_cap_and_edge_cases() -> None:
    groups = length_groups([10] * 70, overhead_tokens=1000, max_size=32)
    assert sorted(len(g) for g in groups) == [6, 32, 32]
    assert length_groups([]) == []
    assert length_groups([7]) == [[0]]
    with pytest.raises(ValueError, match="max_size"):
        length_groups([1], max_size=0)
