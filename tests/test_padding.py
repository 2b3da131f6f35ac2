"""Length groups for padded batches: a partition of the batch, the cheapest one, within the size cap."""

from __future__ import annotations

import itertools
import random

import pytest

from assistant.padding import (
    DEFAULT_OVERHEAD_TOKENS,
    bucket_rows,
    bucketed_shape,
    group_layout,
    length_groups,
)


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


def test_row_buckets_cover_every_size_in_few_sizes_with_little_padding() -> None:
    sizes = [bucket_rows(m) for m in range(1, 2049)]
    assert all(b >= m for m, b in zip(range(1, 2049), sizes, strict=True))
    assert sizes == sorted(sizes)  # more rows never get a smaller bucket
    assert all(b - m <= max(15, m // 16) for m, b in zip(range(1, 2049), sizes, strict=True))
    assert len(set(sizes)) <= 64  # against 2,048 kernels, one per size
    assert bucket_rows(16) == 16 and bucket_rows(17) == 32


def test_bucketed_shapes_fit_their_group_in_a_row_bucket_of_few_products() -> None:
    shapes = {(size, width): bucketed_shape(size, width) for size in range(1, 41) for width in range(1, 129)}
    for (size, width), (rows, tokens) in shapes.items():
        assert rows >= size and tokens >= width
        assert bucket_rows(rows * tokens) == rows * tokens
        assert rows - size <= 15
        # the least such product: none of the row counts it skips reaches a bucket at or under it
        assert all(
            bucket_rows(r * t) != r * t
            for r in range(size, rows + 1)
            for t in range(width, rows * tokens // r + 1)
            if r * t < rows * tokens
        )
    assert len({rows * tokens for rows, tokens in shapes.values()}) <= 100  # kernels, against 5,120 shapes
    assert bucketed_shape(1, 9) == (1, 16)  # one row: only tokens are added, and they are masked
    with pytest.raises(ValueError, match="at least one row"):
        bucketed_shape(0, 5)


@pytest.mark.parametrize("seed", range(10))
def test_bucketed_layouts_read_every_row_once_and_pad_with_repeats(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(2, 64) for _ in range(rng.randint(1, 70))]
    groups = length_groups(lengths, buckets=True)
    layout = group_layout(groups, lengths, buckets=True)
    kept = []
    for g, group in enumerate(groups):
        rows = layout.order[layout.bounds[g] : layout.bounds[g + 1]]
        assert rows[: layout.real[g]] == group  # the group's own rows first, their results kept
        assert set(rows[layout.real[g] :]) <= {group[0]}  # then repeats, whose results are dropped
        assert (len(rows), layout.widths[g]) == bucketed_shape(len(group), max(lengths[i] for i in group))
        kept += rows[: layout.real[g]]
    assert sorted(kept) == list(range(len(lengths)))
    plain = group_layout(length_groups(lengths), lengths)
    assert plain.order == sorted(plain.order, key=lambda i: lengths[i]) and plain.real == [
        b - a for a, b in itertools.pairwise(plain.bounds)
    ]


@pytest.mark.parametrize("seed", range(10))
def test_bucket_aware_groups_cost_no_more_tokens_than_plain_groups_bucketed(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(2, 64) for _ in range(rng.randint(1, 70))]

    def bucketed_cost(groups: list[list[int]]) -> int:
        shapes = [bucketed_shape(len(g), max(lengths[i] for i in g)) for g in groups]
        return sum(DEFAULT_OVERHEAD_TOKENS + rows * tokens for rows, tokens in shapes)

    assert bucketed_cost(length_groups(lengths, buckets=True)) <= bucketed_cost(length_groups(lengths))
    lengths = [9] * 9  # one group of 9 x 9 runs as 9 x 16; 1 + 8 rows run as 1 x 16 and 8 x 10
    assert bucketed_cost(length_groups(lengths, buckets=True)) < bucketed_cost(length_groups(lengths))


def test_widen_pads_inputs_to_the_widest_bucketed_group_with_their_pad_values() -> None:
    import torch

    lengths = [9]
    layout = group_layout([[0]], lengths, buckets=True)  # one row of 9 tokens runs as 16
    ids, mask = torch.full((1, 9), 7), torch.ones(1, 9, dtype=torch.long)
    wide_ids, wide_mask = layout.widen([ids, mask], [0, 0])
    assert wide_ids.shape == wide_mask.shape == (1, 16)
    assert wide_ids[0, :9].eq(7).all() and wide_ids[0, 9:].eq(0).all() and int(wide_mask.sum()) == 9
    plain = group_layout([[0]], lengths)
    assert plain.widen([ids, mask], [0, 0])[0] is ids  # nothing wider: the tensors as they were
