"""Split a batch of token sequences into groups that waste the least compute on padding.

A padded batch costs every row the length of its longest row, and every forward pass costs a fixed overhead
(weight reads, op dispatch). A live batch mixes calls, so lengths vary (a "yes" beside a long complaint);
one group wastes tokens on padding, one group per row pays the overhead every time. This finds the split
in between that costs least.

    >>> length_groups([5, 30, 6, 31, 7], overhead_tokens=8)
    [[0, 2, 4], [1, 3]]
    >>> length_groups([5, 30, 6], overhead_tokens=100)
    [[0, 2, 1]]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

# Measured for both MiniLM encoders (bf16, one thread, this project's 2-core Xeon): a forward pass costs
# about 1.5-2 ms on top of ~45 us per padded token, i.e. the overhead of roughly 32-40 tokens.
DEFAULT_OVERHEAD_TOKENS = 32
DEFAULT_MAX_SIZE = 32


def length_groups(
    lengths: Sequence[int],
    *,
    overhead_tokens: int = DEFAULT_OVERHEAD_TOKENS,
    max_size: int = DEFAULT_MAX_SIZE,
    buckets: bool = False,
) -> list[list[int]]:
    """Indices of ``lengths`` in groups (shortest first), minimising the sum over groups of
    ``overhead_tokens + size * longest``, with at most ``max_size`` rows per group.

    With ``buckets`` a group costs the tokens of the shape it will run in (``bucketed_shape``), so the split
    favours groups whose shape wastes little (over random live batches: 5% more tokens than exact shapes,
    against 13% for the plain split run in bucketed shapes).

    >>> length_groups([9] * 9, overhead_tokens=8), length_groups([9] * 9, overhead_tokens=8, buckets=True)
    ([[0, 1, 2, 3, 4, 5, 6, 7, 8]], [[0], [1, 2, 3, 4, 5, 6, 7, 8]])
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    # best[j]: least cost of the first j sorted rows; cut[j]: where the last group of that solution starts.
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]
        for i in range(max(0, j - max_size), j):
            rows, width = bucketed_shape(j - i, longest) if buckets else (j - i, longest)
            cost = best[i] + overhead_tokens + rows * width
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


class GroupLayout(NamedTuple):
    """Groups flattened for a loop that runs outside Python (a scripted model's group loop).

    ``order``: the rows each group reads, group after group; ``bounds``: where each group starts and ends in
    it; ``widths``: the tokens each group is cut (or padded) to; ``real``: how many of a group's rows are its
    own, the rest being repeats of its first row that only pad its shape (their results are dropped).
    """

    order: list[int]
    bounds: list[int]
    widths: list[int]
    real: list[int]

    def widen(self, tensors: Sequence[Any], pad_values: Sequence[int]) -> list[Any]:
        """``tensors`` (N, T), right-padded with their ``pad_values`` to the widest group: a bucketed shape can be
        wider than its batch. Returned as they are when no group is."""
        extra = max(self.widths) - tensors[0].size(1)
        if extra <= 0:
            return list(tensors)
        import torch  # here, not above: the embedder imports this module before it loads torch

        return [
            torch.nn.functional.pad(t, (0, extra), value=v) for t, v in zip(tensors, pad_values, strict=True)
        ]


def group_layout(
    groups: Sequence[Sequence[int]], lengths: Sequence[int], *, buckets: bool = False
) -> GroupLayout:
    """``groups`` as a ``GroupLayout``: each group at its own longest row, or with ``buckets`` in the least
    shape whose rows x tokens is a row bucket (``bucketed_shape``).

    >>> group_layout([[0, 2], [1]], [5, 30, 6])
    GroupLayout(order=[0, 2, 1], bounds=[0, 2, 3], widths=[6, 30], real=[2, 1])
    >>> group_layout([[0, 2], [1]], [5, 30, 6], buckets=True)
    GroupLayout(order=[0, 2, 1], bounds=[0, 2, 3], widths=[8, 32], real=[2, 1])
    """
    layout = GroupLayout([], [0], [], [])
    for g in groups:
        width = max(lengths[i] for i in g)
        rows, width = bucketed_shape(len(g), width) if buckets else (len(g), width)
        layout.order.extend([*g, *[g[0]] * (rows - len(g))])
        layout.bounds.append(len(layout.order))
        layout.widths.append(width)
        layout.real.append(len(g))
    return layout


def bucket_rows(m: int) -> int:
    """``m`` rounded up to a row count from a short list: steps of 16 rows up to 512, of 32 up to 1,024, and
    so on (at most 15 rows or 1/16 more).

    >>> [bucket_rows(m) for m in (1, 16, 17, 500, 513, 1000)]
    [16, 16, 32, 512, 544, 1024]
    """
    step = 16
    while step * 32 < m:
        step *= 2
    return (m + step - 1) // step * step


@functools.lru_cache(maxsize=4096)
def bucketed_shape(size: int, width: int) -> tuple[int, int]:
    """The (rows, tokens) of least product, at least (``size``, ``width``), whose product is a row bucket
    (``bucket_rows``); of equal products the one with the fewest rows.

    Why: oneDNN builds a bf16 kernel for every shape of a product (~4 ms) and caches it (~0.55 MB, in oneDNN's
    cache and in ideep's). A live batch's rows x tokens took hundreds of values, so at 1,000 calls the caches
    thrashed (3,124 kernels built in 95 s) and held ~500 MB (docs/benchmarks.md, session 25). A group padded
    to a bucket shape (extra tokens masked, extra rows repeats of a real one) reaches every product of the
    pass in one of 64 row counts up to 2,048. One row alone pays nothing: a product of 16 rows is no slower
    than one of 9 to 15 (session 26).

    >>> bucketed_shape(1, 9), bucketed_shape(3, 12), bucketed_shape(3, 17), bucketed_shape(7, 10)
    ((1, 16), (3, 16), (4, 20), (8, 10))
    """
    if size < 1 or width < 1:
        raise ValueError(f"a group has at least one row of at least one token, got {size} x {width}")
    product = bucket_rows(size * width)
    # The loop ends: powers of two from 16 are buckets, and one factors as (a power of 2 >= size) x (>= width).
    while True:
        for rows in range(size, product // width + 1):
            if product % rows == 0:
                return rows, product // rows
        product = bucket_rows(product + 1)
